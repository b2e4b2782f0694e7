"""The command-line contract shared by every sub-command."""

import subprocess
import sys

import pytest

from mintline.commands import COMMANDS


def test_top_level_help_lists_every_command(cli):
    run = cli("--help")
    assert run.code == 0
    for name in COMMANDS:
        assert name in run.out


def test_unknown_command_is_one_line_exit_2(cli):
    run = cli("pretrian")
    assert run.code == 2
    assert run.err.strip().count("\n") == 0
    assert "did you mean 'pretrain'" in run.err


def test_unknown_option_names_the_key(cli):
    run = cli("generate", "--model", "m", "--prompt", "x", "--temprature", "0.5")
    assert run.code == 2
    assert "temprature" in run.err and "temperature" in run.err
    assert "Traceback" not in run.err and run.err.strip().count("\n") == 0


def test_bad_value_names_the_key_and_allowed(cli):
    run = cli("generate", "--model", "m", "--prompt", "x", "--top_p", "1.5")
    assert run.code == 2
    assert "top_p" in run.err and "(0, 1]" in run.err


def test_yaml_config_unknown_key_and_bad_value(cli, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: m\nprompt: [x]\nmax_new_token: 3\n")
    run = cli("generate", "--config", config)
    assert run.code == 2 and "max_new_token" in run.err and "max_new_tokens" in run.err

    config.write_text("model: m\nprompt: [x]\nmax_new_tokens: 1.5\n")
    run = cli("generate", "--config", config)
    assert run.code == 2 and "max_new_tokens" in run.err and "1.5" in run.err


def test_yaml_values_become_defaults_and_flags_override(tmp_path):
    from mintline.commands.generate import make_parser

    config = tmp_path / "c.yaml"
    config.write_text("model: m\nprompt: [a, b]\nmax_new_tokens: 7\ndo_sample: false\n")
    args, generation, options = make_parser().parse_args_and_config(["--config", str(config), "--max_new_tokens", "9"])
    assert args.prompt == ["a", "b"]
    assert generation.max_new_tokens == 9
    assert generation.do_sample is False


def test_user_error_from_a_stage_is_one_line(cli, tmp_path):
    run = cli("generate", "--model", tmp_path / "missing", "--prompt", "x")
    assert run.code == 2
    assert "not a model directory" in run.err and "Traceback" not in run.err


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_defaults(name):
    proc = subprocess.run(
        [sys.executable, "-m", "mintline", name, "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: mintline" in proc.stdout
