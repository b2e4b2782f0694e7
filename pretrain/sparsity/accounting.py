"""What pruning saves, in numbers: parameters, FLOPs per token, measured tokens/s, loss, energy.

FLOPs per token follow `pretrain.figures.flops_per_token` with N = the decoder projections + the
LM head (the embedding lookup costs no FLOPs) and d_attn = heads × head_dim. Unstructured zeros
do not reduce these on dense kernels, so they are reported apart as `sparse_*`.

Energy comes from Intel RAPL (/sys/class/powercap/intel-rapl*) when the files are readable;
otherwise the figures say that energy is an estimate proportional to FLOPs.
"""

from __future__ import annotations

import glob
import logging
import time
from pathlib import Path

import torch

from pretrain.figures import count_parameters, perplexity
from pretrain.figures import flops_per_token as flops_formula
from pretrain.sparsity.architectures import DecoderShape, decoder_linears, decoder_shape, unwrap
from pretrain.sparsity.checkpointing import CheckpointedCallback

log = logging.getLogger("pretrain")

RAPL_GLOB = "/sys/class/powercap/intel-rapl*"
ENERGY_ESTIMATE = "estimate from FLOPs (RAPL energy counters not readable on this machine)"


def matmul_parameters(shape: DecoderShape, vocab_size: int) -> int:
    hidden, head_dim = shape.hidden_size, shape.head_dim
    attention = hidden * head_dim * (2 * shape.num_heads + 2 * shape.num_kv_heads)
    mlp = 3 * hidden * shape.intermediate_size
    return shape.num_layers * (attention + mlp) + hidden * vocab_size


def flops_per_token(shape: DecoderShape, vocab_size: int, seq_len: int, training: bool = True) -> float:
    n = matmul_parameters(shape, vocab_size)
    return flops_formula(n, shape.num_layers, shape.attention_width, seq_len, training)


def parameter_count(model) -> int:
    """Unique parameters (tied embeddings once); for a masked model, the stored tensors."""
    return count_parameters(unwrap(model))


def nonzero_matmul_parameters(model) -> int:
    """Live decoder weights + the LM head: what a sparse kernel would multiply."""
    model = unwrap(model)
    live = sum(int((linear.weight.detach() != 0).sum()) for _, linear in decoder_linears(model))
    return live + model.config.hidden_size * model.config.vocab_size


def model_figures(model, seq_len: int) -> dict[str, float | int]:
    model = unwrap(model)
    shape = decoder_shape(model.config)
    vocab = model.config.vocab_size
    dense_n = matmul_parameters(shape, vocab)
    sparse_n = nonzero_matmul_parameters(model)
    return {
        "parameters": parameter_count(model),
        "heads_per_layer": shape.num_heads,
        "kv_heads_per_layer": shape.num_kv_heads,
        "intermediate_size": shape.intermediate_size,
        "train_flops_per_token": flops_per_token(shape, vocab, seq_len, training=True),
        "inference_flops_per_token": flops_per_token(shape, vocab, seq_len, training=False),
        "sparse_inference_flops_per_token": (
            flops_formula(sparse_n, shape.num_layers, shape.attention_width, seq_len, training=False)
            if sparse_n < dense_n
            else None
        ),
    }


