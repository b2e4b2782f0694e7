"""`mintline prepare`: the run journal, --explain, profiles, and one-line errors."""

import json

import pytest
from prepare_helpers import prose, write_jsonl

FAST = ["--num_workers", "1", "--vocab_size", "600", "-q"]


def prepare(cli, run_dir, *args):
    return cli("prepare", "--run_dir", run_dir, *FAST, *args)


def test_prepare_records_the_stage_and_reruns_as_a_no_op(cli, tmp_path, small_corpus):
    run_dir = tmp_path / "run"
    first = prepare(cli, run_dir, "--inputs", small_corpus, "--json")
    assert first.code == 0, first
    figures = first.json()
    assert figures["skipped"] is False and figures["docs_read"] == 35 and figures["profile"] == "datatrove"
    journal = json.loads((run_dir / "run.json").read_text())
    stage = journal["stages"]["prepare"]
    assert stage["status"] == "finished" and stage["figures"]["docs_kept"] == figures["docs_kept"]
    shard = run_dir / "prepare" / "data" / "train-00000-of-00001.jsonl"
    stamp = shard.stat().st_mtime_ns

    again = prepare(cli, run_dir, "--inputs", small_corpus)
    assert again.code == 0 and "nothing to do" in again.out
    assert shard.stat().st_mtime_ns == stamp
    # a worker count does not change the output, so it does not make the stage stale
    assert prepare(cli, run_dir, "--inputs", small_corpus, "--num_workers", "2", "--json").json()["skipped"] is True

    changed = prepare(cli, run_dir, "--inputs", small_corpus, "--min_doc_words", "40", "--json")
    assert changed.json()["skipped"] is False
    with open(small_corpus, "a") as handle:
        handle.write(json.dumps({"id": "late", "text": prose(seed=500)}) + "\n")
    assert prepare(cli, run_dir, "--inputs", small_corpus, "--min_doc_words", "40", "--json").json()["docs_read"] == 36
    assert (
        prepare(cli, run_dir, "--inputs", small_corpus, "--min_doc_words", "40", "--force", "--json").json()["skipped"]
        is False
    )


def test_explain_prints_rule_value_and_threshold(cli, tmp_path, small_corpus):
    run_dir = tmp_path / "run"
    assert prepare(cli, run_dir, "--inputs", small_corpus, "--train_tokenizer", "false").code == 0
    removed = cli("prepare", "--run_dir", run_dir, "--explain", "too-short")
    assert removed.code == 0
    assert removed.out.strip() == (
        "too-short was removed by gopher_quality (gopher_short_doc): non-symbol words = 33, below the minimum 50"
    )
    as_json = cli("prepare", "--run_dir", run_dir, "--explain", "exact-copy", "--json").json()
    assert as_json["reason"] == "exact_duplicate" and as_json["duplicate_of"] == "clean-3"
    kept = cli("prepare", "--run_dir", run_dir, "--explain", "clean-1")
    assert kept.code == 0 and "was kept" in kept.out
    unknown = cli("prepare", "--run_dir", run_dir, "--explain", "no-such-doc")
    assert unknown.code == 2 and unknown.err.count("\n") == 1 and "no-such-doc" in unknown.err
    nothing = cli("prepare", "--run_dir", tmp_path / "other", "--explain", "x")
    assert nothing.code == 2 and "run `mintline prepare` first" in nothing.err


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda p: [p / "missing"], "no such file or directory"),
        (lambda p: [write_jsonl(p / "empty.jsonl", [{"text": " "}])], "no documents to prepare"),
        (
            lambda p: [write_jsonl(p / "short.jsonl", [{"text": "too short to keep."}] * 3)],
            "the filters removed all 3 documents",
        ),
        (lambda p: [write_jsonl(p / "field.jsonl", [{"body": "x"}])], "no record has the text field 'text'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, make_inputs, message):
    run_dir = tmp_path / "run"
    result = prepare(cli, run_dir, "--inputs", *make_inputs(tmp_path))
    assert result.code == 2, result
    assert message in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not (run_dir / "prepare").exists()
    assert not list(run_dir.glob(".prepare.*"))


def test_counted_warnings_for_skipped_files(cli, tmp_path):
    (tmp_path / "in").mkdir()
    for seed in range(3):
        (tmp_path / "in" / f"doc{seed}.txt").write_text(prose(seed=seed))
    (tmp_path / "in" / "blob.bin").write_bytes(b"\x00\x01binary")
    (tmp_path / "in" / "latin1.txt").write_bytes((prose(seed=9) + "\nA caf\xe9 and the cr\xe8me.").encode("latin-1"))
    result = prepare(cli, tmp_path / "run", "--inputs", tmp_path / "in", "--json")
    assert result.code == 0, result
    assert result.json()["read_warnings"] == {"skipped_binary_files": 1, "invalid_utf8_documents": 1}


@pytest.mark.parametrize(
    "args, key",
    [
        (["--validation_fraction", "1.5"], "validation_fraction"),
        (["--filters", "gopher", "c4"], "filters"),
        (["--profile", "web"], "profile"),
        (["--min_doc_word", "3"], "min_doc_words"),
        (["--max_non_alpha_words_ratio", "2"], "max_non_alpha_words_ratio"),
    ],
)
def test_bad_options_fail_before_any_work(cli, tmp_path, args, key):
    result = cli("prepare", "--run_dir", tmp_path / "run", *args)
    assert result.code == 2 and key in result.err and result.err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def parse(*argv):
    from mintline.commands.prepare import make_parser
    from pretrain.corpus.config import PrepareConfig

    *parts, _ = make_parser().parse_args_and_config([str(a) for a in argv])
    return PrepareConfig.from_parts(*parts)


def test_profile_precedence_flags_over_config_over_profile(tmp_path):
    assert parse().gopher_quality.max_non_alpha_words_ratio == 0.6  # built-in corpus: python-docs
    assert parse("--inputs", "x.jsonl").gopher_quality.max_non_alpha_words_ratio == 0.8  # your data: datatrove
    assert parse("--inputs", "x.jsonl", "--profile", "python-docs").c4.keep_line_indentation is True
    assert parse("--profile", "datatrove").c4.filter_curly_bracket is True
    config = tmp_path / "prepare.yaml"
    config.write_text("profile: python-docs\ninputs: [x.jsonl]\nmax_non_alpha_words_ratio: 0.7\n")
    assert parse("--config", config).gopher_quality.max_non_alpha_words_ratio == 0.7
    assert parse("--config", config).gopher_repetition.dup_5_gram_frac == 0.25
    assert (
        parse("--config", config, "--max_non_alpha_words_ratio", "0.5").gopher_quality.max_non_alpha_words_ratio == 0.5
    )


def test_builtin_corpus_default_run_keeps_enough_text(cli, tmp_path):
    """`mintline prepare` with no inputs: the built-in corpus under the python-docs profile."""
    run_dir = tmp_path / "run"
    result = cli("prepare", "--run_dir", run_dir, "-q", "--json")
    assert result.code == 0, result
    figures = result.json()
    assert figures["profile"] == "python-docs" and figures["docs_read"] > 500
    assert figures["bytes_kept"] > 1_000_000, "the built-in run must leave enough text to pretrain on"
    assert (run_dir / "prepare" / "tokenizer" / "tokenizer.json").is_file()
    again = cli("prepare", "--run_dir", run_dir, "-q", "--json")
    assert again.json()["skipped"] is True
