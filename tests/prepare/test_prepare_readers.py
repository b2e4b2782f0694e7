"""Each reader, and the bad inputs they must survive or refuse."""

import gzip
import json
import os

import pytest
from prepare_helpers import prose, write_jsonl

from pretrain.corpus.readers import CorpusReader, resolve_inputs
from pretrain.errors import CorpusError


def read(inputs, **kwargs):
    reader = CorpusReader(resolve_inputs([str(i) for i in inputs]), **kwargs)
    reader.check()
    return list(reader), reader.stats


def test_text_files_folders_and_globs(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.txt").write_text("alpha text")
    (tmp_path / "docs" / "sub" / "b.md").write_text("beta text")
    (tmp_path / "docs" / ".hidden").write_text("never read")
    docs, stats = read([tmp_path / "docs"])
    assert [d.text for d in docs] == ["alpha text", "beta text"]
    assert docs[0].id == str(tmp_path / "docs" / "a.txt") and docs[0].source == docs[0].id
    docs, _ = read([tmp_path / "docs" / "**" / "*.md"])
    assert [d.text for d in docs] == ["beta text"]
    assert stats.files == 2


def test_jsonl_with_text_field_ids_and_gzip(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"id": "x1", "content": "first"}, {"content": "second"}])
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"id": 7, "content": "third"}) + "\n")
    docs, _ = read([tmp_path / "*.jsonl*"], text_field="content")
    assert [(d.id, d.text) for d in docs] == [("x1", "first"), (f"{tmp_path / 'a.jsonl'}:2", "second"), ("7", "third")]


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["one", "two", None], "id": ["p1", "p2", "p3"]}), tmp_path / "t.parquet")
    docs, stats = read([tmp_path / "t.parquet"], text_field="body")
    assert [(d.id, d.text) for d in docs] == [("p1", "one"), ("p2", "two")]
    assert stats.records_without_text == 1
    with pytest.raises(CorpusError, match="no column 'text'.*body"):
        read([tmp_path / "t.parquet"])


def test_datasets_save_to_disk(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_dict({"text": ["one", "two"]}).save_to_disk(str(tmp_path / "ds"))
    DatasetDict(
        {"train": Dataset.from_dict({"text": ["a"]}), "test": Dataset.from_dict({"text": ["b"]})}
    ).save_to_disk(str(tmp_path / "dd"))
    docs, _ = read([tmp_path / "ds"])
    assert [d.text for d in docs] == ["one", "two"]
    docs, _ = read([tmp_path / "dd"])
    assert [(d.id.split(":", 1)[1], d.text) for d in docs] == [("test:row 1", "b"), ("train:row 1", "a")]


def test_builtin_corpus_when_no_inputs():
    reader = CorpusReader(resolve_inputs([]))
    first = next(iter(reader))
    assert first.id.startswith("pydoc-topic:") and first.text


def test_binary_unreadable_and_invalid_utf8_are_counted_not_fatal(tmp_path):
    (tmp_path / "good.txt").write_text(prose())
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    os.symlink(tmp_path / "gone.txt", tmp_path / "dangling.txt")  # listed, cannot be opened
    docs, stats = read([tmp_path])
    assert {d.id.rsplit("/", 1)[1] for d in docs} == {"good.txt", "latin1.txt"}
    assert next(d for d in docs if d.id.endswith("latin1.txt")).text == "caf\ufffd cr\ufffdme"
    assert (stats.skipped_binary_files, stats.skipped_unreadable_files, stats.invalid_utf8_documents) == (1, 1, 1)


def test_bad_json_lines_and_records_without_text_are_counted(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok one"}\nnot json\n[1, 2]\n{"text": 5}\n\n{"text": "ok \xff two"}\n')
    docs, stats = read([path])
    assert [d.text for d in docs] == ["ok one", "ok \ufffd two"]
    assert (stats.bad_json_lines, stats.records_without_text, stats.invalid_utf8_documents) == (2, 1, 1)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing.txt", "missing.txt: no such file or directory"),
        (lambda p: p / "*.nothing", r"\*.nothing: no file matches this pattern"),
        (
            lambda p: write_jsonl(p / "w.jsonl", [{"body": "x"}]),
            "no record has the text field 'text' \\(fields seen in the first 1000 lines: body\\)",
        ),
        (
            lambda p: (p / "bad.parquet").write_bytes(b"not parquet") and p / "bad.parquet",
            "not a readable Parquet file",
        ),
    ],
)
def test_inputs_that_cannot_work_raise_corpus_error(tmp_path, make, message):
    with pytest.raises(CorpusError, match=message):
        read([make(tmp_path)])


def test_reading_streams_in_flat_memory(tmp_path):
    import tracemalloc

    text = prose(seed=1)  # ~1.3 KB
    write_jsonl(tmp_path / "big.jsonl", [{"text": text} for _ in range(6000)])  # ~8 MB
    reader = CorpusReader(resolve_inputs([str(tmp_path / "big.jsonl")]))
    tracemalloc.start()
    try:
        count = sum(1 for _ in reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 6000
    assert peak < 1_000_000, f"peak {peak} bytes: the reader holds more than a few records"
