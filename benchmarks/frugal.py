"""Frugal pretraining measured to the loss: time, CPU-seconds, FLOPs and energy to dense's final loss.

    python -m benchmarks.frugal [--quick] [--model tiny] [--steps 1200] [--arms dense,muon,frugal]

The dense baseline is the pipeline's pretraining as `mintline pretrain --recipe dense` runs it:
the same model preset and data, AdamW (fused, decay on matrices only), warm-up + cosine to 10%,
gradient clipping at 1, the default precision (`auto`: bf16 autocast where the CPU has native bf16,
else fp32; every arm trains in it, the precision arm in the other one). It
trains N optimizer steps; its final validation loss is the target. Every other arm changes one
lever (or, `frugal`, the recipe `mintline pretrain --recipe frugal` runs) and trains on the same
blocks in the same order from the same initial weights, until it reaches the target (found by
evaluating every few steps and interpolating linearly between the two evaluations around the
crossing) or until it cannot win any more. Every arm is evaluated the same way, on packed
validation blocks read as dense reads them (the target's own metric), whatever it trains with.

All arms live in this one process and take turns step by step (round robin), so whatever else
loads the machine hits them alike. Each arm's training time is the sum of its own steps (forward,
backward, clipping, optimizer, schedule, pruning events, and torch.compile's compilation inside its
first steps), in wall-clock seconds and process CPU-seconds; evaluations are not counted. FLOPs
are the engine's formula (pretrain/figures.py: 6N + 12·L·T·d_attn per token with N the current
parameter count, so a pruned model counts fewer) plus Muon's Newton-Schulz matmuls. Energy is an
estimate: CPU-seconds × a stated watts-per-core constant (no power meter is readable here), so its
ratio equals the CPU-seconds ratio.

Targets (issue 23): time to target <= 0.40× dense, FLOPs to target <= 0.5×, and the frugal arm's
loss after dense's full token budget no worse than dense's. The headline figures are the recipe as
`mintline run` trains it (`frugal_prune`: the recipe + the pipeline's pruning), or `frugal` where that
arm is left out. Ends with one JSON line.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # `python benchmarks/frugal.py`: this folder's pretrain.py would shadow the package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import copy
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from types import SimpleNamespace

from pretrain.recipes import RECIPES, Recipe
from pretrain.time_to_target import crossing

REPO = Path(__file__).resolve().parents[1]
# A stated constant, not a measurement: about what one busy core of a current server CPU draws
# (a 64-core, ~225 W EPYC: ~3.5 W per core, rounded up for memory and uncore).
WATTS_PER_CORE = 4.0
# the recipe as mintline run trains it (frugal + the pipeline's pruning), else the recipe alone
HEADLINE_ARMS = ("frugal_prune", "frugal")
MAX_TIME_RATIO = 1.25  # an arm slower than this to target has lost; stop it
SLOW_STEP_RATIO = 2.5  # an arm whose steps are this much slower than dense's cannot reach 0.4x; stop it


@dataclass(frozen=True)
class Arm:
    """One training run: a recipe plus the levers that are plain engine options."""

    name: str
    lever: str
    recipe: Recipe = RECIPES["dense"]
    precision: str = "auto"  # auto | fp32 | bf16 (autocast); auto as the engine resolves it (pretrain/precision.py)
    compile: bool = False
    prune: bool = False
    batch_multiplier: float = 1.0
    isolate_documents: bool = False  # packing without cross-document attention
    runs_to_end: bool = False  # train dense's whole token budget even after reaching the target


# the recipes' variants: the full run measures them; --quick keeps the single levers and the recipes
QUICK_SKIPS = (
    "horizon_third",
    "isolated_docs",
    "frugal_cosine",
    "frugal_half_batch",
    "frugal_decay_half",
    "frugal_decay_at_end",
    "frugal_short_prune",
    "frugal_prune_compile",
    "frugal_prune_isolated",
)


def default_arms(frugal: Recipe = RECIPES["frugal"], auto_precision: str = "fp32") -> list[Arm]:
    """Every arm trains in `auto_precision` (what precision auto resolves to here) but the precision lever."""
    dense = RECIPES["dense"]
    other = "fp32" if auto_precision == "bf16" else "bf16"
    return [
        Arm("dense", f"baseline: AdamW, cosine, {auto_precision} (auto)", runs_to_end=True),
        Arm(other, f"{other} instead of auto's {auto_precision}", precision=other),
        Arm("compile", "torch.compile (compile time counted)", compile=True),
        Arm("prune", "dynamic structured pruning (the pipeline's schedule)", prune=True),
        Arm("muon", "Muon for hidden matrices, AdamW for the rest", recipe=replace(dense, optimizer="muon")),
        Arm("wsd", "warm-up / stable / decay schedule", recipe=replace(dense, schedule="wsd")),
        Arm("lr2x", "learning rate x2", recipe=replace(dense, lr_multiplier=2.0)),
        Arm("batch_half", "half the batch, twice the steps (same tokens)", batch_multiplier=0.5),
        Arm("horizon_half", "schedule ends at half the token budget", recipe=replace(dense, horizon=0.5)),
        Arm("horizon_third", "schedule ends at a third of the token budget", recipe=replace(dense, horizon=1 / 3)),
        Arm("isolated_docs", "packing without cross-document attention", isolate_documents=True),
        Arm("frugal", "the frugal recipe (mintline pretrain --recipe frugal)", recipe=frugal, runs_to_end=True),
        # the recipe less one lever, or plus one that lost alone: does it still (not) pay in company?
        Arm("frugal_cosine", "frugal with dense's cosine instead of WSD", recipe=replace(frugal, schedule="cosine")),
        Arm("frugal_half_batch", "frugal at half the batch, twice the steps", recipe=frugal, batch_multiplier=0.5),
        Arm(
            "frugal_decay_half", "frugal with its decay ending at half the budget", recipe=replace(frugal, horizon=0.5)
        ),
        Arm("frugal_decay_at_end", "frugal with its decay ending at the end", recipe=replace(frugal, horizon=1.0)),
        # the short-budget recipe (the earlier frugal): half the batch, decay at the end
        Arm(
            "frugal_short",
            "frugal_short: half the batch, decay at the end",
            recipe=RECIPES["frugal_short"],
            runs_to_end=True,
        ),
        Arm(
            "frugal_short_prune",
            "frugal_short + dynamic structured pruning",
            recipe=RECIPES["frugal_short"],
            prune=True,
            runs_to_end=True,
        ),
        Arm(
            "frugal_prune",
            "frugal + dynamic structured pruning, done by 20% of the steps (mintline run's default)",
            recipe=frugal,
            prune=True,
            runs_to_end=True,
        ),
        # compile paid alone where bf16 is native; with pruning every pruning event changes shapes and recompiles
        Arm(
            "frugal_prune_compile",
            "mintline run's default + torch.compile (recompiled after each pruning event)",
            recipe=frugal,
            prune=True,
            compile=True,
            runs_to_end=True,
        ),
        # packing without cross-document attention in company (alone: isolated_docs); README: "measured to the loss"
        Arm(
            "frugal_prune_isolated",
            "mintline run's default + packing without cross-document attention",
            recipe=frugal,
            prune=True,
            isolate_documents=True,
            runs_to_end=True,
        ),
    ]


@dataclass
class Curve:
    """What one arm did: evaluations with the cumulative cost at each."""

    arm: Arm
    points: list[dict] = field(default_factory=list)  # tokens, steps, wall, cpu, flops, loss
    step_seconds: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    flops: float = 0.0
    tokens: int = 0
    steps: int = 0
    stopped: str = ""


# -- data -----------------------------------------------------------------------------------


def prepare(root: Path, block: int, data: Path | None = None, tokenizer_dir: Path | None = None):
    """Shards + tokenizer (default: the built-in corpus, as benchmarks/pruning.py builds them), tokenized once."""
    from transformers import AutoTokenizer

    from benchmarks.pruning import build_data
    from pretrain.data import PackedBlocks, find_shards, tokenize_split

    if data is None or tokenizer_dir is None:
        data, tokenizer_dir = root / "data", root / "tokenizer"
        if not (tokenizer_dir / "tokenizer.json").is_file():  # a kept --workdir is reused
            data, tokenizer_dir = build_data(root)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    splits = {}
    for split in ("train", "validation"):
        tokens = tokenize_split(find_shards(data, split), tokenizer, tokenizer_dir, root / "cache", split)
        splits[split] = PackedBlocks(tokens, block, len(tokenizer))
    return tokenizer, splits["train"], splits["validation"]


def block_order(num_blocks: int, seed: int, needed: int) -> list[int]:
    """The one data order every arm reads: shuffled epochs, reshuffled each time round."""
    import torch

    order: list[int] = []
    epoch = 0
    while len(order) < needed:
        generator = torch.Generator().manual_seed(seed + epoch)
        order += torch.randperm(num_blocks, generator=generator).tolist()
        epoch += 1
    return order[:needed]


# -- one arm --------------------------------------------------------------------------------


def evaluate(model, blocks) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        losses = [model(input_ids=batch, labels=batch).loss.item() for batch in blocks.split(16)]
    model.train()
    return statistics.fmean(losses)


def flops_per_token_now(model, block: int) -> float:
    from pretrain.figures import count_parameters, flops_per_token

    config = model.config
    return flops_per_token(
        count_parameters(model),
        config.num_hidden_layers,
        config.num_attention_heads * getattr(config, "head_dim", config.hidden_size // config.num_attention_heads),
        block,
    )


def train_arm(arm: Arm, setup: dict, curve: Curve):
    """A generator: each `next()` trains one optimizer step (timed); evaluations in between are not timed."""
    import torch
    from transformers import AutoModelForCausalLM, get_scheduler

    from pretrain.data import document_position_ids
    from pretrain.optimizers import MuonWithAdamW, build_optimizer
    from pretrain.recipes import build_scheduler

    batch = max(1, round(setup["batch"] * arm.batch_multiplier * arm.recipe.batch_multiplier))
    steps = setup["steps"] * setup["batch"] // batch
    warmup = max(1, round(setup["warmup"] * setup["batch"] / batch))
    torch.manual_seed(setup["seed"])
    # each arm its own config: pruning shrinks the config's head and neuron counts in place
    model = AutoModelForCausalLM.from_config(copy.deepcopy(setup["model_config"]))
    model.train()
    lr = setup["learning_rate"] * arm.recipe.lr_multiplier
    optimizer = build_optimizer(arm.recipe.optimizer, model, lr, 0.1)
    if not arm.recipe.changes_engine:  # the dense recipe: exactly the Trainer's scheduler
        scheduler = get_scheduler(
            "cosine_with_min_lr", optimizer, warmup, steps, scheduler_specific_kwargs={"min_lr_rate": 0.1}
        )
    else:
        scheduler = build_scheduler(arm.recipe, optimizer, warmup, steps, 0.1)
    pruner = trainer_view = None
    if arm.prune:
        from pretrain.sparsity.callbacks import StructuredPruningCallback
        from pretrain.sparsity.config import SparsityArguments

        pruner = StructuredPruningCallback(
            SparsityArguments(**setup["pruning"], importance_window=max(5, steps // 40), measure_throughput=False)
        )
        trainer_view = SimpleNamespace(
            args=SimpleNamespace(world_size=1, output_dir=str(setup["out"]), seed=setup["seed"]),
            state=SimpleNamespace(global_step=0, max_steps=steps, is_world_process_zero=True),
            control=SimpleNamespace(should_save=False),
        )
        pruner.on_train_begin(*vars(trainer_view).values(), model=model)
    forward = torch.compile(model) if arm.compile else model
    precision = setup["precision"] if arm.precision == "auto" else arm.precision
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    order, train = setup["order"], setup["train"]
    eval_every_tokens = setup["eval_every"] * setup["batch"] * setup["block"]
    per_token = flops_per_token_now(model, setup["block"])
    curve.points.append(
        {"tokens": 0, "steps": 0, "wall": 0.0, "cpu": 0.0, "flops": 0.0, "loss": evaluate(model, setup["validation"])}
    )
    for step in range(steps):
        yield
        indices = order[step * batch : (step + 1) * batch]
        inputs = torch.stack([train[i]["input_ids"] for i in indices])
        wall, cpu = time.perf_counter(), time.process_time()
        documents = {}
        if arm.isolate_documents:  # timed: the position ids, and the block-diagonal mask built from them
            documents = {"position_ids": document_position_ids(inputs, setup["eos"]), "use_cache": False}
        if pruner is not None:
            pruner.on_step_begin(*vars(trainer_view).values(), model=model)
        with autocast:
            loss = forward(input_ids=inputs, labels=inputs, **documents).loss
        loss.backward()
        # drop the graph now: a live grad_fn keeps each weight's gradient accumulator, which remembers
        # the old shape after a pruning event
        del loss
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if pruner is not None:
            pruner.on_pre_optimizer_step(*vars(trainer_view).values(), model=model)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step_flops = per_token * inputs.numel()
        if isinstance(optimizer, MuonWithAdamW):
            step_flops += optimizer.newton_schulz_flops()
        if pruner is not None:
            trainer_view.state.global_step = step + 1
            events = len(pruner.events)
            pruner.step_end(*vars(trainer_view).values(), model=model, optimizer=optimizer)
            if len(pruner.events) != events:
                per_token = flops_per_token_now(model, setup["block"])
        elapsed = time.perf_counter() - wall
        curve.step_seconds.append(elapsed)
        curve.wall += elapsed
        curve.cpu += time.process_time() - cpu
        curve.flops += step_flops
        curve.tokens += inputs.numel()
        curve.steps = step + 1
        if (
            curve.tokens // eval_every_tokens != (curve.tokens - inputs.numel()) // eval_every_tokens
            or step == steps - 1
        ):
            curve.points.append(
                {
                    "tokens": curve.tokens,
                    "steps": curve.steps,
                    "wall": curve.wall,
                    "cpu": curve.cpu,
                    "flops": curve.flops,
                    "loss": evaluate(model, setup["validation"]),
                }
            )


# -- the run --------------------------------------------------------------------------------


def run_arms(arms: list[Arm], setup: dict, log=print) -> dict[str, Curve]:
    curves = {arm.name: Curve(arm) for arm in arms}
    live = {arm.name: train_arm(arm, setup, curves[arm.name]) for arm in arms}
    dense = curves["dense"]
    target = None
    rounds = 0
    while live:
        for name in list(live):
            try:
                next(live[name])
            except StopIteration:
                del live[name]
                if name == "dense":
                    target = dense.points[-1]["loss"]
                    log(f"dense finished: target loss {target:.4f} after {dense.wall:.1f}s")
        rounds += 1
        for name in list(live):
            curve = curves[name]
            if name == "dense":
                continue
            reason = ""
            if target is not None:
                if not curve.arm.runs_to_end and crossing(curve.points, target) is not None:
                    reason = "reached the target"
                elif curve.wall > MAX_TIME_RATIO * dense.wall and not curve.arm.runs_to_end:
                    reason = f"over {MAX_TIME_RATIO}x dense's time without reaching the target"
            elif len(curve.step_seconds) == 4 and len(dense.step_seconds) >= 4:
                slower = statistics.median(curve.step_seconds[2:4]) / statistics.median(dense.step_seconds[1:4])
                if slower > SLOW_STEP_RATIO and not curve.arm.runs_to_end:
                    reason = f"steps {slower:.1f}x slower than dense's"
            if reason:
                curve.stopped = reason
                live[name].close()
                del live[name]
                log(f"{name}: stopped after {curve.steps} steps ({reason})")
        if rounds % 20 == 0:
            log("  ".join(f"{n}:{curves[n].steps}" for n in curves))
    return curves


def summarise(curves: dict[str, Curve], watts_per_core: float) -> dict:
    dense = curves["dense"]
    target = dense.points[-1]["loss"]
    table = {}
    for name, curve in curves.items():
        at = (
            crossing(curve.points, target)
            if name != "dense"
            else {k: getattr(dense, k) for k in ("wall", "cpu", "flops", "tokens")}
        )
        slowdown = (
            statistics.median(curve.step_seconds[2:]) / statistics.median(dense.step_seconds[2:])
            if len(curve.step_seconds) > 2
            else None
        )
        row = {
            "lever": curve.arm.lever,
            "reached": at is not None,
            "time_to_target_ratio": round(at["wall"] / dense.wall, 3) if at else None,
            "cpu_seconds_to_target_ratio": round(at["cpu"] / dense.cpu, 3) if at else None,
            "flops_to_target_ratio": round(at["flops"] / dense.flops, 3) if at else None,
            "tokens_to_target_ratio": round(at["tokens"] / dense.tokens, 3) if at else None,
            "step_time_vs_dense": round(slowdown, 3) if slowdown else None,
            "final_loss": round(curve.points[-1]["loss"], 4),
            "tokens_trained": curve.tokens,
            "stopped": curve.stopped or ("full budget" if curve.tokens >= dense.tokens else ""),
        }
        if at is None:  # a lower bound: it had not reached the target when it stopped
            row["time_ratio_at_stop"] = round(curve.wall / dense.wall, 3)
        table[name] = row
    result = {"target_loss": round(target, 4), "dense_final_loss": round(target, 4)}
    # the headline is the recipe as `mintline run` trains it (with its pruning) where that arm ran
    headline = next((name for name in HEADLINE_ARMS if name in curves), None)
    if headline is not None:
        row = table[headline]
        result.update(
            {
                "headline_arm": headline,
                "time_to_target_ratio": row["time_to_target_ratio"],
                "flops_to_target_ratio": row["flops_to_target_ratio"],
                "cpu_seconds_to_target_ratio": row["cpu_seconds_to_target_ratio"],
                # CPU-seconds × a constant: the same ratio as CPU-seconds, in joules below
                "energy_to_target_ratio": row["cpu_seconds_to_target_ratio"],
                "frugal_final_loss": row["final_loss"],
            }
        )
        at = crossing(curves[headline].points, target)
        result["energy_to_target_joules"] = {
            "dense": round(dense.cpu * watts_per_core, 1),
            "frugal": round(at["cpu"] * watts_per_core, 1) if at else None,
            "watts_per_core": watts_per_core,
            "basis": "estimate: process CPU-seconds x watts_per_core (no power meter readable)",
        }
    result["ablation"] = table
    return result


def plot(curves: dict[str, Curve], target: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_time, by_flops) = plt.subplots(1, 2, figsize=(13, 5))
    palette = plt.cm.tab20.colors  # the default cycle repeats after 10 colours; there are up to 20 arms
    for index, (name, curve) in enumerate(curves.items()):
        style = {"linewidth": 2.5} if name in ("dense", "frugal", "frugal_prune") else {"linewidth": 1, "alpha": 0.8}
        style["color"] = palette[index % len(palette)]
        by_time.plot([p["wall"] for p in curve.points], [p["loss"] for p in curve.points], label=name, **style)
        by_flops.plot([p["flops"] for p in curve.points], [p["loss"] for p in curve.points], label=name, **style)
    for axis, label in ((by_time, "training wall seconds (own turns)"), (by_flops, "training FLOPs")):
        axis.axhline(target, color="black", linestyle="--", linewidth=0.8, label="target (dense final)")
        axis.set_xlabel(label)
        axis.set_ylabel("validation loss")
        lowest = min(p["loss"] for curve in curves.values() for p in curve.points)
        axis.set_ylim(min(lowest, target) - 0.1, target + 2.5)
    by_time.legend(fontsize=8)
    figure.suptitle("loss to the dense baseline's final loss")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def run_benchmark(
    model: str = "nano",
    steps: int = 60,
    batch: int = 16,
    block: int = 128,
    learning_rate: float = 3e-3,
    eval_every: int = 3,
    eval_blocks: int = 32,
    threads: int = 1,
    arms: list[str] | None = None,
    workdir: Path | None = None,
    out: Path | None = None,
    data_dir: Path | None = None,
    tokenizer_dir: Path | None = None,
    watts_per_core: float = WATTS_PER_CORE,
    quick: bool = False,
    seed: int = 42,
    log=print,
) -> dict:
    """Train the arms interleaved and return the summary (the JSON the script prints)."""
    import torch

    from pretrain.presets import build_config

    torch.set_num_threads(threads)
    started = time.time()
    from pretrain.precision import choose_precision

    auto = choose_precision("auto")  # on a CPU: bf16 where it is native, else fp32
    chosen = default_arms(auto_precision=auto.dtype_name)
    if quick and not arms:  # the single levers, the recipe and mintline run's default; the variants: full run
        chosen = [arm for arm in chosen if arm.name not in QUICK_SKIPS]
    if arms:
        unknown = sorted(set(arms) - {arm.name for arm in chosen})
        if unknown:
            raise ValueError(f"arms: unknown {unknown}; choose from {[arm.name for arm in chosen]}")
        chosen = [arm for arm in chosen if arm.name in arms or arm.name == "dense"]
    with tempfile.TemporaryDirectory(prefix="frugal-bench-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        tokenizer, train, validation = prepare(root, block, data_dir, tokenizer_dir)
        setup = {
            "model_config": build_config(
                model, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
            ),
            "train": train,
            "validation": torch.stack([validation[i]["input_ids"] for i in range(min(eval_blocks, len(validation)))]),
            "order": block_order(len(train), seed, steps * batch),
            "steps": steps,
            "batch": batch,
            "block": block,
            "warmup": max(1, round(steps * 30 / 1200)),  # the pipeline's 30 of 1200
            "learning_rate": learning_rate,
            "eval_every": eval_every,
            "seed": seed,  # every arm's initial weights (the same for all) and the data order
            "eos": tokenizer.eos_token_id,
            "precision": auto.dtype_name,
            "out": root / "runs",
            # the pipeline's pruning (mintline/pipeline/default.yaml)
            "pruning": {"prune_heads": 0.5, "prune_neurons": 0.625, "prune_start": 0.05, "prune_end": 0.2},
        }
        curves = run_arms(chosen, setup, log=log)
    result = summarise(curves, watts_per_core)
    out = out or REPO / "runs" / "benchmarks" / "frugal"
    result["plot"] = str(plot(curves, result["target_loss"], out / "frugal_curves.png"))
    result.update(
        {
            "model": model,
            "steps": steps,
            "batch": batch,
            "block": block,
            "learning_rate": learning_rate,
            "threads": threads,
            "precision": {"auto": auto.dtype_name, "reason": auto.reason},
            "seed": seed,
            "frugal_recipe": asdict(RECIPES["frugal"]),
            "frugal_short_recipe": asdict(RECIPES["frugal_short"]),
            "wall_seconds": round(time.time() - started, 1),
        }
    )
    if "headline_arm" in result:
        result["targets_met"] = {
            "time_to_target_ratio<=0.40": (result["time_to_target_ratio"] or 9) <= 0.40,
            "flops_to_target_ratio<=0.5": (result["flops_to_target_ratio"] or 9) <= 0.5,
            "frugal_final_loss<=dense_final_loss": result["frugal_final_loss"] <= result["dense_final_loss"],
        }
    (out / "frugal.json").write_text(json.dumps({**result, "curves": {n: c.points for n, c in curves.items()}}))
    return result


def print_table(result: dict) -> None:
    print(f"target: dense final validation loss {result['target_loss']}")
    print(f"{'arm':32}{'time':>8}{'CPU-s':>8}{'FLOPs':>8}{'tokens':>8}{'step t':>8}{'final':>8}  stopped")
    for name, row in result["ablation"].items():
        cells = [
            row["time_to_target_ratio"] if row["reached"] else f">{row.get('time_ratio_at_stop', 0):.2f}",
            row["cpu_seconds_to_target_ratio"],
            row["flops_to_target_ratio"],
            row["tokens_to_target_ratio"],
            row["step_time_vs_dense"],
            row["final_loss"],
        ]
        text = "".join(f"{('-' if c is None else c if isinstance(c, str) else f'{c:.3f}'):>8}" for c in cells)
        print(f"{name:32}{text}  {row['stopped']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the nano preset, 60 steps (under 5 minutes)")
    parser.add_argument("--model", default=None, help="preset (default tiny, the pipeline's; nano with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="dense steps (default 1200, the pipeline's; 60 quick)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--eval_every", type=int, default=None, help="evaluate every N dense-sized steps")
    parser.add_argument("--eval_blocks", type=int, default=None, help="validation sequences per evaluation")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 resists other load best)")
    parser.add_argument("--arms", default=None, help="comma-separated subset of the arms (dense always runs)")
    parser.add_argument("--watts_per_core", type=float, default=WATTS_PER_CORE)
    parser.add_argument("--seed", type=int, default=42, help="initial weights and data order (all arms share them)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep data here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "benchmarks" / "frugal")
    options = parser.parse_args()
    steps = options.steps or (60 if options.quick else 1200)
    result = run_benchmark(
        model=options.model or ("nano" if options.quick else "tiny"),
        steps=steps,
        batch=options.batch,
        block=options.block,
        learning_rate=options.learning_rate,
        eval_every=options.eval_every or (4 if options.quick else max(1, steps // 20)),
        eval_blocks=options.eval_blocks or (16 if options.quick else 64),
        quick=options.quick,
        threads=options.threads,
        arms=options.arms.split(",") if options.arms else None,
        workdir=options.workdir,
        out=options.out,
        watts_per_core=options.watts_per_core,
        seed=options.seed,
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
