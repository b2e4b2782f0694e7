"""What the TRL scripts (`alignment.dpo`, `alignment.reward`) share: data loading, CPU defaults, saving.

The data is named as TRL's own scripts name it, so one recipe serves `trl dpo` and
`python -m alignment.dpo` alike:

* `dataset_name`: whatever `datasets.load_dataset` takes locally (a folder of JSONL/Parquet
  files whose names give the splits, `train.jsonl` / `test.jsonl`), a folder written by
  `save_to_disk`, or, beyond TRL, a single preference file (`.jsonl`, `.jsonl.gz`, `.parquet`;
  checked row by row, bad rows reported with their numbers and skipped);
* `datasets:` in the YAML recipe (TRL's `DatasetMixtureConfig`: path, name, data_dir,
  data_files, split, columns, fraction per entry; `streaming`, `test_split_size`), loaded by
  TRL's own `get_dataset`; an entry's `path` may also be a single preference file.

Nothing is downloaded: a hub id loads only from the local cache, else fails with one line.
"""

from __future__ import annotations

import ast
import json
import logging
from contextlib import contextmanager
from pathlib import Path

from alignment.atomic import atomic_write_text
from alignment.data import is_preference_file_name, read_preference_file
from alignment.errors import ConfigError, PreferenceDataError

log = logging.getLogger("alignment")

DEFAULT_HELD_OUT = 0.1  # held out for evaluation when the data has no test split and test_split_size is unset


def load_preference_splits(script_args, want_eval: bool, seed: int = 0, dataset_args=None):
    """(train, eval) datasets (eval None unless evaluating); streamed (IterableDataset) on request."""
    from datasets import IterableDataset

    streaming = bool(script_args.dataset_streaming or (dataset_args is not None and dataset_args.streaming))
    test_split_size = dataset_args.test_split_size if dataset_args is not None else None
    train_split, test_split = script_args.dataset_train_split, script_args.dataset_test_split
    if dataset_args is not None and dataset_args.datasets:
        if script_args.dataset_name:
            log.warning("both `datasets` and `dataset_name` are given: the `datasets` mixture is used, as TRL does")
        dataset, what = _load_mixture(dataset_args, streaming), "datasets"
        train_split, test_split = "train", "test"  # what get_dataset returns, whatever the split flags say
    else:
        dataset, what = _load_named(script_args, streaming), f"dataset_name: {script_args.dataset_name}"
    if train_split not in dataset:
        raise PreferenceDataError(f"{what} has no split {train_split!r} (has {', '.join(dataset) or 'none'})")
    train = dataset[train_split]
    if not want_eval:
        return train, None
    if test_split in dataset:
        return train, dataset[test_split]
    # A single labelled file: hold out a share for evaluation rather than refusing to evaluate.
    if isinstance(train, IterableDataset):
        raise PreferenceDataError(
            f"{what} has no split {test_split!r} to evaluate on, and a streamed dataset cannot be split: "
            "give a test split, or --eval_strategy no"
        )
    parts = train.train_test_split(test_size=test_split_size or DEFAULT_HELD_OUT, seed=seed)
    return parts["train"], parts["test"]


def check_streaming(script_args, training_args, dataset_args=None) -> None:
    """A streamed dataset has no length: the Trainer needs max_steps to know when to stop."""
    streaming = script_args.dataset_streaming or (dataset_args is not None and dataset_args.streaming)
    if streaming and training_args.max_steps <= 0:
        raise ConfigError("max_steps: required with a streaming dataset (it has no length to count epochs by)")


def dataset_entry(value):
    """One `datasets:` entry from YAML or the command line: a mapping of DatasetConfig fields, or a path.

    mintline's parser hands YAML values over as text (Python or JSON literal syntax), so the
    mapping is parsed back here; TRL's own parser passes dicts, which DatasetMixtureConfig takes.
    """
    from trl.scripts.utils import DatasetConfig

    if isinstance(value, DatasetConfig):
        return value
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                fields = "path, name, data_dir, data_files, split, columns, fraction"
                raise ValueError(f"not a mapping of {fields}: {value}") from None
    if isinstance(value, dict):
        return DatasetConfig(**value)  # an unknown key is a TypeError, reported as a bad value
    return DatasetConfig(path=str(value))


