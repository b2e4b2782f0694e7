"""Helpers the watermark tests import by module name (pytest puts each test's folder on sys.path)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def one_thread():
    """Decoding a ~1M model is latency-bound; on 2 shared cores a second torch thread mostly
    waits (measured 5 ms/step with 1 thread vs 100+ ms with 2 under load). Restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
