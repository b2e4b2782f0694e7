"""RigL under DDP: every rank must grow the same connections, or the replicas drift apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.distributed, pytest.mark.slow]


def test_rigl_masks_agree_across_ddp_ranks(tmp_path):
    worker = Path(__file__).with_name("sparsity_ddp_worker.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*torchrun, str(worker), str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["moved"] > 0 and ranks[0]["moved"] == ranks[1]["moved"]
    for step, masks in ranks[0]["masks"].items():
        for name, mask in masks.items():
            assert torch.equal(mask, ranks[1]["masks"][step][name]), (step, name)
