"""Dense vs dynamically pruned pretraining, same data and token budget; then post-training pruning.

    python benchmarks/pruning.py [--quick] [--model tiny] [--steps 1200] [--threads 1]

Two processes train the same preset on the same batches in the same order: one dense, one
with the structured-pruning callback (heads and MLP neurons removed early in the run). They
take turns step by step (a baton passed through two semaphores), so whatever else loads the
machine hits both alike; each side's training time is the sum of its own turns (forward,
backward, optimizer, callbacks including pruning), in wall-clock and CPU seconds.

Then, in this process: inference tokens/s of the two final models, measured in alternating
rounds; and post-training pruning of the dense model at 50% (magnitude vs Wanda) on held-out
validation text.

Targets (issue 8): >= 30% fewer FLOPs per token at the end, >= 1.25x training tokens/s over
the run, >= 1.25x inference tokens/s, final validation loss <= 3% above dense; Wanda 50%
perplexity increase <= 25% and below magnitude's. Ends with one JSON line.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This directory's pretrain.py would shadow the `pretrain` package: import from the repo root.
if not __package__:  # `python benchmarks/pruning.py`: this folder would shadow the packages; use the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import math
import multiprocessing
import os
import random
import statistics
import tempfile
import time

VALIDATION_DOCUMENTS = 60


def build_data(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """Shards + tokenizer from the built-in corpus, laid out the way `mintline prepare` writes them."""
    from pretrain.corpus.builtin import iter_builtin_corpus
    from pretrain.tokenizer import save_tokenizer, train_tokenizer

    documents = list(iter_builtin_corpus())
    random.Random(seed).shuffle(documents)
    data = root / "data"
    data.mkdir(parents=True)
    splits = (("validation", documents[:VALIDATION_DOCUMENTS]), ("train", documents[VALIDATION_DOCUMENTS:]))
    for split, chunk in splits:
        with open(data / f"{split}-00000-of-00001.jsonl", "w", encoding="utf-8") as handle:
            for document in chunk:
                handle.write(json.dumps({"id": document.id, "text": document.text, "source": document.source}) + "\n")
    tokenizer = save_tokenizer(train_tokenizer(d.text for d in documents[VALIDATION_DOCUMENTS:]), root / "tokenizer")
    return data, tokenizer


def token_blocks(tokenizer, path: Path, block: int):
    import torch

    from pretrain.sparsity.evaluation import iter_texts

    ids: list[int] = []
    for text in iter_texts([path]):
        ids.extend(tokenizer(text, verbose=False)["input_ids"] + [tokenizer.eos_token_id])
    count = len(ids) // block
    return torch.tensor(ids[: count * block]).view(count, block)


# -- the two training processes ------------------------------------------------------------


def make_baton_callback(mine, theirs, done, index: int):
    from transformers import TrainerCallback

    class Baton(TrainerCallback):
        """Hold the machine for one optimizer step, then hand it to the other run."""

        def __init__(self):
            self.wall = self.cpu = 0.0
            self.steps = 0

        def on_step_begin(self, args, state, control, **kwargs):
            if not done[1 - index]:
                mine.acquire()
            self._wall, self._cpu = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kwargs):
            self.wall += time.perf_counter() - self._wall
            self.cpu += time.process_time() - self._cpu
            self.steps += 1
            theirs.release()

        def on_train_end(self, args, state, control, **kwargs):
            done[index] = 1
            theirs.release()

    return Baton()


class Blocks:
    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, index):
        return {"input_ids": self.blocks[index], "labels": self.blocks[index]}


def train_one(role: str, config: dict, mine, theirs, done, results) -> None:
    """Runs in its own process: train `role` (dense | pruned), report figures."""
    os.environ["TQDM_DISABLE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.presets import build_config
    from pretrain.sparsity.callbacks import build_callbacks, sparsity_figures
    from pretrain.sparsity.config import SparsityArguments
    from pretrain.sparsity.evaluation import evaluate_loss

    torch.set_num_threads(config["threads"])
    tokenizer = AutoTokenizer.from_pretrained(config["tokenizer"])
    model_config = build_config(
        config["model"], len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    sparsity = (
        SparsityArguments(**config["pruning"], measure_throughput=False) if role == "pruned" else SparsityArguments()
    )
    baton = make_baton_callback(mine, theirs, done, 0 if role == "dense" else 1)
    out = Path(config["out"]) / role
    if config["trainer"] == "engine":
        # exactly what `mintline pretrain --prune_heads ... --prune_neurons ...` runs
        model_dir, engine_figures = _train_with_engine(config, out, [baton], sparsity)
        val_loss = engine_figures["eval_loss"]
        pruning_figures = engine_figures.get("sparsity", {})
    else:
        # build_callbacks checks the settings against the model; the callbacks act on the model the trainer hands them
        callbacks = build_callbacks(sparsity, AutoModelForCausalLM.from_config(model_config))
        model_dir = _train_with_stock_trainer(config, out, model_config, tokenizer, [*callbacks, baton])
        validation = token_blocks(tokenizer, Path(config["data"]) / "validation-00000-of-00001.jsonl", config["block"])
        val_loss = evaluate_loss(AutoModelForCausalLM.from_pretrained(model_dir), validation, batch_size=16)
        pruning_figures = sparsity_figures(callbacks, AutoModelForCausalLM.from_pretrained(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokens = baton.steps * config["batch"] * config["block"]
    results.put(
        {
            "role": role,
            "val_loss": val_loss,
            "tokens": tokens,
            "turn_seconds": baton.wall,
            "turn_cpu_seconds": baton.cpu,
            "train_tokens_per_s": tokens / baton.wall,
            "train_tokens_per_cpu_s": tokens / baton.cpu,
            "sparsity": pruning_figures,
            "heads": model.config.num_attention_heads,
            "intermediate_size": model.config.intermediate_size,
            "model_dir": str(model_dir),
        }
    )


def _train_with_engine(config: dict, out: Path, callbacks: list, sparsity) -> tuple[Path, dict]:
    """The project's pretraining engine (pretrain/engine.py), as `mintline pretrain` runs it."""
    from pretrain.config import PretrainArguments
    from pretrain.engine import pretrain

    args = PretrainArguments(
        model=config["model"],
        data_dir=config["data"],
        tokenizer=config["tokenizer"],
        block_size=config["block"],
        per_device_batch_size=config["batch"],
        max_steps=config["steps"],
        learning_rate=config["learning_rate"],
        warmup_steps=config["warmup"],
        eval_steps=10**6,
        save_steps=10**6,
        logging_steps=10**6,
        eval_blocks=config["eval_blocks"],
        precision="bf16" if config["bf16"] else "fp32",
        seed=config["seed"],
        num_threads=config["threads"],
    )
    figures = pretrain(args, out, extra_callbacks=callbacks, sparsity=sparsity)
    return Path(figures["model_dir"]), figures


