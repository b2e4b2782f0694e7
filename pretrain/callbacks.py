"""Trainer callbacks of the engine: throughput, interruption, readable progress."""

from __future__ import annotations

import logging
import math
import os
import signal
import sys

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from pretrain.throughput import ThroughputMeter

log = logging.getLogger("pretrain")


class ThroughputCallback(TrainerCallback):
    """Adds steady-state `tokens_per_second` (and `mfu` on GPUs) to every log line."""

    def __init__(self, meter: ThroughputMeter, flops_per_token: float, peak_flops: float | None, world_size: int):
        self.meter = meter
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.world_size = world_size

    def on_step_end(self, args, state, control, **kwargs):
        self.meter.tick()

    def on_evaluate(self, args, state, control, **kwargs):
        self.meter.discard_next_interval()

    def on_save(self, args, state, control, **kwargs):
        self.meter.discard_next_interval()

    def on_log(self, args, state, control, logs=None, **kwargs):
        rate = self.meter.tokens_per_second
        if logs is None or rate is None or "loss" not in logs:
            return
        logs["tokens_per_second"] = round(rate, 1)
        if self.peak_flops:
            logs["mfu"] = round(rate * self.flops_per_token / (self.peak_flops * self.world_size), 4)


class InterruptCallback(TrainerCallback):
    """SIGINT/SIGTERM: finish the current step, save a checkpoint, stop.

    Under torchrun every rank must stop at the same step (a checkpoint save has barriers), so
    the flag is all-reduced each step when there is more than one process.
    """

    def __init__(self):
        self.requested = False
        self.interrupted_at: int | None = None
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C means now
            self.uninstall()
            raise KeyboardInterrupt
        self.requested = True
        log.warning("%s received: saving a checkpoint after this step, then stopping", signal.Signals(signum).name)

    def on_step_end(self, args, state, control, **kwargs):
        requested = self.requested
        if args.world_size > 1:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([1.0 if requested else 0.0])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            requested = bool(flag.item())
        if requested:
            self.interrupted_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
        return control


class ReadableProgressCallback(ProgressCallback):
    """The Trainer's progress bar, with one short line per log instead of a raw dict."""

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass  # evaluation is short; a second bar flickering under the first helps nobody

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or self.training_bar is None or not logs:
            return
        parts = [f"step {state.global_step}/{state.max_steps}"]
        if "loss" in logs:
            parts.append(f"loss {logs['loss']:.4f}")
        if "eval_loss" in logs:
            parts.append(f"val loss {logs['eval_loss']:.4f} (ppl {math.exp(min(logs['eval_loss'], 50)):.1f})")
        if "learning_rate" in logs:
            parts.append(f"lr {logs['learning_rate']:.2e}")
        if "tokens_per_second" in logs:
            parts.append(f"{logs['tokens_per_second']:,.0f} tok/s")
        if "mfu" in logs:
            parts.append(f"MFU {logs['mfu']:.1%}")
        if len(parts) > 1 and os.environ.get("TQDM_DISABLE") != "1":
            self.training_bar.write("  ".join(parts), file=sys.stderr)  # stdout is for results (--json)
