"""prepare_corpus end to end: shards, report, removed.jsonl, determinism, tokenizer, failures."""

import json
from pathlib import Path

import pytest
from prepare_helpers import prose, pseudo_words, small_corpus_records, write_jsonl

import pretrain.prepare as prepare_module
from pretrain.corpus.shards import iter_shard_records
from pretrain.errors import CorpusError
from pretrain.prepare import PrepareConfig, explain_document, prepare_corpus


def config_for(corpus, **overrides):
    overrides.setdefault("num_workers", 1)
    overrides.setdefault("vocab_size", 600)
    return PrepareConfig.from_profile("datatrove", inputs=[str(corpus)], **overrides)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One run over the small corpus, shared by the tests that only read its output."""
    root = tmp_path_factory.mktemp("prepared")
    corpus = _small_corpus(root)
    out = root / "run" / "prepare"
    figures = prepare_corpus(config_for(corpus, validation_fraction=0.1), out)
    return corpus, out, figures


def _small_corpus(root: Path) -> Path:
    return write_jsonl(root / "corpus" / "docs.jsonl", small_corpus_records())


def removed_records(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (out / "removed.jsonl").read_text().splitlines())}


def test_layout_and_records(prepared):
    _, out, figures = prepared
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000-of-00001.jsonl",
        "validation-00000-of-00001.jsonl",
    ]
    train = list(iter_shard_records([out / "data" / "train-00000-of-00001.jsonl"]))
    validation = list(iter_shard_records([out / "data" / "validation-00000-of-00001.jsonl"]))
    assert all(set(r) == {"id", "text", "source"} for r in train + validation)
    assert len(train) == figures["train_docs"] and len(validation) == figures["validation_docs"] == 3
    assert figures["docs_read"] == 35 and figures["docs_kept"] == 31
    assert not list(out.parent.glob(".prepare.*")), "temporary directories must be gone"


def test_each_kind_of_junk_is_removed_by_its_rule(prepared):
    _, out, figures = prepared
    removed = removed_records(out)
    assert removed["too-short"]["filter"] == "gopher_quality" and removed["too-short"]["reason"] == "gopher_short_doc"
    assert removed["too-short"]["value"] == 33 and removed["too-short"]["threshold"] == 50
    assert removed["symbols"]["filter"] == "gopher_repetition"
    assert removed["exact-copy"]["reason"] == "exact_duplicate" and removed["exact-copy"]["duplicate_of"] == "clean-3"
    assert removed["near-copy"]["reason"] == "near_duplicate" and removed["near-copy"]["kept_instead"] == "clean-5"
    assert figures["exact_duplicates"] == 1 and figures["near_duplicates"] == 1 and figures["dedup_clusters"] == 2


def test_pii_is_scrubbed_in_the_output(prepared):
    _, out, _ = prepared
    texts = {r["id"]: r["text"] for r in iter_shard_records(sorted((out / "data").iterdir()))}
    assert "jane.doe@mail.com" not in texts["contact"] and "email@example.com" in texts["contact"]
    assert "8.8.8.8" not in texts["contact"]


def test_filter_report_adds_up(prepared):
    _, out, figures = prepared
    report = json.loads((out / "filter_report.json").read_text())
    blocks = list(report["filters"].values())
    assert blocks[0]["docs_in"] == report["docs_read"] == 35
    for before, after in zip(blocks, blocks[1:]):
        assert after["docs_in"] == before["kept"]["docs"] and after["bytes_in"] == before["kept"]["bytes"]
    removed = sum(v["docs"] for v in report["removed_by_rule"].values())
    assert removed + report["kept"]["docs"] == report["docs_read"]
    assert report["filters"]["pii"]["replacements"] == {"emails": 1, "ips": 1}
    assert report["kept"]["bytes"] == sum(s["bytes"] for s in report["split"].values())
    assert report["config"]["gopher_quality"]["min_doc_words"] == 50
    assert figures["docs_per_s"] > 0


def test_explain_reads_the_recorded_measurement(prepared):
    _, out, _ = prepared
    found = explain_document(out, "too-short")
    assert found["status"] == "removed"
    assert found["explanation"] == (
        "too-short was removed by gopher_quality (gopher_short_doc): non-symbol words = 33, below the minimum 50"
    )
    assert "clean-5" in explain_document(out, "near-copy")["explanation"]
    kept = explain_document(out, "clean-0")
    assert kept["status"] == "kept" and kept["shard"].endswith(".jsonl")
    with pytest.raises(CorpusError, match="no document with this id"):
        explain_document(out, "nope")


def test_tokenizer_round_trip(prepared):
    from transformers import AutoTokenizer

    _, out, _ = prepared
    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    text = "def f(x):\n    return x ** 2  # héllo ✓ 日本\n\tdone"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert {tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token} == {"<|bos|>", "<|eos|>", "<|pad|>"}
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|user|>\nhi<|eos|>\n<|assistant|>\n"


def test_same_input_gives_byte_identical_output_for_any_worker_count(tmp_path, small_corpus):
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}" / "prepare"
        prepare_corpus(config_for(small_corpus, num_workers=workers, train_tokenizer=False), out)
        outputs.append(out)
    for name in ("data/train-00000-of-00001.jsonl", "data/validation-00000-of-00001.jsonl", "removed.jsonl"):
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name
    reports = [json.loads((o / "filter_report.json").read_text()) for o in outputs]
    for report in reports:
        report.pop("seconds"), report.pop("docs_per_s")
    assert reports[0] == reports[1]


def test_parquet_output_and_several_shards(tmp_path, small_corpus):
    import pyarrow.parquet as pq

    out = tmp_path / "prepare"
    figures = prepare_corpus(
        config_for(
            small_corpus, output_format="parquet", max_shard_bytes=8000, train_tokenizer=False, near_dedup=False
        ),
        out,
    )
    assert figures["exact_duplicates"] == 1 and figures["near_duplicates"] == 0
    shards = sorted((out / "data").glob("train-*.parquet"))
    assert len(shards) == figures["train_shards"] > 1
    assert [s.name for s in shards][-1] == f"train-{len(shards) - 1:05d}-of-{len(shards):05d}.parquet"
    rows = [row for shard in shards for row in pq.read_table(shard).to_pylist()]
    assert len(rows) == figures["train_docs"] and set(rows[0]) == {"id", "text", "source"}


def test_empty_corpus_is_an_error_and_writes_nothing(tmp_path):
    corpus = write_jsonl(tmp_path / "empty.jsonl", [{"text": ""}, {"text": "   "}])
    out = tmp_path / "run" / "prepare"
    with pytest.raises(CorpusError, match="no documents to prepare in .*empty.jsonl"):
        prepare_corpus(config_for(corpus), out)
    assert not out.exists() and list((tmp_path / "run").iterdir()) == []


def test_corpus_the_filters_empty_names_the_rule(tmp_path):
    corpus = write_jsonl(
        tmp_path / "short.jsonl", [{"text": " ".join(pseudo_words(30, seed=i)) + " of the."} for i in range(5)]
    )
    with pytest.raises(
        CorpusError, match=r"removed all 5 documents; most were removed by gopher_quality/gopher_short_doc \(5"
    ):
        prepare_corpus(config_for(corpus), tmp_path / "prepare")


def test_validation_split_needs_two_documents(tmp_path):
    corpus = write_jsonl(tmp_path / "one.jsonl", [{"text": prose()}])
    with pytest.raises(CorpusError, match="only 1 document survived"):
        prepare_corpus(config_for(corpus), tmp_path / "prepare")
    figures = prepare_corpus(config_for(corpus, validation_fraction=0, train_tokenizer=False), tmp_path / "prepare")
    assert figures["validation_docs"] == 0 and not list((tmp_path / "prepare" / "data").glob("validation-*"))


def test_a_failed_run_leaves_the_previous_output_untouched(tmp_path, small_corpus, monkeypatch):
    out = tmp_path / "run" / "prepare"
    prepare_corpus(config_for(small_corpus, train_tokenizer=False), out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(prepare_module, "_train_tokenizer", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_corpus(config_for(small_corpus, min_doc_words=10), out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["prepare"]


def test_repeated_ids_are_made_unique(tmp_path):
    corpus = write_jsonl(tmp_path / "ids.jsonl", [{"id": "same", "text": prose(seed=s)} for s in range(3)])
    out = tmp_path / "prepare"
    prepare_corpus(config_for(corpus, validation_fraction=0, train_tokenizer=False), out)
    ids = [r["id"] for r in iter_shard_records([out / "data" / "train-00000-of-00001.jsonl"])]
    assert ids == ["same", "same#2", "same#3"]
