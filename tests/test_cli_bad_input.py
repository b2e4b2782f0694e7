"""First run and bad input (issue 24): each mistake a new user made gives one line on stderr and
exit status 2, never a traceback, and the README's first commands work on a fresh checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def one_line_error(run, *needles):
    assert run.code == 2, run
    assert "Traceback" not in run.err and run.err.strip().count("\n") == 0, run.err
    for needle in needles:
        assert needle in run.err, run.err


@pytest.fixture(scope="module")
def small_tokenizer(tmp_path_factory) -> Path:
    """A tokenizer.json is all `watermark keygen/detect` read; a 300-token BPE trains in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    tokenizer.decoder = decoders.ByteLevel()
    text = ["def add(a, b):\n    return a + b  # the sum of two numbers"] * 20
    tokenizer.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"]))
    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save(str(out / "tokenizer.json"))
    return out


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A regular file where a directory should be: writing under it fails for root too."""
    path = tmp_path / "not-a-directory"
    path.write_text("x")
    return path


@pytest.fixture
def weights_dir(tmp_path) -> Path:
    """A model directory whose weights file is garbage (as a broken download leaves it)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "model.safetensors").write_bytes(b"\xff" * 64)
    return model


# -- keys: parents are created; an existing key names the flag that replaces it -----------------
def test_release_keygen_creates_parent_directories(cli, tmp_path):
    run = cli("release", "keygen", "--out", tmp_path / "keys" / "publisher")
    assert run.code == 0, run
    assert (tmp_path / "keys" / "publisher.key").is_file() and (tmp_path / "keys" / "publisher.pub").is_file()
    one_line_error(cli("release", "keygen", "--out", tmp_path / "keys" / "publisher"), "already exists", "--overwrite")


def test_watermark_keygen_creates_parent_directories(cli, tmp_path, small_tokenizer):
    out = tmp_path / "keys" / "deep" / "wm.json"
    assert cli("watermark", "keygen", "--tokenizer", small_tokenizer, "--out", out).code == 0
    assert out.is_file()
    again = cli("watermark", "keygen", "--tokenizer", small_tokenizer, "--out", out)
    one_line_error(again, "already exists", "--overwrite")


