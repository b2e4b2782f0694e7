"""How a DPO'd policy is judged: response log-probabilities (for implicit rewards), and the gold win rate with its interval."""

from __future__ import annotations

import pytest

from alignment.evaluation import win_rate


def test_win_rate_counts_ties_half_and_gives_an_interval_around_it():
    result = win_rate([3, 2, 1, 1] * 25, [1, 2, 3, 0] * 25)  # wins, ties, losses, wins
    assert result["win_rate"] == 0.625 and result["margin"] == 0.125 and result["n"] == 100
    low, high = result["margin_ci"]
    assert low < 0.125 < high and high - low < 0.25


def test_grouped_interval_carries_the_spread_between_training_runs():
    # two training seeds that disagree: one wins every prompt, the other loses every prompt
    first = [1.0] * 50 + [0.0] * 50
    second = [0.0] * 50 + [1.0] * 50
    plain = win_rate(first, second)
    grouped = win_rate(first, second, groups=[0] * 50 + [1] * 50)
    assert plain["win_rate"] == grouped["win_rate"] == 0.5
    assert grouped["win_rate_by_group"] == {"0": 1.0, "1": 0.0}
    # prompts alone look like a tight interval; resampling the seeds shows how little two runs say
    width = lambda r: r["margin_ci"][1] - r["margin_ci"][0]
    assert width(grouped) > 2 * width(plain)
    assert grouped["margin_ci"][0] <= -0.4 and grouped["margin_ci"][1] >= 0.4


def test_batched_response_logprobs_match_one_unpadded_forward_each(trained_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.evaluation import response_logprobs

    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir)
    model = AutoModelForCausalLM.from_pretrained(trained_model_dir).eval()
    rows = [
        ("The sorted function", " returns a new list."),
        ("Open", " a file and read every line of it, then close it."),
        ("A much longer prompt about the print function and its keyword arguments", " sep and end."),
        ("x", ""),
    ]

    def unpadded(prompt: str, response: str, max_length: int) -> float:
        response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (tokenizer(prompt)["input_ids"] + response_ids)[-max_length:]
        with torch.inference_mode():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
        first = len(ids) - len(response_ids)  # position of the first response token
        return float(sum(logprobs[t - 1, ids[t]] for t in range(max(first, 1), len(ids))))

    for max_length in (512, 8):  # 8: the prompt is cut from the left, the response end is kept
        batched = response_logprobs(model, tokenizer, rows, max_length=max_length, batch_size=3)
        expected = [unpadded(p, r, max_length) for p, r in rows]
        assert batched == pytest.approx(expected, abs=1e-3)
        assert all(value < 0 for value in batched)
