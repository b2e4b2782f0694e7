"""Where things live in a run directory (`runs/<name>/`): the one place that spells the layout.

One subdirectory per stage, named after it; the pipeline, the commands' `--run_dir` defaults,
the report and `mintline serve`'s hint all find a stage's files through these functions, so
moving a file means changing it here only. Kept free of heavy imports (`--help` imports it).
"""

from __future__ import annotations

from pathlib import Path

PREPARE, PRETRAIN, ANNOTATE, ALIGN, WATERMARK, RELEASE, PRUNE, REPORT = (
    "prepare",
    "pretrain",
    "annotate",
    "align",
    "watermark",
    "release",
    "prune",
    "report",
)
LEDGER_FILE = "ledger.sqlite"  # the label ledger's name in annotate/ and align/


def stage_dir(run_dir: str | Path, stage: str) -> Path:
    return Path(run_dir) / stage


def prepared_data(run_dir: str | Path) -> Path:
    """The cleaned corpus shards (train-*.jsonl, validation-*.jsonl)."""
    return stage_dir(run_dir, PREPARE) / "data"


def validation_shard(run_dir: str | Path) -> Path:
    return prepared_data(run_dir) / "validation-00000-of-00001.jsonl"


def train_shard(run_dir: str | Path) -> Path:
    """The first training shard (a few thousand paragraphs are all the align stage cuts prompts from)."""
    shards = sorted(prepared_data(run_dir).glob("train-00000-of-*.jsonl"))
    return shards[0] if shards else prepared_data(run_dir) / "train-00000-of-00001.jsonl"


def prepared_tokenizer(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, PREPARE) / "tokenizer"


def filter_report(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, PREPARE) / "filter_report.json"


def pretrained_model(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, PRETRAIN) / "model"


def pretrain_log_history(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, PRETRAIN) / "log_history.json"


def aligned_model(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, ALIGN) / "model"


def ledgers(run_dir: str | Path) -> list[Path]:
    """The run's label ledgers, first choice first: Label Studio's (annotate/), then the align stage's."""
    return [stage_dir(run_dir, ANNOTATE) / LEDGER_FILE, stage_dir(run_dir, ALIGN) / LEDGER_FILE]


def watermark_key(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, WATERMARK) / "key.json"


def watermark_detection(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, WATERMARK) / "detection.json"


def release_bundle(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, RELEASE) / "bundle"


def release_keys(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, RELEASE) / "keys"


def pruned_model(run_dir: str | Path) -> Path:
    return stage_dir(run_dir, PRUNE) / "model"
