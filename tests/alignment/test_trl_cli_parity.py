"""One recipe, two programs: TRL's own `trl dpo` and `python -m alignment.dpo` take the same data.

`--dataset_name` takes what TRL's `load_dataset` takes (a folder of split files) plus a single
preference file; a `datasets:` mixture recipe (TRL's DatasetMixtureConfig) works in both; a hub
id fails at once with one line, since nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROWS = [
    {
        "prompt": f"Question {i}: what does sorted return?",
        "chosen": "A new sorted list; the input is left as it was.",
        "rejected": f"It prints {i}.",
    }
    for i in range(12)
]
RECIPE = """\
model_name_or_path: model
max_steps: 2
per_device_train_batch_size: 2
max_length: 64
learning_rate: 1.0e-3
use_cpu: true
bf16: false
gradient_checkpointing: false
report_to: none
save_strategy: "no"
disable_tqdm: true
"""


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tokenizer_dir) -> Path:
    """A tiny Llama built from a config (with the suite's tokenizer), a split folder and a single file."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("trl-parity")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    _write_jsonl(root / "prefs" / "train.jsonl", ROWS[:8])
    _write_jsonl(root / "prefs" / "test.jsonl", ROWS[8:])
    _write_jsonl(root / "extra.jsonl", ROWS[:4])
    return root


def _start_trl(workdir: Path, recipe: str) -> subprocess.Popen:
    """Start TRL's own `trl dpo --config recipe.yaml` (it launches trl/scripts/dpo.py through accelerate)."""
    (workdir / "recipe.yaml").write_text(RECIPE + recipe, encoding="utf-8")
    shutil.rmtree(workdir / "out-trl", ignore_errors=True)
    trl = Path(sys.executable).with_name("trl")
    return subprocess.Popen(
        [str(trl), "dpo", "--config", "recipe.yaml", "--output_dir", "out-trl"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen, name: str) -> str:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, f"{name} failed ({process.returncode}):\n{err[-3000:]}"
    return out


def _weights(directory: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(directory / "model.safetensors")


@pytest.mark.slow
def test_stock_trl_and_mintline_train_alike_on_a_folder_of_split_files(workdir):
    trl = _start_trl(workdir, "dataset_name: prefs\n")
    shutil.rmtree(workdir / "out-mintline", ignore_errors=True)
    command = [sys.executable, "-m", "alignment.dpo", "--config", "recipe.yaml", "--output_dir", "out-mintline"]
    ours = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    figures = json.loads(_finish(ours, "python -m alignment.dpo").strip().splitlines()[-1])
    _finish(trl, "trl dpo")
    assert figures["steps"] == 2 and figures["train_pairs"] == 8 and figures["saved"] == "model"
    ours, theirs = _weights(workdir / "out-mintline"), _weights(workdir / "out-trl")
    start = _weights(workdir / "model")
    assert set(ours) == set(theirs)
    # Same data, order and seed: the same two optimiser steps, to the bit.
    assert all((ours[k] - theirs[k]).abs().max().item() == 0.0 for k in ours)
    assert max((ours[k] - start[k]).abs().max().item() for k in ours) > 0  # and they did train


@pytest.mark.slow
def test_a_trl_datasets_mixture_recipe_runs_in_both(cli, workdir, monkeypatch):
    recipe = """\
datasets:
  - path: prefs
    split: train
  - path: json
    data_files: extra.jsonl
    split: train
    columns: [prompt, chosen, rejected]
test_split_size: 0.25
eval_strategy: steps
eval_steps: 2
"""
    trl = _start_trl(workdir, recipe)
    monkeypatch.chdir(workdir)  # the recipe's paths are relative, as they are for `trl dpo`
    # mintline's side in this process, through the umbrella CLI's parser (the other test runs `python -m`)
    ours = cli("align", "dpo", "--config", workdir / "recipe.yaml", "--output_dir", workdir / "out-mintline", "--json")
    _finish(trl, "trl dpo")
    assert ours.code == 0, ours
    figures = ours.json()
    assert figures["train_pairs"] == 9 and figures["eval_pairs"] == 3  # (8 + 4) rows, a quarter held out
    assert (workdir / "out-trl" / "model.safetensors").is_file()


# -- mintline's side alone: what it takes beyond TRL, and how it fails --------------------------------
def _dpo(cli, workdir: Path, *args):
    return cli(
        "align",
        "dpo",
        "--model_name_or_path",
        workdir / "model",
        "--output_dir",
        workdir / "out-cli",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--max_length",
        "64",
        "--bf16",
        "false",
        "--gradient_checkpointing",
        "false",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--json",
        "-q",
        *args,
    )


def test_a_single_preference_file_is_taken_as_jsonl_gz_or_parquet(workdir):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from trl import ScriptArguments

    from alignment.trl_common import load_preference_splits

    gz = workdir / "single.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in ROWS))
    parquet = workdir / "single.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    for path in (workdir / "prefs" / "train.jsonl", gz, parquet):
        train, held_out = load_preference_splits(ScriptArguments(dataset_name=str(path)), want_eval=True)
        assert len(train) + len(held_out) == (8 if path.suffix == ".jsonl" else 12) and len(held_out) >= 1
        assert set(train.column_names) == {"prompt", "chosen", "rejected"}


def test_dpo_trains_on_a_parquet_file_and_streams_with_max_steps(cli, workdir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "prefs.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    result = _dpo(cli, workdir, "--dataset_name", parquet)
    assert result.code == 0, result
    assert result.json()["train_pairs"] == 12
    streamed = _dpo(cli, workdir, "--dataset_name", workdir / "prefs", "--dataset_streaming", "true")
    assert streamed.code == 0, streamed
    assert streamed.json()["steps"] == 1 and streamed.json()["train_pairs"] is None  # a stream has no length


def test_a_mixture_recipe_parses_in_mintline_align_dpo_too(workdir, tmp_path):
    from alignment import dpo
    from mintline.argparsing import MintlineParser

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "model_name_or_path: m\ndatasets:\n  - path: prefs\n    split: train\n"
        "  - {path: json, data_files: [a.jsonl, b.jsonl], columns: [prompt, chosen, rejected],"
        " fraction: 0.5}\n"
        "streaming: true\ntest_split_size: 0.2\n"
    )
    group = MintlineParser(prog="mintline align").add_subparsers(parser_class=MintlineParser)
    for parser in (dpo.make_parser(), dpo.make_parser(group)):
        *_, mixture = parser.parse_args_and_config(["--config", str(recipe), "--output_dir", str(tmp_path / "o")])[:4]
        assert [d.path for d in mixture.datasets] == ["prefs", "json"]
        assert mixture.datasets[1].data_files == ["a.jsonl", "b.jsonl"] and mixture.datasets[1].fraction == 0.5
        assert mixture.streaming is True and mixture.test_split_size == 0.2


def test_the_reward_script_takes_the_same_mixture_recipe(cli, workdir, tmp_path, monkeypatch):
    recipe = tmp_path / "reward.yaml"
    recipe.write_text(
        RECIPE + "datasets:\n  - path: prefs\n    split: train\n  - path: extra.jsonl\n"
        "test_split_size: 0.25\neval_strategy: steps\neval_steps: 1\nmax_steps: 1\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(workdir)
    result = cli("align", "reward", "--config", recipe, "--output_dir", tmp_path / "rm", "--json", "-q")
    assert result.code == 0, result
    figures = result.json()  # (8 + 4) rows, a quarter held out; extra.jsonl, one file, read with the json builder
    assert figures["train_pairs"] == 9 and figures["eval_pairs"] == 3 and figures["saved"] == "model"


def test_bad_data_names_fail_with_one_line_and_download_nothing(cli, workdir, tmp_path):
    started = time.perf_counter()
    hub = _dpo(cli, workdir, "--dataset_name", "trl-lib/ultrafeedback_binarized")
    assert hub.code == 2 and hub.err.count("\n") == 1, hub
    assert "not a local file or folder, nor a cached dataset (nothing is downloaded)" in hub.err
    assert time.perf_counter() - started < 20  # no retries against an unreachable hub
    (tmp_path / "notes.txt").write_text("hello\n")
    other = _dpo(cli, workdir, "--dataset_name", tmp_path / "notes.txt")
    assert other.code == 2 and "not .jsonl, .jsonl.gz or .parquet" in other.err
    no_split = _dpo(cli, workdir, "--dataset_name", workdir / "prefs", "--dataset_train_split", "validation")
    assert no_split.code == 2 and "has no split 'validation' (has train, test)" in no_split.err
    unbounded = _dpo(
        cli, workdir, "--dataset_name", workdir / "prefs", "--dataset_streaming", "true", "--max_steps", "-1"
    )
    assert unbounded.code == 2 and "max_steps: required with a streaming dataset" in unbounded.err
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("datasets:\n  - path: prefs\n    splitt: train\n")
    bad_entry = _dpo(cli, workdir, "--config", recipe)
    assert bad_entry.code == 2 and bad_entry.err.count("\n") == 1 and "splitt" in bad_entry.err, bad_entry


@pytest.mark.slow
def test_a_recipe_with_accelerate_launch_keys_runs_under_accelerate_in_both_entry_points(cli, workdir, monkeypatch):
    """`trl dpo` hands `num_processes` & co. to `accelerate launch`; mintline's two entry points do the same."""
    (workdir / "launch.yaml").write_text(
        RECIPE + "dataset_name: prefs\nnum_processes: 1\nmixed_precision: 'no'\n", encoding="utf-8"
    )
    shutil.rmtree(workdir / "out-launch", ignore_errors=True)
    command = [sys.executable, "-m", "alignment.dpo", "--config", "launch.yaml", "--output_dir", "out-launch"]
    ours = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=240)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert json.loads(ours.stdout.strip().splitlines()[-1])["steps"] == 2
    assert (workdir / "out-launch" / "model.safetensors").is_file()
    monkeypatch.chdir(workdir)
    result = cli("align", "dpo", "--config", "launch.yaml", "--output_dir", "out-launch-cli", "-q")
    assert result.code == 0, result
    assert (workdir / "out-launch-cli" / "model.safetensors").is_file()
    (workdir / "typo.yaml").write_text(RECIPE + "dataset_name: prefs\nnum_processess: 1\n", encoding="utf-8")
    typo = subprocess.run(
        [sys.executable, "-m", "alignment.dpo", "--config", "typo.yaml", "--output_dir", "o"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    last = typo.stderr.strip().splitlines()[-1]  # (transformers may warn first about the recipe's keys)
    assert typo.returncode == 2 and last.startswith("alignment.dpo: error: unknown option --num_processess"), last
    assert cli("align", "dpo", "--config", workdir / "typo.yaml").code == 2