def _train_with_stock_trainer(config: dict, out: Path, model_config, tokenizer, callbacks: list) -> Path:
    """transformers' own Trainer, for comparison with the engine (--trainer stock)."""
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    train = token_blocks(tokenizer, Path(config["data"]) / "train-00000-of-00001.jsonl", config["block"])
    set_seed(config["seed"])
    model = AutoModelForCausalLM.from_config(model_config)
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        max_steps=config["steps"],
        per_device_train_batch_size=config["batch"],
        learning_rate=config["learning_rate"],
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=config["warmup"],
        weight_decay=0.1,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        bf16=config["bf16"],
        use_cpu=True,
        optim="adamw_torch_fused",
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10**6,
        report_to="none",
        seed=config["seed"],
        data_seed=config["seed"],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Blocks(train), callbacks=callbacks)
    trainer.train()
    trainer.save_model(str(out / "model"))
    tokenizer.save_pretrained(out / "model")
    return out / "model"


def train_both(config: dict) -> dict[str, dict]:
    context = multiprocessing.get_context("spawn")
    turns = [context.Semaphore(0), context.Semaphore(0)]
    done = context.Array("i", [0, 0])
    results = context.Queue()
    turns[0].release()  # the dense run takes the first step
    processes = [
        context.Process(target=train_one, args=(role, config, turns[i], turns[1 - i], done, results))
        for i, role in enumerate(("dense", "pruned"))
    ]
    for process in processes:
        process.start()
    outcome = {}
    while len(outcome) < 2:
        try:
            result = results.get(timeout=30)
            outcome[result["role"]] = result
        except Exception:  # noqa: BLE001 - queue.Empty: check the workers are alive
            failed = [p for p in processes if p.exitcode not in (None, 0)]
            if failed:
                raise SystemExit(f"a training process failed (exit {failed[0].exitcode}); see its traceback above")
    for process in processes:
        process.join()
    return outcome


# -- measurements on the final models --------------------------------------------------------


