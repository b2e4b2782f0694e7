"""How a DPO-trained policy is judged: implicit-reward accuracy and gold win rate.

Implicit reward (Rafailov et al. 2023): r(x, y) = β·[log π(y|x) − log π_ref(y|x)]; the policy
"prefers" the chosen response of a held-out pair when r(chosen) > r(rejected). β does not
change the sign, so it is left out. Before any training π = π_ref and every pair is a tie,
scored 0.5 — the accuracy rises above 0.5 only if DPO moved the policy the right way.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np


def response_logprobs(
    model, tokenizer, rows: list[tuple[str, str]], max_length: int = 512, batch_size: int = 64
) -> np.ndarray:
    """log π(response + end-of-text | prompt) for each (prompt, response), in right-padded batches.

    Tokens as DPO sees them: the prompt's ids, then the response's and end-of-text, cut from the left
    to `max_length` (the response is kept whole where it fits, as with TRL's `keep_end`).
    """
    import torch

    scores = np.zeros(len(rows))
    for start in range(0, len(rows), batch_size):
        encoded = []
        for prompt, response in rows[start : start + batch_size]:
            response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            ids = (tokenizer(prompt)["input_ids"] + response_ids)[-max_length:]
            encoded.append((ids, max(len(ids) - len(response_ids), 1)))
        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), width), tokenizer.eos_token_id, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        counted = torch.zeros((len(encoded), width - 1))  # which next-token predictions belong to the response
        for i, (ids, cut) in enumerate(encoded):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            counted[i, cut - 1 : len(ids) - 1] = 1
        input_ids, attention = input_ids.to(model.device), attention.to(model.device)
        with torch.inference_mode():
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
        token_logprobs = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        scores[start : start + len(encoded)] = (token_logprobs.cpu() * counted).sum(1).numpy()
    return scores


def implicit_reward_accuracy(policy, ref_model, tokenizer, prompts, chosen, rejected, max_length: int = 512) -> float:
    """Share of pairs whose chosen response gets the larger implicit reward (ties count half).

    `ref_model=None` with a PEFT policy means the base model under the adapter is the reference.
    """
    policy.eval()

    def reference_context():
        if ref_model is None and hasattr(policy, "disable_adapter"):
            return policy.disable_adapter()
        return contextlib.nullcontext()

    reference = ref_model if ref_model is not None else policy
    if ref_model is not None:
        ref_model.eval()
    rows = [(prompt, response) for responses in (chosen, rejected) for prompt, response in zip(prompts, responses)]
    logprobs = response_logprobs(policy, tokenizer, rows, max_length)
    with reference_context():
        logprobs = logprobs - response_logprobs(reference, tokenizer, rows, max_length)
    margin = logprobs[: len(prompts)] - logprobs[len(prompts) :]
    score = float(np.where(margin > 1e-6, 1.0, np.where(np.abs(margin) <= 1e-6, 0.5, 0.0)).sum())
    return round(score / max(len(prompts), 1), 4)


def win_rate(
    scores_first: list[float], scores_second: list[float], seed: int = 0, draws: int = 2000, groups: list | None = None
) -> dict:
    """How often the first system's response beats the second's (ties half), with a bootstrap 95% interval.

    `groups` (e.g. the training seed of each comparison): the bootstrap then resamples whole groups and
    the comparisons within them, so the interval also carries the spread between training runs — not
    only the spread between prompts of one run.
    """
    first, second = np.asarray(scores_first, float), np.asarray(scores_second, float)
    outcome = np.where(first > second, 1.0, np.where(first < second, 0.0, 0.5))
    n = len(outcome)
    if not n:
        return {"win_rate": math.nan, "margin": math.nan, "margin_ci": [math.nan, math.nan], "n": 0}
    labels = np.asarray(groups if groups is not None else np.zeros(n))
    names = list(dict.fromkeys(labels.tolist()))
    members = [np.flatnonzero(labels == g) for g in names]
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(draws):
        picked = [members[i] for i in rng.integers(0, len(members), len(members))]
        samples.append(np.concatenate([outcome[rng.choice(m, size=len(m))] for m in picked]).mean())
    low, high = np.percentile(samples, [2.5, 97.5])
    rate = float(outcome.mean())
    result = {
        "win_rate": round(rate, 4),
        "margin": round(rate - 0.5, 4),
        "margin_ci": [round(float(low) - 0.5, 4), round(float(high) - 0.5, 4)],
        "n": n,
    }
    if groups is not None:
        result["win_rate_by_group"] = {str(g): round(float(outcome[m].mean()), 4) for g, m in zip(names, members)}
    return result