dataset_entry.__name__ = "dataset entry"  # how argparse names the type in "invalid dataset entry value"


def accept_dataset_mixtures(parser) -> None:
    """Let `datasets` take YAML mappings and JSON text, not only bare paths (TRL's parser type)."""
    for action in parser._actions:
        if action.dest == "datasets":
            action.type = dataset_entry


@contextmanager
def offline():
    """No request leaves this machine while datasets loads: a hub id is read from the cache or refused at once.

    Without this, an uncached id costs ~25 s of retries before the same failure.
    """
    import datasets
    import huggingface_hub.constants as hub_constants

    before = datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = before


def _load_named(script_args, streaming: bool):
    """`--dataset_name`: a preference file, a save_to_disk folder, or what load_dataset takes (TRL's call)."""
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    name = script_args.dataset_name
    if not name:
        raise ConfigError(
            "dataset_name: required (a preference file, a folder of split files, or a `datasets:` mixture)"
        )
    path = Path(name)
    if path.is_file():
        if not is_preference_file_name(path):
            raise PreferenceDataError(f"dataset_name: {name} is a file but not .jsonl, .jsonl.gz or .parquet")
        dataset = _preference_file_dataset(path)
        dataset = dataset.to_iterable_dataset() if streaming else dataset
        return DatasetDict({script_args.dataset_train_split: dataset})
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        dataset = load_from_disk(str(path))
        return DatasetDict({script_args.dataset_train_split: dataset}) if isinstance(dataset, Dataset) else dataset
    try:
        with offline():
            return load_dataset(name, name=script_args.dataset_config, streaming=streaming)
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds; each means "cannot load this here"
        where = "not a local file or folder, nor a cached dataset"
        if path.is_dir():
            where = "a folder load_dataset cannot read"
        raise PreferenceDataError(
            f"dataset_name: {name!r} is {where} (nothing is downloaded): {_first_line(exc)}"
        ) from None


def _load_mixture(dataset_args, streaming: bool):
    """TRL's `get_dataset`, offline; an entry naming one preference file is read with the json/parquet builder."""
    from trl import DatasetMixtureConfig, get_dataset

    entries = [_local_file_entry(entry) for entry in dataset_args.datasets]
    mixture = DatasetMixtureConfig(datasets=entries, streaming=streaming, test_split_size=dataset_args.test_split_size)
    try:
        with offline():
            return get_dataset(mixture)
    except Exception as exc:  # noqa: BLE001 - as above; the message names the entry datasets could not load
        paths = ", ".join(entry.path for entry in dataset_args.datasets)
        raise PreferenceDataError(
            f"datasets: cannot load the mixture of {paths} (nothing is downloaded): {_first_line(exc)}"
        ) from None


def _local_file_entry(entry):
    """A `path:` naming one local .jsonl/.jsonl.gz/.parquet file becomes the json/parquet builder over that file."""
    from dataclasses import replace

    path = Path(entry.path)
    if entry.data_files is not None or not path.is_file() or not is_preference_file_name(path):
        return entry
    builder = "parquet" if path.suffix == ".parquet" else "json"
    return replace(entry, path=builder, data_files={entry.split: str(path)})


