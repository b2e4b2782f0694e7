"""Corpus readers: plain text files and folders (globs), JSONL, Parquet, `datasets` saved with
`save_to_disk`, and the built-in corpus. Every reader streams one Document at a time.

Bad input never crashes a run: an unreadable or binary file is skipped and counted, invalid
UTF-8 is decoded with U+FFFD and counted, a JSONL line that is not a JSON object is skipped
and counted. What cannot work at all (a missing path, a glob that matches nothing, a text
field no record has) raises CorpusError before any output is written.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import json
import logging
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.corpus.document import Document
from pretrain.errors import CorpusError

log = logging.getLogger("pretrain")

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
_BINARY_SNIFF = 8192
_CHECK_LINES = 1000  # JSONL lines sampled to check the text field before any work
_MAX_EXAMPLES = 5


@dataclass
class CorpusSource:
    kind: str  # "builtin" | "text" | "jsonl" | "parquet" | "hf_dataset"
    path: str = ""

    @property
    def label(self) -> str:
        return self.path or self.kind


@dataclass
class ReadStats:
    files: int = 0
    documents: int = 0
    skipped_binary_files: int = 0
    skipped_unreadable_files: int = 0
    invalid_utf8_documents: int = 0  # decoded with replacement characters
    bad_json_lines: int = 0
    records_without_text: int = 0
    empty_documents: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few paths per problem

    def note(self, problem: str, where: str) -> None:
        examples = self.examples.setdefault(problem, [])
        if len(examples) < _MAX_EXAMPLES:
            examples.append(where)
        if len(examples) <= 1:
            log.warning("%s: %s (further cases are counted in filter_report.json)", where, problem.replace("_", " "))

    def warnings(self) -> dict[str, int]:
        names = (
            "skipped_binary_files",
            "skipped_unreadable_files",
            "invalid_utf8_documents",
            "bad_json_lines",
            "records_without_text",
        )
        return {name: getattr(self, name) for name in names if getattr(self, name)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "documents": self.documents,
            "skipped_binary_files": self.skipped_binary_files,
            "skipped_unreadable_files": self.skipped_unreadable_files,
            "invalid_utf8_documents": self.invalid_utf8_documents,
            "bad_json_lines": self.bad_json_lines,
            "records_without_text": self.records_without_text,
            "empty_documents": self.empty_documents,
            "examples": self.examples,
        }


# -- finding the inputs ---------------------------------------------------------------------
def resolve_inputs(inputs: list[str]) -> list[CorpusSource]:
    """Expand paths, folders and globs into sources, in a stable order; no inputs = built-in corpus."""
    if not inputs:
        return [CorpusSource("builtin")]
    sources: list[CorpusSource] = []
    seen: set[str] = set()
    for spec in inputs:
        if glob.has_magic(spec):
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                raise CorpusError(f"{spec}: no file matches this pattern")
        else:
            if not os.path.exists(spec):
                raise CorpusError(f"{spec}: no such file or directory")
            matches = [spec]
        for match in matches:
            for source in _sources_at(Path(match)):
                if source.path not in seen:
                    seen.add(source.path)
                    sources.append(source)
    return sources


def is_hf_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


def _sources_at(path: Path) -> Iterator[CorpusSource]:
    if path.is_dir():
        if is_hf_dataset(path):
            yield CorpusSource("hf_dataset", str(path))
            return
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield _file_source(Path(root) / name)
    else:
        yield _file_source(path)


def _file_source(path: Path) -> CorpusSource:
    name = path.name.lower()
    if name.endswith(JSONL_SUFFIXES):
        return CorpusSource("jsonl", str(path))
    if name.endswith(PARQUET_SUFFIXES):
        return CorpusSource("parquet", str(path))
    return CorpusSource("text", str(path))


# -- reading --------------------------------------------------------------------------------
class CorpusReader:
    """Streams Documents from sources, counting what it had to skip or repair in `stats`."""

    def __init__(self, sources: list[CorpusSource], text_field: str = "text", id_field: str = "id"):
        self.sources = sources
        self.text_field = text_field
        self.id_field = id_field
        self.stats = ReadStats()

    def check(self) -> None:
        """Fail early on a text field the structured inputs do not have."""
        for source in self.sources:
            if source.kind == "jsonl":
                self._check_jsonl(source.path)
            elif source.kind == "parquet":
                self._check_columns(source.path, _parquet_columns(source.path))
            elif source.kind == "hf_dataset":
                for split, dataset in _hf_splits(source.path):
                    self._check_columns(f"{source.path} ({split})" if split else source.path, dataset.column_names)

    def __iter__(self) -> Iterator[Document]:
        readers = {
            "builtin": self._read_builtin,
            "text": self._read_text,
            "jsonl": self._read_jsonl,
            "parquet": self._read_parquet,
            "hf_dataset": self._read_hf_dataset,
        }
        for source in self.sources:
            for document in readers[source.kind](source.path):
                if not document.text.strip():
                    self.stats.empty_documents += 1
                    continue
                self.stats.documents += 1
                yield document

    def _decode(self, data: bytes, where: str) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.stats.invalid_utf8_documents += 1
            self.stats.note("invalid_utf8_documents", where)
            return data.decode("utf-8", errors="replace")

    def _read_builtin(self, _path: str) -> Iterator[Document]:
        from pretrain.corpus.builtin import iter_builtin_corpus

        self.stats.files += 1
        yield from iter_builtin_corpus()

    def _read_text(self, path: str) -> Iterator[Document]:
        try:
            with _open_binary(path) as handle:
                data = handle.read()
        except (OSError, EOFError) as exc:
            self.stats.skipped_unreadable_files += 1
            self.stats.note("skipped_unreadable_files", f"{path} ({exc.__class__.__name__})")
            return
        self.stats.files += 1
        if b"\x00" in data[:_BINARY_SNIFF]:
            self.stats.skipped_binary_files += 1
            self.stats.note("skipped_binary_files", path)
            return
        yield Document(id=path, text=self._decode(data, path), source=path)

    def _read_jsonl(self, path: str) -> Iterator[Document]:
        try:
            handle = _open_binary(path)
        except OSError as exc:
            self.stats.skipped_unreadable_files += 1
            self.stats.note("skipped_unreadable_files", f"{path} ({exc.__class__.__name__})")
            return
        self.stats.files += 1
        with handle:
            try:
                for number, raw in enumerate(handle, 1):
                    if not raw.strip():
                        continue
                    where = f"{path}:{number}"
                    record = self._parse_json(raw, where)
                    if record is None:
                        continue
                    document = self._record_document(record, where, path)
                    if document is not None:
                        yield document
            except (OSError, EOFError) as exc:  # truncated gzip, I/O error mid-file
                self.stats.skipped_unreadable_files += 1
                self.stats.note("skipped_unreadable_files", f"{path} ({exc.__class__.__name__}, rest of file skipped)")

    def _parse_json(self, raw: bytes, where: str) -> dict | None:
        try:
            record = json.loads(self._decode(raw, where))
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            self.stats.bad_json_lines += 1
            self.stats.note("bad_json_lines", where)
            return None
        return record

    def _record_document(self, record: dict, where: str, source: str) -> Document | None:
        text = record.get(self.text_field)
        if isinstance(text, bytes):
            text = self._decode(text, where)
        if not isinstance(text, str):
            self.stats.records_without_text += 1
            self.stats.note("records_without_text", where)
            return None
        identity = record.get(self.id_field)
        identity = str(identity) if isinstance(identity, (str, int)) and str(identity) else where
        return Document(id=identity, text=text, source=source)

    def _read_parquet(self, path: str) -> Iterator[Document]:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise CorpusError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc
        self.stats.files += 1
        columns = [self.text_field] + ([self.id_field] if self.id_field in parquet.schema_arrow.names else [])
        row = 0
        for batch in parquet.iter_batches(batch_size=1024, columns=columns):
            for record in batch.to_pylist():
                row += 1
                document = self._record_document(record, f"{path}:row {row}", path)
                if document is not None:
                    yield document

    def _read_hf_dataset(self, path: str) -> Iterator[Document]:
        self.stats.files += 1
        for split, dataset in _hf_splits(path):
            columns = [c for c in (self.text_field, self.id_field) if c in dataset.column_names]
            row = 0
            for batch in dataset.select_columns(columns).iter(batch_size=1024):
                for index in range(len(batch[self.text_field])):
                    row += 1
                    record = {name: batch[name][index] for name in columns}
                    where = f"{path}:{split + ':' if split else ''}row {row}"
                    document = self._record_document(record, where, path)
                    if document is not None:
                        yield document

    def _check_jsonl(self, path: str) -> None:
        try:
            with _open_binary(path) as handle:
                fields_seen: set[str] = set()
                for number, raw in enumerate(handle, 1):
                    if number > _CHECK_LINES:  # a sample: the first records
                        break
                    try:
                        record = json.loads(raw.decode("utf-8", errors="replace"))
                    except json.JSONDecodeError:
                        continue
                    if isinstance(record, dict):
                        if self.text_field in record:
                            return
                        fields_seen.update(record)
        except (OSError, EOFError):
            return  # reading will skip and count it
        if fields_seen:
            raise CorpusError(
                f"{path}: no record has the text field {self.text_field!r} (fields seen in the first {_CHECK_LINES} lines: "
                f"{', '.join(sorted(fields_seen)[:10])}); set --text_field"
            )

    def _check_columns(self, where: str, columns: list[str]) -> None:
        if self.text_field not in columns:
            raise CorpusError(
                f"{where}: no column {self.text_field!r} (columns: {', '.join(columns[:10])}); set --text_field"
            )


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def _parquet_columns(path: str) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as exc:  # noqa: BLE001
        raise CorpusError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc


def _hf_splits(path: str):
    """[(split name or "", Dataset)] of a save_to_disk directory, splits in sorted order."""
    from datasets import Dataset, DatasetDict, load_from_disk

    try:
        loaded = load_from_disk(path)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types for a broken directory
        raise CorpusError(f"{path}: not a readable `datasets` directory ({_first_line(exc)})") from exc
    if isinstance(loaded, DatasetDict):
        return [(name, loaded[name]) for name in sorted(loaded)]
    if isinstance(loaded, Dataset):
        return [("", loaded)]
    raise CorpusError(f"{path}: holds a {type(loaded).__name__}, expected a Dataset or DatasetDict")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- identity (for the run journal) ---------------------------------------------------------
def input_identity(sources: list[CorpusSource]) -> dict[str, Any]:
    """What decides whether a re-run may be skipped: the content of every input.

    The built-in corpus is identified by the Python version and a digest of the text it is
    made from (pydoc topics and the standard library sources it reads docstrings from).
    """
    identity: dict[str, Any] = {"sources": []}
    for source in sources:
        if source.kind == "builtin":
            identity["sources"].append(
                {"kind": "builtin", "python": platform.python_version(), "sha256": _builtin_digest()}
            )
        else:
            identity["sources"].append(
                {"kind": source.kind, "path": source.path, "sha256": _path_digest(Path(source.path))}
            )
    return identity


def _builtin_digest() -> str:
    from pydoc_data.topics import topics

    from pretrain.corpus.builtin import stdlib_root, stdlib_source_files

    digest = hashlib.sha256()
    for name in sorted(topics):
        digest.update(f"{name}\0{topics[name]}\0".encode())
    root = stdlib_root()
    for path in stdlib_source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _path_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" if file != path else b"")
        try:
            with open(file, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()
