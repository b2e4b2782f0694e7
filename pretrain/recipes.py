"""Training recipes: `dense` (the engine as it always was) and `frugal` (reach dense's loss for less).

A recipe picks the levers that are not plain hyper-parameters: the optimizer family, the shape
and horizon of the learning-rate schedule, and a learning-rate multiplier. Everything else
(model, data, batch, steps, precision, pruning) stays the user's own `--flag`. benchmarks/frugal.py
measures each lever alone and together, to the dense run's final validation loss; the README
holds the figures and which levers were kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial


@dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: str = "adamw"  # adamw | muon (Muon for 2-D hidden matrices, AdamW for the rest)
    schedule: str = "cosine"  # cosine | wsd (warm-up, stable, decay)
    horizon: float = 1.0  # the schedule reaches its minimum at this fraction of max_steps, then stays there
    decay_fraction: float = 0.2  # wsd: share of the horizon spent decaying
    lr_multiplier: float = 1.0  # applied to --learning_rate
    # sequences per optimizer step, as a multiple of --per_device_batch_size; the step counts (max_steps,
    # warmup, eval/save/logging intervals) scale inversely, so the run still reads the same tokens
    batch_multiplier: float = 1.0

    @property
    def changes_engine(self) -> bool:
        return self != Recipe(self.name)


RECIPES: dict[str, Recipe] = {
    "dense": Recipe("dense"),
    # benchmarks/frugal.py at the pipeline's budget (tiny, 1,200 steps): the decayed curve crosses dense's final loss
    # near a third of the tokens, so the decay ends there (no tokens spent in WSD's flat stable phase before the
    # target), and at dense's batch Muon orthogonalises half as often per token as at half the batch. It needs a
    # budget long enough to reach dense's loss by that third: at nano's 60 steps it does not (README)
    "frugal": Recipe("frugal", optimizer="muon", schedule="wsd", decay_fraction=0.2, horizon=1 / 3),
    # the earlier frugal recipe, for short budgets: twice the steps at half the batch, decaying at the end; never
    # worse than dense at dense's step count in any budget measured, but slower to dense's loss at the pipeline's
    "frugal_short": Recipe("frugal_short", optimizer="muon", schedule="wsd", decay_fraction=0.2, batch_multiplier=0.5),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"recipe: {name!r} is not one of {', '.join(RECIPES)}")
    return RECIPES[name]


def apply_recipe(args):
    """The PretrainArguments the engine runs for `args.recipe`: the batch re-sizing (same tokens); dense: `args`."""
    from dataclasses import replace

    recipe = get_recipe(args.recipe)
    if recipe.batch_multiplier == 1.0:
        return args
    batch = max(1, round(args.per_device_batch_size * recipe.batch_multiplier))
    scale = args.per_device_batch_size / batch

    def steps(value: int) -> int:
        return max(1, round(value * scale))

    return replace(
        args,
        per_device_batch_size=batch,
        max_steps=steps(args.max_steps),
        warmup_steps=min(steps(args.warmup_steps), steps(args.max_steps) - 1) if args.warmup_steps else 0,
        eval_steps=steps(args.eval_steps),
        save_steps=steps(args.save_steps),
        logging_steps=steps(args.logging_steps),
    )


def lr_factor(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float,
    schedule: str = "cosine",
    horizon: float = 1.0,
    decay_fraction: float = 0.2,
) -> float:
    """The learning-rate multiplier at optimizer step `step` (LambdaLR's convention: 0-based).

    With horizon 1 and schedule cosine this is transformers' cosine_with_min_lr (the dense recipe's).
    """
    end = max(warmup_steps + 1, round(total_steps * horizon))
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    step = min(step, end)
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, end - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "wsd":
        decay_steps = max(1, round((end - warmup_steps) * decay_fraction))
        decay_start = end - decay_steps
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / decay_steps
        return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"schedule: {schedule!r} is not cosine or wsd")


def build_scheduler(recipe: Recipe, optimizer, warmup_steps: int, total_steps: int, min_ratio: float):
    from torch.optim.lr_scheduler import LambdaLR

    factor = partial(
        lr_factor,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        min_ratio=min_ratio,
        schedule=recipe.schedule,
        horizon=recipe.horizon,
        decay_fraction=recipe.decay_fraction,
    )
    return LambdaLR(optimizer, factor)
