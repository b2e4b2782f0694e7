"""Fixtures of the alignment tests: preference files with a known answer, and pairs from the nano policy."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

TOPICS = [
    "sorting lists",
    "reading files",
    "string methods",
    "dictionaries",
    "exceptions",
    "decorators",
    "generators",
    "context managers",
    "regular expressions",
    "the math module",
    "closures",
    "classes",
]
FILLER = (
    "it returns a new object and leaves the original unchanged so callers can rely on it "
    "the standard library documents every argument with an example that runs as written"
).split()


def _answer(rng: random.Random, topic: str, words: int) -> str:
    body = " ".join(rng.choice(FILLER) for _ in range(words))
    return f"About {topic}: {body}."


def write_preferences(path: Path, n: int, seed: int = 0, signal: bool = True) -> Path:
    """TRL rows whose chosen answer is the longer one (a cheap statistic the reward model can learn);
    with signal=False, chosen is a coin flip and nothing can be learnt."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            topic = rng.choice(TOPICS)
            long, short = _answer(rng, topic, rng.randint(14, 30)), _answer(rng, topic, rng.randint(2, 14))
            chosen, rejected = (long, short) if signal or rng.random() < 0.5 else (short, long)
            handle.write(
                json.dumps({"prompt": f"Question {i}: explain {topic}.", "chosen": chosen, "rejected": rejected})
                + "\n"
            )
    return path


@pytest.fixture(scope="session")
def preference_file(tmp_path_factory) -> Path:
    return write_preferences(tmp_path_factory.mktemp("prefs") / "prefs.jsonl", 600)


@pytest.fixture(scope="session")
def noise_file(tmp_path_factory) -> Path:
    return write_preferences(tmp_path_factory.mktemp("noise") / "noise.jsonl", 600, seed=1, signal=False)


@pytest.fixture(scope="session")
def policy_pairs(trained_model_dir):
    """Candidate pairs sampled from the nano policy (12 prompts x 4 samples)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignment.candidates import CandidateConfig, generate_candidate_pairs

    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir)
    model = AutoModelForCausalLM.from_pretrained(trained_model_dir).eval()
    prompts = [
        f"The {word} function"
        for word in (
            "open",
            "sorted",
            "print",
            "len",
            "range",
            "zip",
            "map",
            "filter",
            "repr",
            "format",
            "iter",
            "next",
        )
    ]
    config = CandidateConfig(samples_per_prompt=4, max_new_tokens=16, cross_prompt_pairs=1, generate_batch_size=12)
    return generate_candidate_pairs(model, tokenizer, prompts, config, model_id="nano")
