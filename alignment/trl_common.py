"""What the TRL scripts (`alignment.dpo`, `alignment.reward`) share: data loading, CPU defaults, saving.

`dataset_name` may be a local preference JSONL (checked row by row, bad rows reported with their
line numbers and skipped), a directory written by `datasets.save_to_disk`, or a dataset name
already in the local cache (nothing is downloaded: the hub is offline).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from alignment.data import read_preference_file
from alignment.errors import ConfigError, PreferenceDataError

log = logging.getLogger("alignment")


def load_preference_dataset(script_args, want_eval: bool, seed: int = 0):
    """A DatasetDict with a train split (and a test split when evaluation is on)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    name = script_args.dataset_name
    if not name:
        raise ConfigError("dataset_name: required (a preference JSONL file, a saved dataset directory, or a cached dataset)")
    path = Path(name)
    if path.is_file():
        preference_file = read_preference_file(path)
        rows = preference_file.rows
        dataset = DatasetDict({script_args.dataset_train_split: Dataset.from_dict({
            "prompt": [r.prompt for r in rows], "chosen": [r.chosen for r in rows], "rejected": [r.rejected for r in rows],
        })})
    elif path.is_dir():
        dataset = load_from_disk(str(path))
        if isinstance(dataset, Dataset):
            dataset = DatasetDict({script_args.dataset_train_split: dataset})
    else:
        try:
            dataset = load_dataset(name, name=script_args.dataset_config)
        except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; all mean "not available offline"
            raise PreferenceDataError(f"dataset_name: {name!r} is not a file, a directory or a cached dataset ({exc})") from None
    if script_args.dataset_train_split not in dataset:
        raise PreferenceDataError(f"dataset_name: {name} has no split {script_args.dataset_train_split!r} (has {', '.join(dataset)})")
    if want_eval and script_args.dataset_test_split not in dataset:
        # A single labelled file: hold out a tenth for evaluation rather than refusing to evaluate.
        parts = dataset[script_args.dataset_train_split].train_test_split(test_size=0.1, seed=seed)
        dataset = DatasetDict({script_args.dataset_train_split: parts["train"], script_args.dataset_test_split: parts["test"]})
    return dataset


def cpu_defaults(parser) -> None:
    """Without a GPU, default to `use_cpu=True`: TRL's bf16=True default is refused otherwise.

    Only the default changes; `--use_cpu false` or a YAML key still wins.
    """
    import torch

    if not torch.cuda.is_available():
        parser.set_defaults(use_cpu=True)


def prepare_for_cpu(training_args) -> None:
    """Without a GPU, run on the CPU (TRL's bf16 default then uses the CPU's bf16 units)."""
    import torch

    if not torch.cuda.is_available() and not training_args.use_cpu:
        training_args.use_cpu = True


def save_trained(trainer, tokenizer, output_dir: str) -> dict:
    """Save the model (or just the LoRA adapter, on its own) and the tokenizer; say which."""
    from peft import PeftModel

    model = trainer.model
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        # TRL adds a frozen "ref" adapter to a model that arrived already wrapped; ship only ours.
        model.save_pretrained(out, selected_adapters=["default"])
        kind = "adapter"
    else:
        trainer.save_model(str(out))
        kind = "model"
    tokenizer.save_pretrained(out)
    return {"output_dir": str(out), "saved": kind}


def write_figures(output_dir: str, name: str, figures: dict) -> None:
    path = Path(output_dir) / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def keep_stdout_for_results(trainer) -> None:
    """Trainer log lines go to stderr, so stdout stays for results (`--json` prints one object there).

    The stock callbacks print each log dict to stdout (PrinterCallback when tqdm is off,
    ProgressCallback's tqdm.write when it is on).
    """
    import sys

    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class StderrProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and self.training_bar is not None and logs:
                self.training_bar.write(str({k: v for k, v in logs.items() if k != "total_flos"}), file=sys.stderr)

    had_progress = any(isinstance(c, ProgressCallback) for c in trainer.callback_handler.callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if had_progress:
        trainer.add_callback(StderrProgress())
