"""Bad input: one line naming what is wrong, exit status 2, before any work."""

from __future__ import annotations

import json

import pytest
from sparsity_helpers import tiny_llama

from pretrain.errors import ConfigError
from pretrain.sparsity.architectures import UnsupportedArchitectureError
from pretrain.sparsity.callbacks import build_callbacks
from pretrain.sparsity.config import PostTrainingArguments, SparsityArguments


@pytest.mark.parametrize(
    "field,value",
    [("prune_heads", 1.0), ("prune_neurons", -0.1), ("sparsity", 1.0), ("sparsity", 1.5), ("prune_events", 0)],
)
def test_out_of_range_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        SparsityArguments(**{field: value})


def test_a_bad_schedule_on_the_command_line_is_one_line_and_exit_2(capsys):
    from mintline.argparsing import MintlineParser
    from pretrain.config import PretrainArguments

    # the pretrain command will carry these beside the engine's own options: no clash, and every
    # help text survives argparse's %-formatting
    parser = MintlineParser((PretrainArguments, SparsityArguments), prog="mintline pretrain")
    assert "--prune_heads" in parser.format_help()
    assert "--structured" in MintlineParser((PostTrainingArguments,), prog="mintline prune").format_help()
    with pytest.raises(SystemExit) as stop:
        parser.parse_args_and_config(["--prune_heads", "1.0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "prune_heads" in err and "[0, 1)" in err


def test_pruning_below_one_head_per_layer_is_refused():
    one_head = tiny_llama(heads=1, kv_heads=1)
    with pytest.raises(ConfigError, match="^prune_heads: .*less than one head"):
        build_callbacks(SparsityArguments(prune_heads=0.5), one_head)
    # neurons are fine on that model
    assert build_callbacks(SparsityArguments(prune_neurons=0.5), one_head)


def test_an_unknown_architecture_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(UnsupportedArchitectureError, match="'gpt2' is not supported"):
        build_callbacks(SparsityArguments(sparsity=0.5), gpt2)


@pytest.fixture
def gpt2_dir(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64)).save_pretrained(tmp_path / "gpt2")
    return tmp_path / "gpt2"


def _one_line_exit_2(result, *fragments):
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mintline prune: error:"), result
    for fragment in fragments:
        assert fragment in lines[0], result


def test_prune_cli_bad_input(cli, tmp_path, gpt2_dir):
    data = tmp_path / "validation-00000-of-00001.jsonl"
    data.write_text(json.dumps({"id": "1", "text": "hello " * 50, "source": "t"}) + "\n")
    run = ["--run_dir", tmp_path / "run"]
    _one_line_exit_2(cli("prune", "--model", gpt2_dir, "--sparsity", "1.0", *run), "sparsity", "[0, 1)")
    _one_line_exit_2(
        cli("prune", "--model", gpt2_dir, "--sparsity", "0.5", "--calibration_data", data, *run),
        "'gpt2'",
        "not supported",
    )
    _one_line_exit_2(cli("prune", "--model", gpt2_dir, "--method", "obd", *run), "method")
    _one_line_exit_2(cli("prune", "--model", gpt2_dir, "--structured", "--sparsity", "0.3", *run), "2:4")
    _one_line_exit_2(cli("prune", "--model", tmp_path / "nowhere", *run), "no config.json")
    tiny = tmp_path / "tiny"
    tiny_llama().save_pretrained(tiny)
    _one_line_exit_2(
        cli("prune", "--model", tiny, "--calibration_data", tmp_path / "missing", *run), "calibration_data"
    )


def test_post_training_arguments_reject_a_partial_two_four():
    with pytest.raises(ValueError, match="^sparsity: .*2:4"):
        PostTrainingArguments(structured=True, sparsity=0.6)


def test_structured_pruning_under_torchrun_is_refused_before_training(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="^prune_heads/prune_neurons: .*DDP/FSDP"):
        build_callbacks(SparsityArguments(prune_neurons=0.5), tiny_llama())
    assert build_callbacks(SparsityArguments(sparsity=0.5), tiny_llama())  # masks keep shapes: allowed