# -- outputs that cannot be written --------------------------------------------------------------
def test_unwritable_outputs_are_one_line(cli, tmp_path, a_file, small_tokenizer, weights_dir):
    one_line_error(cli("release", "keygen", "--out", a_file / "keys" / "publisher"), str(a_file), "not a directory")
    keygen = cli("watermark", "keygen", "--tokenizer", small_tokenizer, "--out", a_file / "wm.json")
    one_line_error(keygen, str(a_file), "not a directory")
    inputs = tmp_path / "docs.jsonl"
    inputs.write_text(json.dumps({"text": "one small document about Python functions"}) + "\n")
    one_line_error(cli("prepare", "--inputs", inputs, "--run_dir", a_file / "run"), str(a_file))
    assert cli("release", "keygen", "--out", tmp_path / "pub").code == 0
    build = cli(
        "release",
        "build",
        weights_dir,
        "--out",
        a_file / "bundle",
        "--key",
        tmp_path / "pub.key",
        "--name",
        "m",
        "--version",
        "1",
        "--holder",
        "Jane Doe",
    )
    one_line_error(build, str(a_file), "is a file, not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_read_only_directory_is_one_line(cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_error(cli("release", "keygen", "--out", locked / "publisher"), str(locked))
    finally:
        locked.chmod(0o755)


def test_os_errors_about_a_path_become_one_line():
    from mintline.cli import one_line_message

    denied = PermissionError(13, "Permission denied", "/srv/out/model.safetensors")
    assert one_line_message(denied) == "/srv/out/model.safetensors: Permission denied"
    assert one_line_message(RuntimeError("a bug")) is None  # bugs keep their traceback


# -- corrupt weights -------------------------------------------------------------------------------
def test_corrupt_safetensors_in_prune_names_the_file(cli, tmp_path, weights_dir):
    run = cli("prune", "--model", weights_dir, "--run_dir", tmp_path / "run", "--calibration_data", tmp_path)
    one_line_error(run, str(weights_dir / "model.safetensors"), "not a readable safetensors file")


def test_corrupt_safetensors_in_generate_names_the_file(cli, weights_dir):
    run = cli("generate", "--model", weights_dir, "--prompt", "def")
    one_line_error(run, str(weights_dir / "model.safetensors"), "not a readable safetensors file")


def test_corrupt_safetensors_anywhere_else_is_one_line():
    from safetensors import SafetensorError

    from mintline.cli import one_line_message

    message = one_line_message(SafetensorError("Error while deserializing header: header too large"))
    assert message.startswith("a safetensors weights file is corrupt or truncated") and "header too large" in message


# -- configs that cannot work fail before any work -------------------------------------------------
def test_more_votes_per_pair_than_annotators(cli, tmp_path):
    run = cli(
        "align",
        "run",
        "--policy_model",
        tmp_path,
        "--annotators",
        "2",
        "--annotators_per_pair",
        "3",
        "--run_dir",
        tmp_path / "run",
    )
    one_line_error(run, "annotators_per_pair", "annotators=2")
    assert not (tmp_path / "run").exists()


def test_unknown_key_in_a_run_config_names_the_users_file_and_section(cli, tmp_path):
    config = tmp_path / "my-run.yaml"
    config.write_text("align:\n  bugdet: 3\n")
    run = cli("run", "--config", config, "--run_dir", tmp_path / "run")
    one_line_error(run, f"{config}, section 'align'", "bugdet", "budget")
    assert "mintline-section" not in run.err
    one_line_error(cli("run", "--run_dir", tmp_path / "run", "--align.bugdet", "3"), "--align.bugdet", "budget")


# -- watermark detect and keys of the wrong kind ---------------------------------------------------
def test_detect_key_does_not_swallow_the_files(cli, tmp_path, small_tokenizer):
    keys = [tmp_path / "a.json", tmp_path / "b.json"]
    for key in keys:
        assert cli("watermark", "keygen", "--tokenizer", small_tokenizer, "--out", key).code == 0
    text = tmp_path / "text.txt"
    text.write_text("def add(a, b):\n    return a + b\n" * 4)
    run = cli("watermark", "detect", "--tokenizer", small_tokenizer, "--key", keys[0], "--json", text)
    assert run.code == 0, run
    assert json.loads(run.out.splitlines()[0])["source"] == str(text)
    both = cli("watermark", "detect", "--tokenizer", small_tokenizer, "--key", keys[0], "--key", keys[1], text)
    assert both.code == 0 and "2 key(s)" in both.out, both


def test_signing_key_given_as_watermark_key_says_what_it_is(cli, tmp_path, small_tokenizer):
    assert cli("release", "keygen", "--out", tmp_path / "publisher").code == 0
    text = tmp_path / "text.txt"
    text.write_text("def add(a, b): return a + b")
    for suffix, kind in ((".key", "PEM private key"), (".pub", "PEM public key")):
        key = tmp_path / f"publisher{suffix}"
        run = cli("watermark", "detect", "--tokenizer", small_tokenizer, "--key", key, text)
        one_line_error(run, kind, "not a watermark key", "watermark keygen")


def test_release_verify_of_a_plain_file_says_it_is_a_file(cli, tmp_path):
    assert cli("release", "keygen", "--out", tmp_path / "publisher").code == 0
    not_a_bundle = tmp_path / "notes.txt"
    not_a_bundle.write_text("hello")
    one_line_error(cli("release", "verify", not_a_bundle, "--pubkey", tmp_path / "publisher.pub"), "is a file", "tar")


# -- start-up: help and early errors come before heavy imports -------------------------------------
def heavy_modules_after(*argv: str) -> tuple[int, list[str], str]:
    """Run the CLI in a fresh interpreter; (exit code, heavy modules it imported, stderr)."""
    script = (
        "import json, sys\n"
        "from mintline.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as stop:\n    code = stop.code or 0\n"
        "heavy = [m for m in ('torch', 'transformers.trainer', 'trl.trainer', 'peft') if m in sys.modules]\n"
        "sys.stdout.write('\\n' + json.dumps([code, heavy]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300)
    code, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    return code, heavy, proc.stderr


def test_align_help_does_not_import_torch_or_trl_trainers():
    code, heavy, _ = heavy_modules_after("align", "--help")
    assert code == 0 and heavy == []


def test_unknown_model_preset_fails_before_torch(tmp_path):
    code, heavy, err = heavy_modules_after("pretrain", "--model", "huge", "--run_dir", str(tmp_path))
    assert code == 2 and heavy == []
    assert "neither a preset" in err and err.strip().count("\n") == 0


def test_lazy_subcommand_is_built_when_chosen():
    from dataclasses import dataclass, field

    from mintline.argparsing import MintlineParser, add_lazy_parser
    from mintline.cli import find_leaf

    @dataclass
    class Heavy:
        steps: int = field(default=3, metadata={"help": "steps"})

    built = []

    def build(group):
        built.append(True)
        return group.add_parser("heavy", help="a heavy verb", dataclass_types=(Heavy,))

    parser = MintlineParser(prog="mintline thing")
    verbs = parser.add_subparsers(parser_class=MintlineParser)
    add_lazy_parser(verbs, "heavy", "a heavy verb", build)
    assert "a heavy verb" in parser.format_help() and not built
    leaf, rest = find_leaf(parser, ["heavy", "--steps", "5"])
    (config, _options) = leaf.parse_args_and_config(rest)
    assert built == [True] and config.steps == 5
    assert parser.format_help().count("a heavy verb") == 1


def test_help_states_each_default_once():
    from mintline.commands.watermark import make_parser

    keygen = make_parser()._subparsers._group_actions[0].choices["keygen"]
    text = " ".join(keygen.format_help().split())
    assert "(default 0.25)" in text and "(default: None)" not in text
    assert "synthid (tournament, the default)" in text  # the scheme's default, settled from the options given
