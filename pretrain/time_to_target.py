"""Time to a target validation loss: how a training recipe is judged, as the speedruns judge it.

Equal tokens is not equal quality: a recipe wins when it reaches the same validation loss for
less time. The engine writes `training_seconds` (wall-clock seconds inside optimizer steps;
evaluations and checkpoints excluded, so how often a run evaluates does not change its figure)
into every evaluation it logs. From that curve a run states when it first reached a target loss,
interpolated linearly between the two evaluations around the crossing, and, given an earlier run
as its baseline (`--compare_to`, e.g. the same run with `--recipe dense`), the ratio of the two.

Two separate runs are compared here, so the ratio is only as fair as the machine was steady
across them; benchmarks/frugal.py interleaves the arms step by step in one process for that reason.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from pretrain.errors import ConfigError

TRAINING_SECONDS = "training_seconds"


class TrainingClock(TrainerCallback):
    """Sums the wall-clock seconds between each step's begin and end; a resumed run continues its sum."""

    def __init__(self):
        self.seconds = 0.0
        self._started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        logged = [entry[TRAINING_SECONDS] for entry in state.log_history if TRAINING_SECONDS in entry]
        self.seconds = logged[-1] if logged else 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None


def crossing(points: list[dict], target: float, loss_key: str = "loss") -> dict | None:
    """The first point where `loss_key` reaches `target`: every other number interpolated linearly
    between the two evaluations around the crossing. None if the curve never reaches it."""
    for before, after in zip(points, points[1:]):
        if after[loss_key] <= target:
            if before[loss_key] <= target:
                return dict(before)
            share = (before[loss_key] - target) / (before[loss_key] - after[loss_key])
            numbers = (key for key in before if key != loss_key and isinstance(before[key], int | float))
            return {key: before[key] + share * (after[key] - before[key]) for key in numbers if key in after}
    return None


def loss_curve(log_history: list[dict], tokens_per_step: int) -> list[dict]:
    """Every logged evaluation that carries its training time: step, tokens, training seconds, loss."""
    return [
        {
            "step": entry["step"],
            "tokens": entry["step"] * tokens_per_step,
            TRAINING_SECONDS: entry[TRAINING_SECONDS],
            "eval_loss": entry["eval_loss"],
        }
        for entry in log_history
        if "eval_loss" in entry and TRAINING_SECONDS in entry
    ]


def load_baseline(path: str | Path) -> tuple[Path, list[dict]]:
    """The evaluation curve of an earlier run: a pretrain output directory or a run directory holding one."""
    path = Path(path)
    candidates = [path / "log_history.json", path / "pretrain" / "log_history.json"]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is None:
        raise ConfigError(f"compare_to: {path} holds no log_history.json (a finished `mintline pretrain` output)")
    try:
        history = json.loads(found.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"compare_to: {found} is not readable JSON ({exc})") from exc
    curve = [
        {"step": entry["step"], TRAINING_SECONDS: entry[TRAINING_SECONDS], "eval_loss": entry["eval_loss"]}
        for entry in history
        if isinstance(entry, dict) and "eval_loss" in entry and TRAINING_SECONDS in entry
    ]
    if len(curve) < 2:
        raise ConfigError(
            f"compare_to: {found} has no timed evaluations (a run from before training_seconds was logged); "
            "train the baseline again"
        )
    return found.parent, curve


def time_to_target(
    curve: list[dict],
    target_loss: float | None = None,
    baseline: tuple[Path, list[dict]] | None = None,
) -> dict | None:
    """When `curve` first reached the target (default: the baseline's final loss), and the ratio to the
    baseline's own time to it. None when there is neither a target nor a baseline."""
    if target_loss is None and baseline is None:
        return None
    source, baseline_curve = baseline if baseline is not None else (None, None)
    target = target_loss if target_loss is not None else baseline_curve[-1]["eval_loss"]
    result: dict = {"target_loss": round(target, 4), "reached": False}
    at = crossing(curve, target, loss_key="eval_loss")
    if at is not None:
        result.update(
            {
                "reached": True,
                "step": round(at["step"], 1),
                "tokens": round(at["tokens"]),
                TRAINING_SECONDS: round(at[TRAINING_SECONDS], 2),
            }
        )
    if baseline_curve is not None:
        base = crossing(baseline_curve, target, loss_key="eval_loss")
        result["baseline"] = str(source)
        result["baseline_final_loss"] = round(baseline_curve[-1]["eval_loss"], 4)
        result["baseline_training_seconds"] = round(base[TRAINING_SECONDS], 2) if base else None
        if at is not None and base:
            result["time_ratio"] = round(at[TRAINING_SECONDS] / base[TRAINING_SECONDS], 3)
    return result
