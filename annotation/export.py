"""Export of aggregated labels as TRL preference JSONL, each row with its provenance.

A row is `{"prompt", "chosen", "rejected"}` (what TRL's DPOTrainer and RewardTrainer read)
plus `pair_id`, `model` and `provenance` = {kind, label, votes, annotators, confidence}. The
provenance keys are the same on every row so that `datasets` infers one schema.
"""

from __future__ import annotations

import json
import logging
import os

from annotation.atomic import atomic_text_writer

log = logging.getLogger("annotation")


def trl_row(pair, label) -> dict:
    if label.choice == "b":
        chosen, rejected = pair.response_b, pair.response_a
    else:  # "a", or a tie written in the original order (marked in provenance.label)
        chosen, rejected = pair.response_a, pair.response_b
    return {
        "prompt": pair.prompt,
        "chosen": chosen,
        "rejected": rejected,
        "pair_id": pair.pair_id,
        "model": pair.model,
        "provenance": {
            "kind": label.kind,
            "label": label.choice,
            "votes": label.votes,
            "annotators": label.annotators,
            "confidence": label.confidence,
        },
    }


def write_trl_jsonl(ledger, path: str | os.PathLike, include_pseudo: bool = False, include_ties: bool = False) -> int:
    """Write the ledger's labels atomically; returns the number of rows."""
    written, textless = 0, 0
    with atomic_text_writer(path) as handle:
        for label in ledger.labels(include_pseudo=include_pseudo):
            if label.choice == "tie" and not include_ties:
                continue
            if not ledger.has_pair(label.pair_id):  # a pseudo label recorded without its pair's text
                textless += 1
                continue
            handle.write(json.dumps(trl_row(ledger.pair(label.pair_id), label), ensure_ascii=False) + "\n")
            written += 1
    if textless:
        log.warning(
            "%s: %d pseudo labels left out: their pairs' text is not in the ledger "
            "(pass pairs= to record_pseudo_labels)",
            path,
            textless,
        )
    return written