@torch.no_grad()
def measure_inference_tokens_per_second(
    model, batch_size: int, seq_len: int, repeats: int = 5, warmup: int = 1, seed: int = 0
) -> float:
    """Forward-pass tokens/s on random tokens, in eval mode; the model's train/eval mode is restored."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, seq_len), generator=generator).to(device)
    try:
        for _ in range(warmup):
            model(input_ids=ids)
        _synchronize(device)
        started = time.perf_counter()
        for _ in range(repeats):
            model(input_ids=ids)
        _synchronize(device)
        elapsed = time.perf_counter() - started
    finally:
        model.train(was_training)
    return repeats * batch_size * seq_len / elapsed


def compare_inference_speed(
    first, second, batch_size: int, seq_len: int, rounds: int = 5
) -> tuple[float, float, float]:
    """Tokens/s of two models measured in alternating rounds (load changes hit both alike).

    Returns (median tokens/s of first, of second, median of the per-round ratios second/first).
    """
    import statistics

    a, b = [], []
    for round_index in range(rounds):
        a.append(measure_inference_tokens_per_second(first, batch_size, seq_len, repeats=3, seed=round_index))
        b.append(measure_inference_tokens_per_second(second, batch_size, seq_len, repeats=3, seed=round_index))
    return statistics.median(a), statistics.median(b), statistics.median(y / x for x, y in zip(a, b))


def _synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EnergyMeter:
    """Joules from Intel RAPL package counters between start() and stop(), if readable."""

    def __init__(self, pattern: str = RAPL_GLOB):
        self.zones = []
        for zone in sorted(glob.glob(pattern)):
            energy, limit = Path(zone) / "energy_uj", Path(zone) / "max_energy_range_uj"
            if ":" in Path(zone).name and Path(zone).name.count(":") == 1 and _readable_int(energy) is not None:
                self.zones.append((energy, _readable_int(limit) or 2**63))
        self._start: list[int] | None = None
        self.joules: float | None = None

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def start(self) -> None:
        self._start = [_readable_int(energy) for energy, _ in self.zones] if self.zones else None

    def stop(self) -> float | None:
        if not self._start:
            return None
        total = 0
        for (energy, limit), before in zip(self.zones, self._start):
            after = _readable_int(energy)
            if after is None or before is None:
                return None
            total += after - before if after >= before else after + limit - before  # the counter wrapped
        self.joules = (self.joules or 0.0) + total / 1e6
        self._start = None
        return self.joules


def _readable_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class PruningAccountingCallback(CheckpointedCallback):
    """Per-step tokens, time and model shape of a run whose model shrinks, summed into run figures.

    Place it after the pruning callbacks (build_callbacks does) so the time a pruning event
    takes is charged to the step it happens in. Intervals that contain an evaluation or a
    checkpoint are left out of tokens/s (they are not training).
    """

    state_file = "pruning_accounting.pt"

    def __init__(self, measure_throughput: bool = True):
        self.measure_throughput = measure_throughput
        self.initial_shape: dict | None = None
        self.final_shape: dict | None = None
        self.vocab_size = 0
        self.steps: list[dict] = []  # step, tokens, seconds (None if not training time), shape during the step
        self.evaluations: list[dict] = []
        self.prune_steps: list[int] = []
        self.before: dict | None = None
        self.after: dict | None = None
        self.seq_len = 0
        self.batch_size = 0
        self.energy = EnergyMeter()
        self._tokens = 0
        self._shape_at_begin: dict | None = None
        self._last_tick: float | None = None
        self._discard = False
        self._hook = None

    # -- collection ----------------------------------------------------------------------
    def _count_tokens(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if module.training and torch.is_tensor(ids):
            self._tokens += ids.numel()
            self.batch_size, self.seq_len = ids.shape[0], ids.shape[-1]

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model = unwrap(model)
        if state.global_step > 0:
            self.load_saved_state(args, state)
        if self.initial_shape is None:
            self.initial_shape = decoder_shape(model.config).as_dict()
        self.vocab_size = model.config.vocab_size
        self._hook = model.register_forward_pre_hook(self._count_tokens, with_kwargs=True)
        self.energy.start()
        self._last_tick = time.perf_counter()

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._shape_at_begin = decoder_shape(unwrap(model).config).as_dict()

    def step_end(self, args, state, control, model=None, **kwargs):
        now = time.perf_counter()
        shape_now = decoder_shape(unwrap(model).config).as_dict()
        during = self._shape_at_begin or shape_now
        seconds = None if self._discard or self._last_tick is None else now - self._last_tick
        self.steps.append({"step": state.global_step, "tokens": self._tokens, "seconds": seconds, "shape": during})
        if shape_now != during:
            self.prune_steps.append(state.global_step)
        self.final_shape = shape_now
        self._tokens = 0
        self._discard = False
        if self.before is None and not self.prune_steps and self.seq_len:
            self.before = self._snapshot(model)
        self._last_tick = time.perf_counter()  # the snapshot's forwards are not training time

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self._discard = True
        if metrics and "eval_loss" in metrics:
            self.evaluations.append({"step": state.global_step, "eval_loss": float(metrics["eval_loss"])})

    def on_save(self, args, state, control, **kwargs):
        super().on_save(args, state, control, **kwargs)
        self._discard = True

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.energy.stop()
        if model is not None and self.seq_len:
            self.after = self._snapshot(model)

    def _snapshot(self, model) -> dict:
        figures = model_figures(model, self.seq_len)
        if self.measure_throughput and self.batch_size:
            figures["inference_tokens_per_second"] = measure_inference_tokens_per_second(
                model, min(self.batch_size, 8), self.seq_len, repeats=3
            )
        return figures

    def _flops(self, shape: dict) -> float:
        return flops_per_token(DecoderShape(**_shape_fields(shape)), self.vocab_size, self.seq_len)

    # -- results -------------------------------------------------------------------------
    def figures(self) -> dict:
        """Before/after figures and the compute saved over the run (for run.json and the CLI)."""
        if not self.steps or not self.seq_len:
            return {}
        initial_fpt = self._flops(self.initial_shape)
        tokens = sum(s["tokens"] for s in self.steps)
        actual = sum(s["tokens"] * self._flops(s["shape"]) for s in self.steps)
        dense = tokens * initial_fpt
        final_fpt = self._flops(self.final_shape)
        first_prune = self.prune_steps[0] if self.prune_steps else None
        last_prune = self.prune_steps[-1] if self.prune_steps else None
        out: dict = {
            "pruning_steps": list(self.prune_steps),
            "tokens_trained": tokens,
            "train_flops_per_token_before": initial_fpt,
            "train_flops_per_token_after": final_fpt,
            "train_flops_per_token_reduction": 1.0 - final_fpt / initial_fpt,
            "train_flops": actual,
            "train_flops_if_dense": dense,
            "train_flops_saved": dense - actual,
            "train_flops_saved_fraction": (dense - actual) / dense if dense else 0.0,
        }
        dense_phase = [s for s in self.steps[2:] if first_prune is None or s["step"] < first_prune]
        pruned_phase = [s for s in self.steps if last_prune is not None and s["step"] > last_prune]
        out["train_tokens_per_second_before"] = _rate(dense_phase)
        out["train_tokens_per_second_after"] = _rate(pruned_phase)
        out["train_tokens_per_second_run"] = _rate(self.steps)
        for label, snapshot in (("before", self.before), ("after", self.after)):
            for key, value in (snapshot or {}).items():
                out[f"{key}_{label}"] = value
        before_evals = [e for e in self.evaluations if first_prune is not None and e["step"] < first_prune]
        if before_evals:
            out["eval_loss_before"] = before_evals[-1]["eval_loss"]
            out["eval_loss_before_step"] = before_evals[-1]["step"]
            out["perplexity_before"] = perplexity(before_evals[-1]["eval_loss"])
        if self.evaluations:
            out["eval_loss_after"] = self.evaluations[-1]["eval_loss"]
            out["eval_loss_after_step"] = self.evaluations[-1]["step"]
            out["perplexity_after"] = perplexity(self.evaluations[-1]["eval_loss"])
        if self.energy.joules is not None:
            out["energy_source"] = "Intel RAPL"
            out["energy_joules"] = self.energy.joules
            out["energy_saved_joules_estimate"] = self.energy.joules * (dense / actual - 1.0) if actual else None
        else:
            out["energy_source"] = ENERGY_ESTIMATE
            out["energy_saved_fraction_estimate"] = out["train_flops_saved_fraction"]
        return out

    def state_dict(self, model=None) -> dict:
        return {
            "initial_shape": self.initial_shape,
            "final_shape": self.final_shape,
            "steps": self.steps,
            "evaluations": self.evaluations,
            "prune_steps": self.prune_steps,
            "before": self.before,
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, saved: dict) -> None:
        self.initial_shape = saved["initial_shape"]
        self.final_shape = saved["final_shape"]
        self.steps = list(saved["steps"])
        self.evaluations = list(saved["evaluations"])
        self.prune_steps = list(saved["prune_steps"])
        self.before = saved["before"]
        self.seq_len, self.batch_size = saved["seq_len"], saved["batch_size"]


def _shape_fields(shape: dict) -> dict:
    return {
        "num_layers": shape["num_hidden_layers"],
        "hidden_size": shape["hidden_size"],
        "num_heads": shape["num_attention_heads"],
        "num_kv_heads": shape["num_key_value_heads"],
        "head_dim": shape["head_dim"],
        "intermediate_size": shape["intermediate_size"],
    }


def _rate(steps: list[dict]) -> float | None:
    timed = [s for s in steps if s["seconds"]]
    seconds = sum(s["seconds"] for s in timed)
    return sum(s["tokens"] for s in timed) / seconds if seconds else None
