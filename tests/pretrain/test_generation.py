"""Generation honours a floor on length even when the model would end the text at once."""

import pytest


class _EndTextNow:
    """A logits processor that makes end-of-text by far the likeliest next token."""

    def __init__(self, eos_token_id: int):
        self.eos_token_id = eos_token_id

    def __call__(self, input_ids, scores):
        scores[:, self.eos_token_id] += 1e4
        return scores


def test_min_new_tokens_holds_off_end_of_text(trained_model_dir):
    from pretrain.generation import GenerationArguments, generate_texts, load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(trained_model_dir)
    prompts = ["The return value", "A list of"]
    end_now = [_EndTextNow(tokenizer.eos_token_id)]

    unfloored = generate_texts(
        model,
        tokenizer,
        prompts,
        GenerationArguments(max_new_tokens=30),
        logits_processor=end_now,
        return_token_ids=True,
    )
    floored = generate_texts(
        model,
        tokenizer,
        prompts,
        GenerationArguments(max_new_tokens=30, min_new_tokens=12),
        logits_processor=end_now,
        return_token_ids=True,
    )
    assert [len(ids) for ids in unfloored] == [0, 0]
    # the floor masks end-of-text until 12 tokens are out, and the boosted end-of-text then comes at once
    assert [len(ids) for ids in floored] == [12, 12]


def test_min_new_tokens_above_max_is_refused():
    from pretrain.generation import GenerationArguments

    with pytest.raises(ValueError, match="min_new_tokens"):
        GenerationArguments(max_new_tokens=10, min_new_tokens=11)
