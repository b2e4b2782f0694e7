"""The align stage's held-out prompts and its reward-model-labelled DPO pairs."""

from __future__ import annotations

import itertools
import json

import numpy as np

from alignment.candidates import prompts_from_documents
from alignment.stage import reward_labelled_rows, write_reward_labelled
from annotation.pairs import PreferencePair


def test_held_out_prompts_never_come_from_a_candidate_prompts_paragraph():
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()
    paragraphs = [" ".join(f"{w}{i}" for w in words + words) for i in range(40)]
    documents = ["\n\n".join(paragraphs[i : i + 4]) for i in range(0, 40, 4)]
    candidates = prompts_from_documents(documents, 25, seed=0)
    # drawn with another seed the same paragraphs come back with other lengths, so other strings:
    # excluding equal strings (the old check) would keep them
    held_out = prompts_from_documents(documents, 40, seed=7, avoid=candidates)
    assert len(held_out) == 15
    paragraph_of = {p.split()[0]: p for p in paragraphs}
    assert not {paragraph_of[p.split()[0]] for p in held_out} & {paragraph_of[p.split()[0]] for p in candidates}


def _pairs_with_rewards():
    """Two prompts, four answers each with a known reward, every one of the six pairs per prompt."""
    pairs, rewards = [], {}
    for prompt in ("first prompt", "second prompt"):
        answers = [f"{prompt} answer {k}" for k in range(4)]
        rewards.update(dict(zip(answers, (0.5, 2.0, -1.0, 1.0))))
        for a, b in itertools.combinations(answers, 2):
            pairs.append(PreferencePair(prompt, a, b, metadata={"kind": "within_prompt"}))
    margins = np.array([rewards[p.response_a] - rewards[p.response_b] for p in pairs])
    return pairs, margins


def test_reward_labelled_rows_pair_each_prompts_best_answer_with_its_worst():
    pairs, margins = _pairs_with_rewards()
    rows = reward_labelled_rows(pairs, margins, requested=set())
    assert [(prompt, chosen, rejected) for prompt, chosen, rejected, _ in rows] == [
        (prompt, f"{prompt} answer 1", f"{prompt} answer 2") for prompt in ("first prompt", "second prompt")
    ]
    assert all(conf == round(1 / (1 + np.exp(-3.0)), 4) for *_, conf in rows)


def test_reward_labelled_rows_skip_pairs_people_were_asked_about(tmp_path):
    pairs, margins = _pairs_with_rewards()
    asked = next(
        p for p in pairs if {p.response_a, p.response_b} == {"first prompt answer 1", "first prompt answer 2"}
    )
    rows = reward_labelled_rows(pairs, margins, requested={asked.pair_id})
    first = next(row for row in rows if row[0] == "first prompt")
    assert (first[1], first[2]) in {
        ("first prompt answer 1", "first prompt answer 0"),
        ("first prompt answer 3", "first prompt answer 2"),
    }
    train = tmp_path / "preferences.train.jsonl"
    train.write_text(json.dumps({"prompt": "p", "chosen": "human", "rejected": "x"}) + "\n", encoding="utf-8")
    write_reward_labelled(rows, tmp_path / "reward_labelled.jsonl", train)
    lines = [json.loads(line) for line in train.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 3 and lines[0]["chosen"] == "human" and set(lines[1]) == {"prompt", "chosen", "rejected"}
    confidences = [
        json.loads(line)["confidence"] for line in (tmp_path / "reward_labelled.jsonl").read_text().splitlines()
    ]
    assert len(confidences) == len(rows) and all(0.5 < c <= 1 for c in confidences)