def inference_speed(dense_dir: str, pruned_dir: str, block: int, threads: int, rounds: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    from pretrain.sparsity.accounting import measure_inference_tokens_per_second

    torch.set_num_threads(threads)
    models = {
        name: AutoModelForCausalLM.from_pretrained(path).eval()
        for name, path in (("dense", dense_dir), ("pruned", pruned_dir))
    }
    speeds: dict[str, list[float]] = {"dense": [], "pruned": []}
    for _ in range(rounds):  # alternate so load changes hit both
        for name, model in models.items():
            speeds[name].append(measure_inference_tokens_per_second(model, 16, block, repeats=3, warmup=1))
    dense, pruned = statistics.median(speeds["dense"]), statistics.median(speeds["pruned"])
    return {
        "dense": dense,
        "pruned": pruned,
        "ratio": statistics.median(p / d for p, d in zip(speeds["pruned"], speeds["dense"])),
    }


def post_training(dense_dir: str, data: Path, threads: int, quick: bool) -> dict:
    import copy

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.sparsity.evaluation import calibration_and_evaluation_blocks, evaluate_loss, find_text_files
    from pretrain.sparsity.posttrain import prune_magnitude, prune_wanda

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(dense_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(dense_dir)
    calibration, evaluation = calibration_and_evaluation_blocks(
        tokenizer, find_text_files(data), 128, 32, 48 if quick else 96
    )
    base = evaluate_loss(model, evaluation)
    out = {"dense_val_loss": base}
    for method in ("magnitude", "wanda", "wanda_layer"):
        pruned = copy.deepcopy(model)
        if method == "magnitude":
            prune_magnitude(pruned, 0.5)
        else:
            prune_wanda(pruned, calibration, 0.5, group="layer" if method == "wanda_layer" else "row")
        loss = evaluate_loss(pruned, evaluation)
        out[f"{method}_val_loss"] = loss
        out[f"{method}_ppl_increase"] = math.exp(loss - base) - 1.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps (under 5 minutes on 2 quiet cores)")
    parser.add_argument("--model", default="tiny", help="preset (default tiny, ~5M parameters)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps per run (default 1200, the default pipeline's budget; 120 with --quick)",
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (1 resists other load best)")
    parser.add_argument("--prune_heads", type=float, default=0.5)
    parser.add_argument("--prune_neurons", type=float, default=0.625)
    parser.add_argument("--prune_start", type=float, default=0.05)
    parser.add_argument("--prune_end", type=float, default=0.2)
    parser.add_argument("--prune_events", type=int, default=3)
    parser.add_argument("--importance", default="taylor", choices=["taylor", "activation"])
    parser.add_argument("--fp32", action="store_true", help="train in fp32 instead of bf16 autocast")
    parser.add_argument("--workdir", default=None, help="keep data, runs and final models here (default: a temp dir)")
    parser.add_argument(
        "--trainer",
        default="engine",
        choices=["engine", "stock"],
        help="engine: pretrain/engine.py (what mintline pretrain runs); stock: transformers.Trainer",
    )
    options = parser.parse_args()
    steps = options.steps or (120 if options.quick else 1200)

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="sparsity-bench-") as tmp:
        root = Path(options.workdir) if options.workdir else Path(tmp)
        data, tokenizer = build_data(root)
        pruning = {
            "prune_heads": options.prune_heads,
            "prune_neurons": options.prune_neurons,
            "prune_start": options.prune_start,
            "prune_end": options.prune_end,
            "prune_events": options.prune_events,
            "importance": options.importance,
            "importance_window": max(5, steps // 40),
        }
        config = {
            "model": options.model,
            "data": str(data),
            "tokenizer": str(tokenizer),
            "out": str(root / "runs"),
            "steps": steps,
            "batch": options.batch,
            "block": options.block,
            "learning_rate": options.learning_rate,
            "warmup": max(1, steps // 20),
            "threads": options.threads,
            "seed": 42,
            "bf16": not options.fp32,
            "pruning": pruning,
            "trainer": options.trainer,
            "eval_blocks": 64 if options.quick else 128,
        }
        runs = train_both(config)
        dense, pruned = runs["dense"], runs["pruned"]
        speed = inference_speed(
            dense["model_dir"], pruned["model_dir"], options.block, options.threads, 5 if options.quick else 9
        )
        post = post_training(dense["model_dir"], data, options.threads, options.quick)
        post_pruned = post_training(pruned["model_dir"], data, options.threads, options.quick)

    figures = pruned["sparsity"]
    result = {
        "model": options.model,
        "steps": steps,
        "tokens_per_run": dense["tokens"],
        "pruning": {**pruning, "events": figures.get("structured_events")},
        "fewer_flops_per_token": round(figures["train_flops_per_token_reduction"], 4),
        "train_tokens_per_s_speedup": round(pruned["train_tokens_per_s"] / dense["train_tokens_per_s"], 3),
        "train_tokens_per_cpu_s_speedup": round(pruned["train_tokens_per_cpu_s"] / dense["train_tokens_per_cpu_s"], 3),
        "inference_tokens_per_s_speedup": round(speed["ratio"], 3),
        "final_val_loss_vs_dense": round(pruned["val_loss"] / dense["val_loss"] - 1.0, 4),
        "wanda50_ppl_increase": round(post["wanda_ppl_increase"], 4),
        "magnitude50_ppl_increase": round(post["magnitude_ppl_increase"], 4),
        "wanda_beats_magnitude": post["wanda_ppl_increase"] < post["magnitude_ppl_increase"],
        "wanda50_layer_group_ppl_increase": round(post["wanda_layer_ppl_increase"], 4),
        "wanda50_ppl_increase_on_pruned_model": round(post_pruned["wanda_ppl_increase"], 4),
        "magnitude50_ppl_increase_on_pruned_model": round(post_pruned["magnitude_ppl_increase"], 4),
        "train_flops_saved_fraction": round(figures["train_flops_saved_fraction"], 4),
        "dense_val_loss": round(dense["val_loss"], 4),
        "pruned_val_loss": round(pruned["val_loss"], 4),
        "threads": options.threads,
        "precision": "fp32" if options.fp32 else "bf16",
        "trainer": options.trainer,
        "wall_seconds": round(time.time() - started, 1),
    }
    result["targets_met"] = {
        "fewer_flops_per_token>=0.30": result["fewer_flops_per_token"] >= 0.30,
        "train_tokens_per_s_speedup>=1.25": result["train_tokens_per_s_speedup"] >= 1.25,
        "inference_tokens_per_s_speedup>=1.25": result["inference_tokens_per_s_speedup"] >= 1.25,
        "final_val_loss_vs_dense<=0.03": result["final_val_loss_vs_dense"] <= 0.03,
        "wanda50_ppl_increase<=0.25": result["wanda50_ppl_increase"] <= 0.25,
        "wanda_beats_magnitude": result["wanda_beats_magnitude"],
    }

    print(
        f"model={options.model} steps={steps} batch={options.batch} block={options.block} threads={options.threads} "
        f"trainer={options.trainer}"
    )
    print(f"pruning: {json.dumps(result['pruning'])}")
    rows = [
        (
            "heads / MLP neurons per layer",
            f"{runs['dense']['heads']} / {runs['dense']['intermediate_size']}",
            f"{pruned['heads']} / {pruned['intermediate_size']}",
            "",
        ),
        (
            "train FLOPs per token (end)",
            f"{figures['train_flops_per_token_before']:.3g}",
            f"{figures['train_flops_per_token_after']:.3g}",
            f"-{result['fewer_flops_per_token']:.1%}",
        ),
        (
            "train tokens/s (own turns)",
            f"{dense['train_tokens_per_s']:,.0f}",
            f"{pruned['train_tokens_per_s']:,.0f}",
            f"{result['train_tokens_per_s_speedup']:.2f}x",
        ),
        (
            "train tokens/CPU-s",
            f"{dense['train_tokens_per_cpu_s']:,.0f}",
            f"{pruned['train_tokens_per_cpu_s']:,.0f}",
            f"{result['train_tokens_per_cpu_s_speedup']:.2f}x",
        ),
        (
            "inference tokens/s (final)",
            f"{speed['dense']:,.0f}",
            f"{speed['pruned']:,.0f}",
            f"{result['inference_tokens_per_s_speedup']:.2f}x",
        ),
        (
            "final validation loss",
            f"{dense['val_loss']:.4f}",
            f"{pruned['val_loss']:.4f}",
            f"{result['final_val_loss_vs_dense']:+.2%}",
        ),
    ]
    print(f"{'':32}{'dense':>14}{'pruned':>14}{'change':>10}")
    for label, a, b, change in rows:
        print(f"{label:32}{a:>14}{b:>14}{change:>10}")
    for label, figures_post in (("dense", post), ("dynamically pruned", post_pruned)):
        print(
            f"post-training 50% on the {label} model: perplexity +{figures_post['magnitude_ppl_increase']:.1%} "
            f"magnitude, +{figures_post['wanda_ppl_increase']:.1%} Wanda (per row), "
            f"+{figures_post['wanda_layer_ppl_increase']:.1%} Wanda compared over the layer"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
