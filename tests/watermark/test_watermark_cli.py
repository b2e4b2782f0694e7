"""`mintline watermark keygen|detect` and `mintline generate --watermark_key`: the user's view."""

from __future__ import annotations

import io
import json
import os
import stat
import sys


def one_line_error(run, *needles):
    assert run.code == 2, run
    assert "Traceback" not in run.err and run.err.strip().count("\n") == 0, run.err
    for needle in needles:
        assert needle in run.err, run.err


def test_keygen_writes_private_key_and_prints_its_id(cli, tmp_path, tokenizer_dir):
    run = cli("watermark", "keygen", "--tokenizer", tokenizer_dir, "--run_dir", tmp_path, "--delta", "2.5", "--json")
    assert run.code == 0, run
    data = run.json()
    path = tmp_path / "watermark" / "key.json"
    assert data["key_file"] == str(path) and data["key_id"].startswith("wmk1-")
    assert data["params"]["delta"] == 2.5 and "secret" not in run.out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = cli("watermark", "keygen", "--tokenizer", tokenizer_dir, "--run_dir", tmp_path)
    one_line_error(again, "already exists")
    assert data["scheme"] == "kgw"  # --delta without --scheme still means kgw, as before the default changed
    kgw_only = ("--out", tmp_path / "k2.json", "--scheme", "kgw")
    wrong = cli("watermark", "keygen", "--tokenizer", tokenizer_dir, *kgw_only, "--depth", "3")
    one_line_error(wrong, "depth", "kgw")
    bad = cli("watermark", "keygen", "--tokenizer", tokenizer_dir, "--out", tmp_path / "k3.json", "--gamma", "1.5")
    one_line_error(bad, "gamma")


def test_detect_json_is_one_object_per_input(cli, tmp_path, marked_samples, unmarked_samples, kgw_key, tokenizer_dir):
    marked, plain = tmp_path / "marked.txt", tmp_path / "plain.txt"
    marked.write_text(marked_samples[0], encoding="utf-8")
    plain.write_text(unmarked_samples[0], encoding="utf-8")
    run = cli("watermark", "detect", "--key", kgw_key, "--tokenizer", tokenizer_dir, "--json", marked, plain)
    assert run.code == 0, run
    lines = [json.loads(line) for line in run.out.strip().splitlines()]
    assert [line["watermarked"] for line in lines] == [True, False]
    for line in lines:
        assert {"z_score", "p_value", "num_tokens_scored", "green_count", "watermarked", "key_id"} <= set(line)
    table = cli("watermark", "detect", "--key", kgw_key, "--tokenizer", tokenizer_dir, marked, plain)
    assert table.code == 0 and "1 watermarked, 1 not" in table.out


def test_detect_reads_stdin_and_jsonl(
    cli, tmp_path, monkeypatch, marked_samples, sample_prompts, kgw_key, tokenizer_dir
):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(marked_samples[2].encode("utf-8"))))
    run = cli("watermark", "detect", "--key", kgw_key, "--tokenizer", tokenizer_dir, "--json", "-")
    assert run.code == 0 and run.json()["watermarked"] is True and run.json()["source"] == "<stdin>"
    records = tmp_path / "samples.jsonl"
    records.write_text(
        "\n".join(json.dumps({"prompt": p, "completion": c}) for p, c in zip(sample_prompts[:3], marked_samples[:3]))
        + "\n",
        encoding="utf-8",
    )
    run = cli("watermark", "detect", "--key", kgw_key, "--tokenizer", tokenizer_dir, "--json", records)
    lines = [json.loads(line) for line in run.out.strip().splitlines()]
    assert [line["source"] for line in lines] == [f"{records}:{i}" for i in (1, 2, 3)]
    assert all(line["watermarked"] for line in lines)


def test_bad_input_is_one_line_naming_the_file(cli, tmp_path, monkeypatch, kgw_key, tokenizer_dir):
    empty, latin1, blank = tmp_path / "empty.txt", tmp_path / "latin1.txt", tmp_path / "blank.txt"
    empty.write_bytes(b"")
    latin1.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    blank.write_text("  \n\n ", encoding="utf-8")
    detect = ("watermark", "detect", "--key", kgw_key, "--tokenizer", tokenizer_dir)
    one_line_error(cli(*detect, empty), str(empty), "empty input")
    one_line_error(cli(*detect, blank), str(blank), "empty input")
    one_line_error(cli(*detect, latin1), str(latin1), "not UTF-8")
    one_line_error(cli(*detect, tmp_path / "missing.txt"), "missing.txt", "no such file")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    one_line_error(cli(*detect, "-"), "<stdin>", "empty input")
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "fine text"}\n{"nope": 1}\n', encoding="utf-8")
    one_line_error(cli(*detect, bad_jsonl), "bad.jsonl line 2")


def test_key_problems_are_one_line_exit_2(cli, tmp_path, kgw_key, tokenizer_dir):
    text = tmp_path / "t.txt"
    text.write_text("some text to check", encoding="utf-8")
    loose = tmp_path / "loose.json"
    loose.write_bytes(kgw_key.read_bytes())
    os.chmod(loose, 0o644)
    one_line_error(
        cli("watermark", "detect", "--key", loose, "--tokenizer", tokenizer_dir, text), "loose.json", "chmod 600"
    )
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "mintline-watermark-key", ', encoding="utf-8")
    os.chmod(broken, 0o600)
    one_line_error(
        cli("watermark", "detect", "--key", broken, "--tokenizer", tokenizer_dir, text), "broken.json", "malformed"
    )
    other = tmp_path / "other-tok"
    other.mkdir()
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "Lowercase"}
    (other / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    one_line_error(cli("watermark", "detect", "--key", kgw_key, "--tokenizer", other, text), "another tokenizer")
    one_line_error(
        cli("watermark", "detect", "--key", tmp_path / "nokey.json", "--tokenizer", tokenizer_dir, text),
        "no such key file",
    )
    one_line_error(cli("watermark", "detect", "--tokenizer", tokenizer_dir, text), "key: required")


def test_generate_with_watermark_key_is_detected(cli, tmp_path, trained_model_dir, kgw_key, tokenizer_dir):
    run = cli(
        "generate",
        "--model",
        trained_model_dir,
        "--prompt",
        "The return value",
        "A list of",
        "--max_new_tokens",
        "120",
        "--watermark-key",
        kgw_key,
        "--json",
        "-q",
    )
    assert run.code == 0, run
    data = run.json()
    assert data["watermark_key_id"].startswith("wmk1-")
    records = tmp_path / "out.jsonl"
    records.write_text("\n".join(json.dumps(s) for s in data["samples"]) + "\n", encoding="utf-8")
    detected = cli(
        "watermark", "detect", "--key", kgw_key, "--tokenizer", tokenizer_dir, "--json", "--min_tokens", "16", records
    )
    lines = [json.loads(line) for line in detected.out.strip().splitlines()]
    scored = [line for line in lines if line["watermarked"] is not None]
    assert scored and all(line["watermarked"] for line in scored), lines
    loose = tmp_path / "loose.json"
    loose.write_bytes(kgw_key.read_bytes())
    os.chmod(loose, 0o640)
    refused = cli("generate", "--model", trained_model_dir, "--prompt", "x", "--watermark_key", loose)
    one_line_error(refused, "chmod 600")
