"""One rank of the DDP sparse-training check (run by test_sparsity_distributed.py under torchrun)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparsity_helpers import TokenBlocks, tiny_llama, training_arguments  # noqa: E402

from pretrain.sparsity.callbacks import build_callbacks  # noqa: E402
from pretrain.sparsity.config import SparsityArguments  # noqa: E402
from pretrain.sparsity.masking import masks_by_name  # noqa: E402


def main(out: Path) -> None:
    torch.set_num_threads(1)
    model = tiny_llama()
    blocks = torch.randint(0, 512, (256, 16), generator=torch.Generator().manual_seed(0))
    sparsity = SparsityArguments(sparsity=0.5, sparsity_method="rigl", sparsity_every=2, sparsity_end=1.0)
    callbacks = build_callbacks(sparsity, model)
    args = training_arguments(
        out / "trainer",
        max_steps=6,
        per_device_train_batch_size=4,
        save_strategy="no",
        ddp_backend="gloo",
        ddp_find_unused_parameters=False,
    )
    masks = {}

    class Snapshot(TrainerCallback):  # records the masks in use after every step
        def on_step_end(self, args, state, control, model=None, **kwargs):
            masks[state.global_step] = masks_by_name(model)

    trainer = Trainer(model=model, args=args, train_dataset=TokenBlocks(blocks), callbacks=[*callbacks, Snapshot()])
    trainer.train()
    rank = torch.distributed.get_rank()
    torch.save({"masks": masks, "moved": sum(u["moved"] for u in callbacks[0].updates)}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