def _preference_file_dataset(path: Path):
    from datasets import Dataset

    rows = read_preference_file(path).rows
    return Dataset.from_dict(
        {
            "prompt": [r.prompt for r in rows],
            "chosen": [r.chosen for r in rows],
            "rejected": [r.rejected for r in rows],
        }
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def preference_columns(dataset) -> tuple[list, list, list]:
    """(prompts, chosen, rejected) of a Dataset or a (small) IterableDataset."""
    from datasets import IterableDataset

    if isinstance(dataset, IterableDataset):
        rows = list(dataset)
        return [r["prompt"] for r in rows], [r["chosen"] for r in rows], [r["rejected"] for r in rows]
    return dataset["prompt"], dataset["chosen"], dataset["rejected"]


def count_rows(dataset) -> int | None:
    """Rows of a Dataset; None for a streamed one (it has no length)."""
    from datasets import IterableDataset

    return None if isinstance(dataset, IterableDataset) else len(dataset)


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
    atomic_write_text(Path(output_dir) / name, json.dumps(figures, indent=2, default=str) + "\n")


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


# Set in the processes `accelerate launch` starts for us, so they train instead of launching again.
LAUNCHED_ENV = "MINTLINE_UNDER_ACCELERATE"


def launch_option_names() -> set[str]:
    """The options `accelerate launch` takes (`num_processes`, `mixed_precision`, ...), plus TRL's `accelerate_config`.

    TRL's CLI hands every recipe key its training dataclasses do not know to `accelerate launch`, so a
    recipe written for `trl dpo` may carry them.
    """
    from accelerate.commands.launch import launch_command_parser

    names = {a.dest for a in launch_command_parser()._actions if a.option_strings} - {"help", "module"}
    return names | {"accelerate_config"}


def launch_options(strings: list[str]) -> list[str]:
    """The leftover `--key value` strings of a recipe or command line, checked to be `accelerate launch` options."""
    names = launch_option_names()
    for token in strings:
        if token.startswith("--") and token[2:].split("=")[0] not in names:
            raise ConfigError(f"unknown option {token}: neither a training option nor an `accelerate launch` option")
    return list(strings)


def launch_through_accelerate(launch_args: list[str], module_args: list[str]) -> int:
    """Run `python -m <module_args>` under `accelerate launch <launch_args>`, as `trl dpo` runs its scripts."""
    import os
    import subprocess

    from accelerate.commands.launch import launch_command, launch_command_parser
    from trl.cli.accelerate_config import resolve_accelerate_config_argument

    launch = launch_command_parser().parse_args([*resolve_accelerate_config_argument(launch_args), "-m", *module_args])
    os.environ[LAUNCHED_ENV] = "1"
    try:
        launch_command(launch)
    except subprocess.CalledProcessError as exc:  # the child has printed its own error
        return exc.returncode or 1
    finally:
        os.environ.pop(LAUNCHED_ENV, None)
    return 0


def under_accelerate() -> bool:
    import os

    return bool(os.environ.get(LAUNCHED_ENV))


def _without(strings: list[str], taken: list[str]) -> list[str]:
    """`strings` less the ordered subsequence `taken` (the command line less its launch options)."""
    out, rest = [], list(taken)
    for token in strings:
        if rest and token == rest[0]:
            rest.pop(0)
        else:
            out.append(token)
    return out


def run_script(name: str, make_parser, main) -> int:
    """`python -m alignment.<name>`: parse (a bad flag, key or value is one line), run, print the figures as JSON.

    Keys that are `accelerate launch` options (a recipe written for `trl dpo` may set `num_processes`) start the
    script again under `accelerate launch`, as TRL's CLI does; any other unknown key is an error.
    """
    import sys

    from alignment.errors import AlignmentError

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv = sys.argv[1:]
    try:
        *configs, config_rest, cli_rest = make_parser().parse_args_and_config(
            argv, return_remaining_strings=True, separate_remaining_strings=True
        )
        launch = launch_options(config_rest + cli_rest)
    except (ValueError, TypeError) as exc:  # dataclass checks, bad `datasets:` entries, unknown keys
        sys.stderr.write(f"{name}: error: {exc if isinstance(exc, AlignmentError) else _first_line(exc)}\n")
        return 2
    if launch and not under_accelerate():
        return launch_through_accelerate(launch, [name, *_without(argv, cli_rest)])
    try:
        print(json.dumps(main(*configs)))
    except AlignmentError as exc:
        sys.stderr.write(f"{name}: error: {exc}\n")
        return exc.exit_code
    return 0
