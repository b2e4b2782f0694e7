"""Tokens per second and model FLOPs utilisation (MFU), as training runs."""

from __future__ import annotations

import collections
import os
import time

# Dense peak tensor throughput in FLOP/s for bf16/fp16 by device name fragment (vendor data sheets).
GPU_PEAK_FLOPS = {
    "H200": 989.4e12,
    "H100": 989.4e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 125e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "V100": 125e12,
    "T4": 65e12,
}


def device_peak_flops() -> tuple[float | None, str]:
    import torch

    if not torch.cuda.is_available():
        return None, "cpu"
    name = torch.cuda.get_device_name()
    for fragment, peak in GPU_PEAK_FLOPS.items():
        if fragment in name:
            return peak, name
    return None, name


class ThroughputMeter:
    """Steady-state tokens/s from the wall time between consecutive optimizer steps.

    The first `warmup_steps` intervals (allocation, compilation) and intervals that contained an
    evaluation or a checkpoint are not counted, so the figure is the training throughput.
    """

    def __init__(self, tokens_per_step: int, warmup_steps: int = 2, recent_steps: int = 20):
        self.tokens_per_step = tokens_per_step
        self.warmup_steps = warmup_steps
        self.intervals_seen = 0
        self.counted_steps = 0
        self.counted_seconds = 0.0
        self.counted_cpu_seconds = 0.0  # process CPU time: robust to other load on the machine
        self.recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=recent_steps)  # (wall, cpu)
        self._last_tick: float | None = None
        self._last_cpu: float | None = None
        self._discard_next = False

    def tick(self) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if self._last_tick is not None:
            self.intervals_seen += 1
            if self.intervals_seen > self.warmup_steps and not self._discard_next:
                self.counted_steps += 1
                self.counted_seconds += now - self._last_tick
                self.counted_cpu_seconds += cpu - self._last_cpu
                self.recent.append((now - self._last_tick, cpu - self._last_cpu))
        self._discard_next = False
        self._last_tick, self._last_cpu = now, cpu

    def discard_next_interval(self) -> None:
        self._discard_next = True

    @property
    def tokens_per_second(self) -> float | None:
        if not self.counted_seconds:
            return None
        return self.counted_steps * self.tokens_per_step / self.counted_seconds

    @property
    def tokens_per_cpu_second(self) -> float | None:
        if not self.counted_cpu_seconds:
            return None
        return self.counted_steps * self.tokens_per_step / self.counted_cpu_seconds

    @property
    def recent_tokens_per_second(self) -> float | None:
        wall = sum(seconds for seconds, _ in self.recent)
        return len(self.recent) * self.tokens_per_step / wall if wall else None

    def recent_cpu_share(self, threads: int) -> float | None:
        """Over the last steps: the CPU time the process got, as a fraction of `threads` full cores.

        Near 1 when training has its cores to itself; far below when other processes share them
        (the scheduler hands each runnable thread a slice), which is what slows a run down most.
        """
        wall = sum(seconds for seconds, _ in self.recent)
        if not wall or threads < 1:
            return None
        return sum(cpu for _, cpu in self.recent) / (wall * threads)

    def expected_tokens_per_second(self, threads: int) -> float | None:
        """Tokens/s this model and precision would reach with `threads` cores to itself.

        Measured, not looked up: the tokens each CPU-second of the recent steps produced, times the
        threads. A lower bound, since sharing cores also costs cache and synchronisation time.
        """
        cpu = sum(seconds for _, seconds in self.recent)
        if not cpu:
            return None
        return len(self.recent) * self.tokens_per_step / cpu * threads


def cpu_contention(threads: int) -> tuple[float, int] | None:
    """(1-minute load average, CPUs) when more threads want to run than there are CPUs, else None.

    The load average counts every runnable thread on the machine, training's own included.
    """
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return None
    cpus = os.cpu_count() or 1
    return (load, cpus) if load > cpus + 0.5 and load > threads + 0.5 else None
