"""The whole line in one command, killed in the middle of pretraining and resumed (issue 9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

SMALL_RUN = """
pretrain:
  model: nano
  block_size: 64
  per_device_batch_size: 8
  max_steps: 40
  warmup_steps: 4
  eval_steps: 20
  eval_blocks: 32
  save_steps: 8
align:
  num_prompts: 10
  budget: 10
  batch_size: 5
  dpo_epochs: 1
  max_new_tokens: 32
  gold_win_prompts: 16
  gold_win_samples: 2
  use_peft: true           # a LoRA adapter, so the release holds a base bundle too (verified below)
watermark:
  samples: 4
  max_new_tokens: 120
release:
  name: e2e-model
"""


def mintline(*args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="2", TQDM_DISABLE="1")
    return subprocess.run(
        [sys.executable, "-m", "mintline", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        **kwargs,
    )


def sealed_checkpoint_step(pretrain_dir, at_least: int) -> int | None:
    steps = [
        int(marker.parent.name.split("-")[1]) for marker in pretrain_dir.glob("checkpoint-*/mintline-sealed.json")
    ]
    return max((step for step in steps if step >= at_least), default=None)


def test_run_killed_during_pretraining_resumes_and_releases(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(SMALL_RUN)
    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="2", TQDM_DISABLE="1")
    command = [sys.executable, "-m", "mintline", "run", "--config", str(config), "--run_dir", str(run_dir), "-q"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    # any sealed checkpoint from step 16 on: at ~0.1 s a step (bf16 CPUs) checkpoint-16 can be rotated out
    # (save_total_limit) between two polls, so waiting for that one name let the whole run finish first
    while sealed_checkpoint_step(run_dir / "pretrain", at_least=16) is None:
        assert first.poll() is None, f"the run ended before the kill: {first.communicate()}"
        assert time.time() < deadline, "pretraining never reached a checkpoint"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest interruption
    first.wait(timeout=60)
    journal = json.loads((run_dir / "run.json").read_text())
    assert journal["stages"]["prepare"]["status"] == "finished"
    assert journal["stages"]["pretrain"]["status"] == "running"  # it never got to say otherwise

    second = mintline("run", "--config", config, "--run_dir", run_dir, "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    result = json.loads(second.stdout.strip().splitlines()[-1])
    stages = result["stages"]
    assert result["finished"] is True
    assert stages["prepare"]["skipped"] is True
    assert stages["pretrain"]["skipped"] is False and stages["pretrain"]["resumed_from_step"] >= 16
    assert stages["pretrain"]["steps"] == 40  # the default recipe, frugal, keeps the batch and the steps
    assert stages["align"]["labels_received"] == 10
    assert stages["release"]["verified"] is True

    bundle, keys = run_dir / "release" / "bundle", run_dir / "release" / "keys"
    verify = mintline(
        "release", "verify", bundle, "--pubkey", keys / "publisher.pub", "--base", run_dir / "release" / "base"
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert oct((keys / "publisher.key").stat().st_mode & 0o777) == "0o600"
    assert oct((run_dir / "watermark" / "key.json").stat().st_mode & 0o777) == "0o600"

    detect = mintline(
        "watermark",
        "detect",
        "--key",
        run_dir / "watermark" / "key.json",
        "--tokenizer",
        run_dir / "pretrain" / "model",
        "--json",
        run_dir / "watermark" / "samples.jsonl",
    )
    assert detect.returncode == 0, detect.stderr
    verdicts = [json.loads(line)["watermarked"] for line in detect.stdout.strip().splitlines()]
    assert verdicts and all(verdicts), detect.stdout

    report = (run_dir / "report" / "report.html").read_text()
    for heading in ("Data: filtering", "Pretraining", "Alignment", "Watermark", "Release"):
        assert heading in report
    assert "simulated annotators" in report
    assert "Structured pruning at steps" in report  # the default's pruning, resumed across a pruning event
    assert stages["pretrain"]["sparsity"]["train_flops_per_token_reduction"] > 0.15
    assert {p.name for p in (run_dir / "report").glob("*.png")} >= {"loss.png", "filters.png", "watermark.png"}

    third = mintline("run", "--config", config, "--run_dir", run_dir, "--json")
    assert third.returncode == 0
    assert all(stage["skipped"] for stage in json.loads(third.stdout.strip().splitlines()[-1])["stages"].values())


def test_run_config_errors_fail_before_any_work(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("pretrain:\n  max_stepz: 3\n")
    result = mintline("run", "--config", config, "--run_dir", tmp_path / "run")
    assert result.returncode == 2 and "max_stepz" in result.stderr and "max_steps" in result.stderr
    assert not (tmp_path / "run" / "prepare").exists()

    result = mintline("run", "--run_dir", tmp_path / "run", "--align.budgett", "3")
    assert result.returncode == 2 and "budgett" in result.stderr
    result = mintline("run", "--run_dir", tmp_path / "run", "--pretraining.max_steps", "3")
    assert result.returncode == 2 and "unknown stage" in result.stderr
