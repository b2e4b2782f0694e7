"""Chain the stages in one run directory: validate everything first, then run, skip or resume.

Every stage keeps its own record in run.json, so a re-run skips what finished with the same
inputs and config, resumes what was interrupted (pretraining from its last sealed checkpoint,
alignment from its ledger), and re-runs a stage whose config changed together with every stage
after it (their inputs, the earlier stage's outputs, changed).
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mintline import layout
from mintline.pipeline.config import RunConfig
from mintline.pipeline.release_stage import run_release
from mintline.pipeline.stages import ReleaseStageConfig, Stage, StageOutcome, parse_section, run_stage
from mintline.pipeline.watermark_stage import WatermarkStageConfig, run_watermark

log = logging.getLogger("mintline")


def _validation_shard(run_dir: Path) -> str:
    return str(layout.validation_shard(run_dir))


def _train_shard(run_dir: Path) -> str:
    return str(layout.train_shard(run_dir))


PIPELINE: tuple[Stage, ...] = (
    Stage("prepare", command="prepare", prepare_argv=lambda rd: ["--run_dir", str(rd)]),
    Stage("pretrain", command="pretrain", prepare_argv=lambda rd: ["--run_dir", str(rd)]),
    Stage(
        "align",
        command="align",
        verbs=("run",),
        prepare_argv=lambda rd: [
            "--run_dir",
            str(rd),
            "--policy_model",
            str(layout.pretrained_model(rd)),
            # candidate prompts from the training split (thousands of paragraphs), the gold judge's held-out
            # prompts from validation, which neither pretraining nor DPO saw
            "--corpus",
            _train_shard(rd),
            "--eval_corpus",
            _validation_shard(rd),
            "--output_dir",
            str(layout.stage_dir(rd, layout.ALIGN)),
        ],
    ),
    Stage("watermark", runner=run_watermark, dataclass_types=(WatermarkStageConfig,), prepare_argv=lambda rd: []),
    Stage("release", runner=run_release, dataclass_types=(ReleaseStageConfig,), prepare_argv=lambda rd: []),
)


@dataclass
class PipelineResult:
    run_dir: Path
    outcomes: list[StageOutcome] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    waiting_for: int = 0
    report: dict[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return not self.waiting_for and len(self.outcomes) == len(PIPELINE)


def validate(config: RunConfig, quiet: bool) -> None:
    """Parse every section with its stage's parser before any work: bad keys fail in a second."""
    run_dir = Path(config.run_dir)
    for stage in PIPELINE:
        parse_section(
            stage, config.section(stage.name), run_dir, quiet, origin=functools.partial(config.origin, stage.name)
        )


def run_pipeline(config: RunConfig, quiet: bool = False) -> PipelineResult:
    run_dir = Path(config.run_dir)
    validate(config, quiet)
    result = PipelineResult(run_dir)
    total = len(PIPELINE)
    for number, stage in enumerate(PIPELINE, 1):
        announce(f"[{number}/{total}] {stage.name}", quiet)
        started = time.perf_counter()
        outcome = run_stage(stage, config.section(stage.name), run_dir, quiet)
        result.seconds[stage.name] = round(time.perf_counter() - started, 1)
        result.outcomes.append(outcome)
        state = "skipped (up to date)" if outcome.skipped else f"done in {result.seconds[stage.name]:.0f} s"
        if outcome.waiting_for:
            state = f"waiting for {outcome.waiting_for} labels"
        announce(f"[{number}/{total}] {stage.name}: {state}", quiet)
        if outcome.waiting_for:
            result.waiting_for = outcome.waiting_for
            break
    return result


def announce(line: str, quiet: bool) -> None:
    if not quiet:
        sys.stderr.write(f"\n▶ {line}\n")
        sys.stderr.flush()


def stage_wall_seconds(run_dir: Path) -> dict[str, Any]:
    """The wall time each stage's last real (not skipped) execution took, from run.json."""
    from mintline.journal import Journal

    stages = Journal(run_dir).load().get("stages", {})
    return {name: record.get("wall_seconds") for name, record in stages.items()}
