"""Callback state that travels inside the Trainer's checkpoints, for exact resume.

Masks, importance scores accumulated so far and the run's accounting are not part of the
model's weights, so each callback writes its own small file into `checkpoint-N/`. It is
written at the end of the step that the Trainer is about to checkpoint (when
`control.should_save` is already set), i.e. *before* the checkpoint is complete, so an engine
that seals finished checkpoints (pretrain/checkpoints.py) seals this file with the rest; if
some later callback asked for the save, `on_save` writes it instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from transformers import TrainerCallback

from pretrain.atomic import atomic_path

log = logging.getLogger("pretrain")


def checkpoint_dir(args, state) -> Path:
    # The Trainer's own naming (PREFIX_CHECKPOINT_DIR); hyper-parameter search runs are not supported.
    return Path(args.output_dir) / f"checkpoint-{state.global_step}"


class CheckpointedCallback(TrainerCallback):
    state_file = "sparsity_state.pt"

    def state_dict(self, model=None) -> dict:
        """What to save; `model` is the live model (callbacks are handed it with every event)."""
        raise NotImplementedError

    def load_state_dict(self, saved: dict) -> None:
        raise NotImplementedError

    def step_end(self, args, state, control, **kwargs) -> None:
        """The callback's own end-of-step work; runs before the state is written."""

    def on_step_end(self, args, state, control, **kwargs):
        self.step_end(args, state, control, **kwargs)
        if control.should_save:
            self.write_state(args, state, kwargs.get("model"))

    def on_save(self, args, state, control, **kwargs):
        if not (checkpoint_dir(args, state) / self.state_file).exists():
            self.write_state(args, state, kwargs.get("model"))

    def write_state(self, args, state, model=None) -> None:
        if not state.is_world_process_zero:
            return
        directory = checkpoint_dir(args, state)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / self.state_file
        with atomic_path(target) as tmp:
            torch.save({"global_step": state.global_step, "state": self.state_dict(model)}, tmp)

    def load_saved_state(self, args, state) -> bool:
        """Restore from the checkpoint being resumed; False when there is none to restore."""
        candidates = []
        explicit = getattr(args, "resume_from_checkpoint", None)
        if isinstance(explicit, str) and explicit:
            candidates.append(Path(explicit))
        candidates.append(checkpoint_dir(args, state))
        for directory in candidates:
            path = directory / self.state_file
            if not path.is_file():
                continue
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("global_step") != state.global_step:
                log.warning("%s is from step %s, not %s; ignored", path, payload.get("global_step"), state.global_step)
                continue
            self.load_state_dict(payload["state"])
            log.info("restored %s from %s", type(self).__name__, path)
            return True
        return False
