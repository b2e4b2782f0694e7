"""Pretraining says when it runs far below what its cores would give, and why."""

from __future__ import annotations

import io
import logging
import time

from tqdm.auto import tqdm
from transformers import TrainerControl, TrainerState, TrainingArguments

from pretrain.callbacks import ReadableProgressCallback, ThroughputCallback
from pretrain.throughput import ThroughputMeter

TOKENS_PER_STEP = 1024


def meter_after(steps: int, work) -> ThroughputMeter:
    meter = ThroughputMeter(TOKENS_PER_STEP, warmup_steps=0)
    meter.tick()
    for _ in range(steps):
        work()
        meter.tick()
    return meter


def busy(seconds: float = 0.03) -> None:
    end = time.process_time() + seconds  # burns this much CPU however busy the machine is
    while time.process_time() < end:
        pass


def test_a_starved_process_is_told_its_share_and_the_rate_free_cores_give(tmp_path, caplog, capsys, monkeypatch):
    # waiting between steps stands in for the time the scheduler gives other processes
    meter = meter_after(5, lambda: (busy(0.01), time.sleep(0.1)))
    share = meter.recent_cpu_share(1)
    assert share is not None and share < 0.3
    expected = meter.expected_tokens_per_second(1)
    assert expected > meter.tokens_per_second * 2  # what the same work gives with the core to itself

    callback = ThroughputCallback(meter, flops_per_token=1.0, peak_flops=None, world_size=1, cpu_threads=1)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    state, control = TrainerState(max_steps=10, global_step=5), TrainerControl()
    logs = {"loss": 3.0}
    with caplog.at_level(logging.WARNING, logger="pretrain"):
        callback.on_log(args, state, control, logs=logs)
        callback.on_log(args, state, control, logs=dict(logs))  # the warning is not repeated every log line
    assert logs["cpu_share"] < 0.3 and logs["expected_tokens_per_second"] == round(expected, 1)
    warnings = [r.getMessage() for r in caplog.records if "pretraining at" in r.getMessage()]
    assert len(warnings) == 1 and "expected at least" in warnings[0] and "with 1 core to itself" in warnings[0]

    # the progress line the user watches says it too
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    progress = ReadableProgressCallback()
    progress.training_bar = tqdm(total=10, file=io.StringIO())
    capsys.readouterr()
    progress.on_log(args, state, control, logs=logs)
    line = capsys.readouterr().err
    assert "step 5/10" in line and "on free cores" in line and "CPU share" in line


def test_a_process_with_its_core_is_not_warned(tmp_path, caplog):
    meter = meter_after(5, busy)
    callback = ThroughputCallback(meter, flops_per_token=1.0, peak_flops=None, world_size=1, cpu_threads=1)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    logs = {"loss": 3.0}
    with caplog.at_level(logging.WARNING, logger="pretrain"):
        callback.on_log(args, TrainerState(max_steps=10, global_step=5), TrainerControl(), logs=logs)
    if logs["cpu_share"] >= ThroughputCallback.SLOW_SHARE:  # on a busy machine even a busy loop waits for a core
        assert not [r for r in caplog.records if "pretraining at" in r.getMessage()]
    assert logs["expected_tokens_per_second"] >= logs["tokens_per_second"] * 0.99
