"""Two processes under torchrun (DDP over gloo on CPU) train the same model as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.distributed

COMMON = [
    "--model",
    "nano",
    "--block_size",
    "64",
    "--max_steps",
    "8",
    "--warmup_steps",
    "1",
    "--eval_blocks",
    "16",
    "--save_steps",
    "8",
    "--logging_steps",
    "1",
    "--precision",
    "fp32",
    "--seed",
    "3",
    "-q",
    "--json",
]


def prepared_run(tmp_path, prepared_data, name):
    run = tmp_path / name
    (run / "prepare").mkdir(parents=True)
    shutil.copytree(prepared_data["data"], run / "prepare" / "data")
    shutil.copytree(prepared_data["tokenizer"], run / "prepare" / "tokenizer")
    return run


def test_two_process_ddp_matches_one_process(tmp_path, prepared_data):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = prepared_run(tmp_path, prepared_data, "single")
    proc = subprocess.run(
        [sys.executable, "-m", "mintline", "pretrain", "--run_dir", single, "--per_device_batch_size", "8", *COMMON],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    double = prepared_run(tmp_path, prepared_data, "ddp")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*torchrun, "-m", "mintline", "pretrain", "--run_dir", double, "--per_device_batch_size", "4", *COMMON],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    one = json.loads((single / "run.json").read_text())["stages"]["pretrain"]["figures"]
    two = json.loads((double / "run.json").read_text())["stages"]["pretrain"]["figures"]
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert (double / "pretrain" / "model" / "model.safetensors").is_file()
    assert (double / "pretrain" / "checkpoint-8").is_dir()
    # Same global batch (2 x 4 = 8) and the same data order: the same training, up to float reduction order.
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=2e-3)
    losses = lambda run: {
        e["step"]: e["loss"] for e in json.loads((run / "pretrain" / "log_history.json").read_text()) if "loss" in e
    }
    for step, loss in losses(single).items():
        assert losses(double)[step] == pytest.approx(loss, rel=2e-3), step
