"""Engine vs a minimal hand-written PyTorch loop: steady tokens/s, same model, batches, precision, threads.

    python benchmarks/pretrain.py [--quick] [--model tiny] [--repeats 3]

Both contenders run in fresh subprocesses, interleaved (raw, engine, raw, engine, ...) so
machine load hits them alike; each reports steady-state tokens/s (first steps excluded).
Target (issue 3): the Trainer-based engine reaches >= 0.90x the raw loop, fp32 and bf16.
Ends with one JSON line.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file's name shadows the `pretrain` package when run as a script: import from the repo root.
if not __package__:  # `python benchmarks/pretrain.py`: this folder would shadow the packages; use the repository root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import statistics
import subprocess
import tempfile

HERE = Path(__file__).resolve().parent


def build_data(root: Path) -> tuple[Path, Path]:
    """Shards + tokenizer from the built-in corpus, written the way `mintline prepare` writes them."""
    import random

    from pretrain.corpus.builtin import iter_builtin_corpus
    from pretrain.tokenizer import save_tokenizer, train_tokenizer

    documents = list(iter_builtin_corpus())
    random.Random(0).shuffle(documents)
    data = root / "data"
    data.mkdir(parents=True)
    for split, chunk in (("validation", documents[:30]), ("train", documents[30:])):
        with open(data / f"{split}-00000-of-00001.jsonl", "w", encoding="utf-8") as handle:
            for document in chunk:
                handle.write(json.dumps(document.to_record()) + "\n")
    tokenizer = save_tokenizer(train_tokenizer(d.text for d in documents[30:]), root / "tokenizer")
    return data, tokenizer


RAW_LOOP = r"""
import json, math, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from pretrain.data import PackedBlocks, find_shards, tokenize_split
from pretrain.presets import build_config
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
tok = AutoTokenizer.from_pretrained(cfg["tokenizer"])
tokens = tokenize_split(find_shards(cfg["data"], "train"), tok, cfg["tokenizer"], __import__("pathlib").Path(cfg["cache"]), "train")
data = PackedBlocks(tokens, cfg["block"], len(tok))
set_seed(42)
model = AutoModelForCausalLM.from_config(build_config(cfg["model"], len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id))
model.train()
decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-3, betas=(0.9, 0.95), fused=True)
steps = cfg["steps"]
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps))))
gen = torch.Generator().manual_seed(42)
order = torch.randperm(len(data), generator=gen).tolist()
fwd = torch.compile(model) if cfg["compile"] else model
dtype = torch.bfloat16 if cfg["precision"] == "bf16" else None
times, cpu = [], []
for step in range(steps):
    idx = order[step * cfg["batch"]:(step + 1) * cfg["batch"]]
    batch = torch.stack([data[i]["input_ids"] for i in idx])
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        loss = fwd(input_ids=batch, labels=batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter()); cpu.append(time.process_time())
warm = cfg["warmup"]
tokens = (steps - 1 - warm) * cfg["batch"] * cfg["block"]
print(json.dumps({"tokens_per_second": tokens / (times[-1] - times[warm]), "tokens_per_cpu_second": tokens / (cpu[-1] - cpu[warm]), "final_loss": loss.item()}))
"""

ENGINE = r"""
import json, sys, logging
from pretrain.config import PretrainArguments
from pretrain.engine import pretrain
cfg = json.loads(sys.argv[1])
args = PretrainArguments(model=cfg["model"], data_dir=cfg["data"], tokenizer=cfg["tokenizer"], block_size=cfg["block"],
    per_device_batch_size=cfg["batch"], max_steps=cfg["steps"], warmup_steps=10, eval_steps=10**6, save_steps=10**6,
    logging_steps=10**6, eval_blocks=16, precision=cfg["precision"], compile=cfg["compile"], num_threads=cfg["threads"])
