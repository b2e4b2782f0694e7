"""Trainer callbacks of the engine: throughput, interruption, readable progress."""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from pretrain.throughput import ThroughputMeter, cpu_contention

log = logging.getLogger("pretrain")


class ThroughputCallback(TrainerCallback):
    """Adds steady-state `tokens_per_second` (and `mfu` on GPUs) to every log line.

    On CPUs it also compares the throughput with what this model and precision reach on free
    cores (`expected_tokens_per_second`, from the process's own CPU time) and says why when the
    run is far below it: a run on shared cores can take several times longer with nothing else
    on screen to explain it.
    """

    SLOW_SHARE = 0.6  # below this share of its threads' CPU time, training is told it is starved
    WARN_EVERY_SECONDS = 600.0

    def __init__(
        self,
        meter: ThroughputMeter,
        flops_per_token: float,
        peak_flops: float | None,
        world_size: int,
        cpu_threads: int | None = None,
    ):
        self.meter = meter
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.world_size = world_size
        self.cpu_threads = cpu_threads  # None on GPUs: the CPU share says nothing there
        self._last_warning: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        contention = cpu_contention(self.cpu_threads) if self.cpu_threads and state.is_world_process_zero else None
        if contention:
            load, cpus = contention
            log.warning(
                "pretraining on %s, but the load average is %.1f on %d CPUs: other processes share the cores, so "
                "this stage will run slower than on a quiet machine",
                _threads(self.cpu_threads),
                load,
                cpus,
            )

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
        if self.cpu_threads:
            share = self.meter.recent_cpu_share(self.cpu_threads)
            expected = self.meter.expected_tokens_per_second(self.cpu_threads)
            if share is None or expected is None:
                return
            logs["cpu_share"] = round(share, 3)
            logs["expected_tokens_per_second"] = round(expected, 1)
            if share < self.SLOW_SHARE and state.is_world_process_zero:
                self._warn_slow(share, expected)

    def _warn_slow(self, share: float, expected: float) -> None:
        now = time.monotonic()
        if self._last_warning is not None and now - self._last_warning < self.WARN_EVERY_SECONDS:
            return
        self._last_warning = now
        recent = self.meter.recent_tokens_per_second
        contention = cpu_contention(self.cpu_threads)
        cause = (
            f"the load average is {contention[0]:.1f} on {contention[1]} CPUs: other processes share the cores"
            if contention
            else "other processes (or a CPU quota) take the cores"
        )
        if contention and self.cpu_threads > 1:
            # threads that wait for each other at every op suffer most from being descheduled
            cause += " (on cores this busy, --num_threads 1 can be faster)"
        log.warning(
            "pretraining at %s tokens/s, expected at least %s with %s to itself: it gets %.0f%% of that CPU time; "
            "%s. At this rate the stage takes about %.1fx as long as on a quiet machine.",
            f"{recent:,.0f}",
            f"{expected:,.0f}",
            _cores(self.cpu_threads),
            share * 100,
            cause,
            1 / max(share, 1e-3),
        )


def _threads(count: int) -> str:
    return "1 thread" if count == 1 else f"{count} threads"


def _cores(count: int) -> str:
    return "1 core" if count == 1 else f"{count} cores"


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
            if logs.get("cpu_share") is not None and logs["cpu_share"] < ThroughputCallback.SLOW_SHARE:
                # say it on the line the user watches: far below what free cores give, and why
                expected, share = logs["expected_tokens_per_second"], logs["cpu_share"]
                parts[-1] += f" (≥{expected:,.0f} on free cores; {share:.0%} CPU share)"
        if "mfu" in logs:
            parts.append(f"MFU {logs['mfu']:.1%}")
        if len(parts) > 1 and os.environ.get("TQDM_DISABLE") != "1":
            self.training_bar.write("  ".join(parts), file=sys.stderr)  # stdout is for results (--json)


def tensorboard_callback(log_dir, scalar_sources=()):
    """transformers' TensorBoardCallback writing to one directory for the whole run.

    The stock callback closes its writer at on_train_end; the engine's final evaluation logs
    after that, and the callback then opened a second writer under `output_dir/runs/<date>_<host>`
    with the same eval scalars. Here the writer stays open until `close()`, and `scalar_sources`
    (callbacks with `event_at(step)` and `tensorboard_scalars(model)`, e.g. dynamic pruning) add
    their own scalars at train begin and at every step where they changed the model.
    """
    from transformers.integrations import TensorBoardCallback

    class OneDirectoryTensorBoardCallback(TensorBoardCallback):
        def __init__(self):
            super().__init__()
            self.logging_dir = str(log_dir)  # over TENSORBOARD_LOGGING_DIR too: the run dir holds the run
            self.scalar_sources = list(scalar_sources)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            super().on_train_begin(args, state, control, model=model, **kwargs)
            self._add_source_scalars(state, model, lambda source: True)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self._add_source_scalars(state, model, lambda source: source.event_at(state.global_step))

        def _add_source_scalars(self, state, model, wanted) -> None:
            if not state.is_world_process_zero or self.tb_writer is None or model is None:
                return
            written = False
            for source in self.scalar_sources:
                if wanted(source):
                    for name, value in source.tensorboard_scalars(model).items():
                        self.tb_writer.add_scalar(name, value, state.global_step)
                        written = True
            if written:
                self.tb_writer.flush()

        def on_train_end(self, args, state, control, **kwargs):
            if self.tb_writer is not None:
                self.tb_writer.flush()  # stays open: the final evaluation is logged after train()

        def close(self) -> None:
            if self.tb_writer is not None:
                self.tb_writer.close()
                self.tb_writer = None

    return OneDirectoryTensorBoardCallback()
