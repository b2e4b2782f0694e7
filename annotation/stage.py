"""The annotation stage as library calls: what `mintline annotate …` and the pipeline run.

Every call takes an `AnnotationConfig` (a dataclass, safe to write to run.json: it holds no
secret) and returns a dict of figures. State lives in `config.workdir` (`<run_dir>/annotate/`):
`ledger.sqlite` (the label ledger, bound to one Label Studio project) and `preferences.jsonl`
(the TRL export).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from annotation.config import LabelStudioSettings, Secret
from annotation.errors import LedgerError
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair

LEDGER_NAME = "ledger.sqlite"
EXPORT_NAME = "preferences.jsonl"


@dataclass
class AnnotationOptions:
    seed: int = field(default=0, metadata={"help": "seed of the draw of which response is displayed as A"})
    model_version: str = field(
        default="mintline-reward-model", metadata={"help": "Label Studio model_version of the pushed predictions"}
    )
    overlap: int = field(default=1, metadata={"help": "annotators per task (the project's maximum_annotations)"})
    label_budget: int | None = field(
        default=None, metadata={"help": "labels the run may use; status shows the share used"}
    )
    batch_size: int = field(default=250, metadata={"help": "tasks per import request"})

    def __post_init__(self):
        if self.overlap < 1:
            raise ValueError(f"overlap: must be >= 1, got {self.overlap}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.label_budget is not None and self.label_budget < 1:
            raise ValueError(f"label_budget: must be >= 1, got {self.label_budget}")
        if not self.model_version.strip():
            raise ValueError("model_version: must not be empty")


@dataclass
class AnnotationConfig(AnnotationOptions):
    workdir: str = "runs/default/annotate"  # the stage's directory: ledger.sqlite, preferences.jsonl
    labelstudio: LabelStudioSettings = field(default_factory=LabelStudioSettings)
    ledger: str | None = None  # another ledger file (the align stage's, say) instead of WORKDIR/ledger.sqlite

    @property
    def ledger_path(self) -> Path:
        return Path(self.ledger) if self.ledger else Path(self.workdir) / LEDGER_NAME

    @property
    def export_path(self) -> Path:
        return Path(self.workdir) / EXPORT_NAME


def open_ledger(config: AnnotationConfig, must_exist: bool = False) -> Ledger:
    if must_exist and not config.ledger_path.exists():
        raise LedgerError(f"no ledger at {config.ledger_path}: run `mintline annotate init` (or push) first")
    return Ledger(config.ledger_path)


def _connect(config: AnnotationConfig, ledger: Ledger, api_key: str | Secret | None, create: bool = True):
    from annotation.labelstudio import connect
    from annotation.project import bind_project

    client = connect(config.labelstudio, api_key)
    project_id, created = bind_project(
        client, ledger, config.labelstudio, config.model_version, config.overlap, create
    )
    return client, project_id, created


def init_project(config: AnnotationConfig, api_key: str | Secret | None = None) -> dict:
    """Create (or find by title) the Label Studio project and bind the ledger to it."""
    with open_ledger(config) as ledger:
        client, project_id, created = _connect(config, ledger, api_key)
        return {
            "url": client.url,
            "project_id": project_id,
            "project_title": config.labelstudio.project_title,
            "created": created,
            "ledger": os.fspath(config.ledger_path),
        }


def push(
    config: AnnotationConfig,
    pairs: list[PreferencePair],
    round: int | None = None,
    api_key: str | Secret | None = None,
) -> dict:
    from annotation.push import push_pairs

    with open_ledger(config) as ledger:
        client, project_id, _ = _connect(config, ledger, api_key)
        figures = push_pairs(
            client,
            ledger,
            project_id,
            pairs,
            seed=config.seed,
            model_version=config.model_version,
            round=round,
            batch_size=config.batch_size,
        )
        return {"url": client.url, "project_id": project_id, **figures}


def pull(config: AnnotationConfig, api_key: str | Secret | None = None) -> dict:
    from annotation.pull import pull_annotations

    with open_ledger(config, must_exist=True) as ledger:
        client, project_id, _ = _connect(config, ledger, api_key, create=False)  # a pull never creates a project
        figures = pull_annotations(client, ledger, project_id)
        return {"url": client.url, "project_id": project_id, **figures, "totals": ledger.counts()}


def export(
    config: AnnotationConfig,
    output: str | os.PathLike | None = None,
    include_pseudo: bool = False,
    include_ties: bool = False,
) -> dict:
    path = Path(output) if output else config.export_path
    with open_ledger(config, must_exist=True) as ledger:
        rows = ledger.export_trl(path, include_pseudo=include_pseudo, include_ties=include_ties)
    return {"path": os.fspath(path), "rows": rows, "format": "trl", "ledger": os.fspath(config.ledger_path)}


def status(config: AnnotationConfig) -> dict:
    """Ledger figures (no server needed): tasks, labels, pending, skips, agreement, budget used."""
    with open_ledger(config, must_exist=True) as ledger:
        counts = ledger.counts()
        url = ledger.get_meta("labelstudio_url")
        project = ledger.get_meta("labelstudio_project")
        figures = {
            "ledger": os.fspath(config.ledger_path),
            "labelstudio_url": url,
            "project_id": int(project) if project else None,
            **counts,
            "agreement": ledger.agreement(),
            "position_bias": ledger.position_bias(),
            "last_pull": ledger.get_meta("labelstudio_last_pull"),
        }
    budget = config.label_budget
    figures["label_budget"] = budget
    figures["budget_used"] = round(counts["votes"] / budget, 4) if budget else None
    return figures