figures = pretrain(args, cfg["out"])
print(json.dumps({"tokens_per_second": figures["tokens_per_second"], "tokens_per_cpu_second": figures["tokens_per_cpu_second"], "final_loss": figures["train_loss"]}))
"""


def run_contender(code: str, config: dict) -> dict:
    env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS=str(config["threads"]), PYTHONPATH=str(HERE.parent))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(config)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="nano model, fewer steps and repeats")
    parser.add_argument("--model", default=None, help="preset (default: tiny; nano with --quick)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--compile", action="store_true", help="also compare with torch.compile on both sides")
    parser.add_argument(
        "--precisions",
        default="fp32,bf16",
        help="comma-separated (where bf16 is emulated, as on CPUs without AMX/AVX512-BF16, its steps are ~10x slower)",
    )
    options = parser.parse_args()
    model = options.model or ("nano" if options.quick else "tiny")
    steps = options.steps or (30 if options.quick else 60)
    repeats = options.repeats or (2 if options.quick else 3)

    with tempfile.TemporaryDirectory(prefix="mintline-bench-pretrain-") as tmp:
        root = Path(tmp)
        data, tokenizer = build_data(root)
        rows = []
        precisions = [p for p in options.precisions.split(",") if p]
        unknown = sorted(set(precisions) - {"fp32", "bf16"})
        if unknown:
            parser.error(f"--precisions: unknown {unknown}; choose from fp32, bf16")
        variants = [(p, False) for p in precisions] + ([("bf16", True)] if options.compile else [])
        for precision, compiled in variants:
            raw, engine = [], []
            for repeat in range(repeats):
                config = {
                    "model": model,
                    "data": str(data),
                    "tokenizer": str(tokenizer),
                    "cache": str(root / "cache"),
                    "block": 128,
                    "batch": 16,
                    "steps": steps,
                    "warmup": 5 if compiled else 2,
                    "precision": precision,
                    "compile": compiled,
                    "threads": options.threads,
                    "out": str(root / f"engine-{precision}-{repeat}"),
                }
                raw.append(run_contender(RAW_LOOP, config))
                engine.append(run_contender(ENGINE, config))
            label = precision + ("+compile" if compiled else "")
            median = lambda runs, key: statistics.median(r[key] for r in runs)
            rows.append(
                {
                    "precision": label,
                    "raw_tokens_per_s": median(raw, "tokens_per_second"),
                    "engine_tokens_per_s": median(engine, "tokens_per_second"),
                    "ratio": median(engine, "tokens_per_second") / median(raw, "tokens_per_second"),
                    "cpu_ratio": median(engine, "tokens_per_cpu_second") / median(raw, "tokens_per_cpu_second"),
                }
            )

    print(f"model={model} block=128 batch=16 steps={steps} repeats={repeats} threads={options.threads}")
    print(f"{'precision':<14}{'raw loop tok/s':>16}{'engine tok/s':>16}{'engine/raw':>12}{'per CPU-s':>11}")
    for row in rows:
        print(
            f"{row['precision']:<14}{row['raw_tokens_per_s']:>16,.0f}{row['engine_tokens_per_s']:>16,.0f}"
            f"{row['ratio']:>12.3f}{row['cpu_ratio']:>11.3f}"
        )
    print(
        "engine/raw: wall-clock tokens/s ratio (the target); per CPU-s: the same per process CPU second,"
        " which other load on the machine disturbs less"
    )
    result = {
        "model": model,
        **{f"engine_vs_raw_{row['precision'].replace('+', '_')}": round(row["ratio"], 3) for row in rows},
        **{f"engine_vs_raw_cpu_time_{row['precision'].replace('+', '_')}": round(row["cpu_ratio"], 3) for row in rows},
        **{
            f"engine_tokens_per_s_{row['precision'].replace('+', '_')}": round(row["engine_tokens_per_s"], 1)
            for row in rows
        },
        **{
            f"raw_tokens_per_s_{row['precision'].replace('+', '_')}": round(row["raw_tokens_per_s"], 1) for row in rows
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
