"""`mintline pretrain` from the command line: bad input fails early, a finished stage is skipped."""

from __future__ import annotations

import json

import pytest

FAST = [
    "--model",
    "nano",
    "--block_size",
    "64",
    "--per_device_batch_size",
    "4",
    "--max_steps",
    "4",
    "--warmup_steps",
    "1",
    "--eval_blocks",
    "8",
    "--save_steps",
    "4",
    "--precision",
    "fp32",
    "-q",
]


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--model", "gigantic"], "neither a preset"),
        (["--block_size", "4096"], "larger than the model's context"),
        (["--precision", "fp8"], "invalid choice"),
        (["--max_steps", "0"], "max_steps: must be >= 1"),
        (["--per_device_batch_size", "100000"], "too little data"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, run_dir, extra, expected):
    run = cli("pretrain", "--run_dir", run_dir, *FAST, *extra)
    assert run.code == 2, run
    assert expected in run.err and run.err.strip().count("\n") == 0 and "Traceback" not in run.err
    assert not (run_dir / "pretrain" / "model").exists()


def test_missing_prepare_output_names_the_fix(cli, tmp_path):
    run = cli("pretrain", "--run_dir", tmp_path / "empty", *FAST)
    assert run.code == 2 and "mintline prepare" in run.err


def test_tokenizer_that_does_not_match_the_model(cli, run_dir, tmp_path):
    config = {
        "model_type": "llama",
        "vocab_size": 1000,
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 128,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    run = cli("pretrain", "--run_dir", run_dir, *FAST, "--model", tmp_path / "config.json")
    assert run.code == 2 and "vocab_size 1000" in run.err


def test_finished_stage_is_a_no_op_and_json_reports_figures(cli, run_dir):
    first = cli("pretrain", "--run_dir", run_dir, *FAST, "--json")
    assert first.code == 0, first
    figures = first.json()
    assert figures["skipped"] is False and figures["steps"] == 4
    journal = json.loads((run_dir / "run.json").read_text())["stages"]["pretrain"]
    assert journal["status"] == "finished" and journal["figures"]["eval_loss"] == figures["eval_loss"]
    assert set(journal["inputs"]) == {"data", "tokenizer"}

    again = cli("pretrain", "--run_dir", run_dir, *FAST)
    assert again.code == 0 and "nothing to do" in again.out
