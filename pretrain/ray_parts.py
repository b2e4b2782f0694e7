"""The work of one Ray task of `prepare --executor ray`, in plain Python (no Ray import here).

The corpus is cut into parts, datatrove-style: part k reads one input source and handles the
blocks of `BLOCK_DOCS` documents whose number modulo the source's slice count is its slice.
Every document gets a position, (source index << 40) | (its number in the source), whose
order is the order the local executor reads in, so "the first document read" means the same
thing on both executors.

Two kinds of task, each committing its files atomically (written under a temporary name, then
renamed; a JSON marker written last says the part is done), so a killed task leaves no
half-written file under a final name and a re-run skips the parts already committed:

* `filter_part`: read, run the filter blocks and the MinHash fingerprint with the very
  functions the local executor's workers run (`pretrain.prepare._process_batch`), and write
  `filtered/part-K.parquet` (every document: id, outcome, text, signature, dedup keys).
* `write_part`: once the driver has decided dedup, ids and the split, write a contiguous range
  of one source's kept documents, in input order, as `written/part-K/{train,validation}` shards
  plus the filter removals of that range.

Files go through pyarrow file systems, so the work directory may be a local path (shared by
every node on a real cluster, e.g. NFS) or an object-store URI such as s3://bucket/prefix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import struct
import uuid
from collections.abc import Iterator
from typing import Any

BLOCK_DOCS = 256  # documents per block: the unit parts interleave by
PART_BYTES = 32_000_000  # input bytes per part (a source of 100 MB becomes 4 slices)
POSITION_BITS = 40  # up to 2**40 documents per source
EXACT_TAG = 0
ID_TAG = 0xFFFF  # the key of a document's id with any "#N" suffixes stripped

FILTERED_SCHEMA_FIELDS = (
    ("position", "int64"),
    ("id", "string"),
    ("source", "string"),
    ("passed", "bool"),
    ("size_in", "int64"),
    ("size", "int64"),
    ("text", "string"),
    ("removal", "string"),
    ("signature", "binary"),
    ("keys", "list<binary>"),
)
_SUFFIX = re.compile(r"(#\d+)+$")


def position_of(source_index: int, doc_number: int) -> int:
    return (source_index << POSITION_BITS) | doc_number


def id_base(doc_id: str) -> str:
    """Ids that the local executor's UniqueIds could make collide share this base ("a", "a#2", "a#2#3")."""
    return _SUFFIX.sub("", doc_id)


def split_rank(doc_id: str, position: int) -> str:
    """Sorts like the local executor's (blake2b of the id, position) validation ranking."""
    from pretrain.prepare import _split_key

    return _split_key(doc_id).hex() + f"{position:020d}"


def dedup_keys(fingerprint) -> list[bytes]:
    """One key per way two documents can be joined: the exact hash, then one per LSH band."""
    keys = []
    if fingerprint.exact is not None:
        keys.append(struct.pack(">H", EXACT_TAG) + fingerprint.exact)
    for band, value in enumerate(fingerprint.bands or ()):
        keys.append(struct.pack(">H", band + 1) + value.to_bytes(8, "little"))
    return keys


def id_key(doc_id: str) -> bytes:
    return struct.pack(">H", ID_TAG) + id_base(doc_id).encode("utf-8", errors="surrogatepass")


def key_tag(key: bytes) -> int:
    return struct.unpack(">H", key[:2])[0]


# -- the work directory, through pyarrow file systems ------------------------------------------------
class WorkDir:
    """A directory on a pyarrow file system; every file is committed by write-then-rename."""

    def __init__(self, uri: str):
        from pyarrow import fs

        self.uri = uri
        self.fs, self.root = fs.FileSystem.from_uri(uri) if "://" in uri else (fs.LocalFileSystem(), uri)
        self.fs.create_dir(self.root, recursive=True)

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def exists(self, *parts: str) -> bool:
        from pyarrow import fs

        return self.fs.get_file_info(self.path(*parts)).type != fs.FileType.NotFound

    def read_json(self, *parts: str) -> Any:
        with self.fs.open_input_stream(self.path(*parts)) as handle:
            return json.loads(handle.read().decode("utf-8"))

    def commit(self, relative: str, write) -> None:
        """`write(path, filesystem)` writes a temporary file, which is then renamed to `relative`."""
        final = self.path(relative)
        directory = final.rsplit("/", 1)[0]
        self.fs.create_dir(directory, recursive=True)
        temporary = f"{directory}/.tmp-{uuid.uuid4().hex}-{final.rsplit('/', 1)[1]}"
        try:
            write(temporary, self.fs)
            self.fs.move(temporary, final)
        except BaseException:
            try:
                self.fs.delete_file(temporary)
            except OSError:
                pass
            raise

    def commit_bytes(self, relative: str, data: bytes) -> None:
        def write(path, filesystem):
            with filesystem.open_output_stream(path) as handle:
                handle.write(data)

        self.commit(relative, write)

    def commit_json(self, relative: str, value: Any) -> None:
        self.commit_bytes(relative, (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8"))

    def commit_table(self, relative: str, table) -> None:
        import pyarrow.parquet as pq

        self.commit(
            relative, lambda path, filesystem: pq.write_table(table, path, filesystem=filesystem, compression="zstd")
        )

    def read_table(self, relative: str, columns: list[str] | None = None, filters=None):
        import pyarrow.parquet as pq

        return pq.read_table(self.path(relative), columns=columns, filters=filters, filesystem=self.fs)

    def remove_temporaries(self) -> int:
        """Files a killed task left under temporary names (never read; a re-run removes them)."""
        from pyarrow import fs

        removed = 0
        for info in self.fs.get_file_info(fs.FileSelector(self.root, recursive=True, allow_not_found=True)):
            if info.type == fs.FileType.File and info.base_name.startswith(".tmp-"):
                self.fs.delete_file(info.path)
                removed += 1
        return removed


def filtered_name(part: int) -> str:
    return f"filtered/part-{part:05d}.parquet"


def filtered_marker(part: int) -> str:
    return f"filtered/part-{part:05d}.json"


def written_marker(part: int) -> str:
    return f"written/part-{part:05d}.json"


# -- stage 1: filter and fingerprint one part ------------------------------------------------------
_WORKER_CONFIG: list[str] = []  # the config the worker's blocks were built for (rebuilt when it changes)


def _prepared_worker(config) -> None:
    from pretrain import prepare

    identity = json.dumps(config.identity(), sort_keys=True, default=str)
    if _WORKER_CONFIG != [identity]:
        prepare._init_worker(config)
        _WORKER_CONFIG[:] = [identity]


def filter_part(spec: dict, config, work_uri: str) -> dict:
    """Run the blocks over one part; returns (and commits) its counts. Skips a committed part."""
    from pretrain import prepare
    from pretrain.corpus.readers import CorpusReader, CorpusSource

    work = WorkDir(work_uri)
    if work.exists(filtered_marker(spec["part"])):
        return work.read_json(filtered_marker(spec["part"]))
    _prepared_worker(config)
    reader = CorpusReader([CorpusSource(spec["kind"], spec["path"])], config.corpus.text_field, config.corpus.id_field)
    columns: dict[str, list] = {name: [] for name, _ in FILTERED_SCHEMA_FIELDS}
    totals = {"filters": {}, "lines": {}, "pii": {}}
    source_docs = 0
    for batch, positions in _own_batches(reader, spec):
        outcomes, counts = prepare._process_batch(batch)
        _merge_counts(totals, counts)
        for position, (doc_id, source, size_in, passed, detail) in zip(positions, outcomes):
            columns["position"].append(position)
            columns["id"].append(doc_id)
            columns["source"].append(source)
            columns["passed"].append(passed)
            columns["size_in"].append(size_in)
            keys = [id_key(doc_id)]
            if passed:
                text, size, fingerprint = detail
                columns["text"].append(text)
                columns["size"].append(size)
                columns["removal"].append(None)
                columns["signature"].append(fingerprint.signature if fingerprint else None)
                keys.extend(dedup_keys(fingerprint) if fingerprint else ())
            else:
                columns["text"].append(None)
                columns["size"].append(detail["bytes"])
                columns["removal"].append(json.dumps(detail, ensure_ascii=False))
                columns["signature"].append(None)
            columns["keys"].append(keys)
    source_docs = reader.stats.documents
    work.commit_table(filtered_name(spec["part"]), _filtered_table(columns))
    summary = {
        "part": spec["part"],
        "docs": len(columns["position"]),
        "bytes_in": sum(columns["size_in"]),
        "passed": sum(columns["passed"]),
        "source_docs": source_docs,
        "counts": {
            group: {k: (dataclasses.asdict(v) if group == "filters" else v) for k, v in values.items()}
            for group, values in totals.items()
        },
        # every slice reads the whole source: slice 0 alone reports what reading skipped or repaired
        "read": dataclasses.asdict(reader.stats) if spec["slice"] == 0 else None,
    }
    work.commit_json(filtered_marker(spec["part"]), summary)
    return summary


def _own_batches(reader, spec: dict) -> Iterator[tuple[list[tuple[str, str, str]], list[int]]]:
    batch, positions = [], []
    for number, document in enumerate(reader):
        if (number // BLOCK_DOCS) % spec["slices"] != spec["slice"]:
            continue
        batch.append((document.id, document.text, document.source))
        positions.append(position_of(spec["source_index"], number))
        if len(batch) >= BLOCK_DOCS:
            yield batch, positions
            batch, positions = [], []
    if batch:
        yield batch, positions


def _merge_counts(totals: dict, counts: dict) -> None:
    from pretrain.filters.base import FilterStats

    for name, stats in counts["filters"].items():
        totals["filters"].setdefault(name, FilterStats()).merge(stats)
    for group in ("lines", "pii"):
        for name, values in counts[group].items():
            target = totals[group].setdefault(name, {})
            for key, value in values.items():
                target[key] = target.get(key, 0) + value


def _filtered_table(columns: dict[str, list]):
    import pyarrow as pa

    types = {
        "int64": pa.int64(),
        "string": pa.string(),
        "bool": pa.bool_(),
        "binary": pa.binary(),
        "list<binary>": pa.list_(pa.binary()),
    }
    schema = pa.schema([(name, types[kind]) for name, kind in FILTERED_SCHEMA_FIELDS])
    return pa.table(columns, schema=schema)


# -- stage 2 helpers: the keys that can join documents ------------------------------------------------
def explode_keys(batch) -> dict[str, list]:
    """(position, keys) rows -> one (key, position) row per key."""
    keys, positions = [], []
    for position, row_keys in zip(batch["position"].to_pylist(), batch["keys"].to_pylist()):
        for key in row_keys:
            keys.append(key)
            positions.append(position)
    return {"key": keys, "position": positions}


def involved_documents(batch, shared_keys: dict[bytes, int]) -> dict[str, list]:
    """The documents holding a key some other document holds too, with what the driver needs
    to cluster them (which keys, whose first), to name them and to measure their similarity."""
    rows: dict[str, list] = {
        "position": [],
        "id": [],
        "source": [],
        "size": [],
        "passed": [],
        "signature": [],
        "hits": [],
    }
    columns = {
        name: batch[name].to_pylist() for name in ("position", "id", "source", "size", "passed", "signature", "keys")
    }
    for index, keys in enumerate(columns["keys"]):
        hits = [[key_tag(key), shared_keys[key]] for key in keys if key in shared_keys]
        if not hits:
            continue
        for name in ("position", "id", "source", "size", "passed", "signature"):
            rows[name].append(columns[name][index])
        rows["hits"].append(json.dumps(hits))
    return rows


# -- stage 4: write one contiguous range of kept documents -----------------------------------------------
def write_part(spec: dict, plan: dict, work_uri: str) -> dict:
    """Write the kept documents of positions [start, stop) of one source as shards, in input order."""
    import pyarrow.compute as pc

    work = WorkDir(work_uri)
    marker = written_marker(spec["part"])
    if work.exists(marker):
        return work.read_json(marker)
    tables = []
    for part in spec["filtered_parts"]:
        table = work.read_table(
            filtered_name(part),
            columns=["position", "id", "source", "passed", "size", "text", "removal"],
            filters=[("position", ">=", spec["start"]), ("position", "<", spec["stop"])],
        )
        tables.append(table)
    import pyarrow as pa

    table = pa.concat_tables(tables)
    table = table.take(pc.sort_indices(table, sort_keys=[("position", "ascending")]))
    renames = {int(k): v for k, v in plan["renames"].items()}
    duplicates = set(plan["duplicates"])
    threshold = plan["threshold"]
    shards = {
        "train": _Shards(work, spec["part"], "train", plan["format"], plan["max_shard_bytes"]),
        "validation": _Shards(work, spec["part"], "validation", plan["format"], 1 << 62),
    }
    removed_lines = []
    for row in table.to_pylist():
        position = row["position"]
        doc_id = renames.get(position, row["id"])
        if not row["passed"]:
            detail = json.loads(row["removal"])
            removed_lines.append(
                json.dumps({"id": doc_id, "source": row["source"], **detail}, ensure_ascii=False) + "\n"
            )
            continue
        if position in duplicates:
            continue
        split = "validation" if threshold is not None and split_rank(doc_id, position) <= threshold else "train"
        shards[split].add({"id": doc_id, "text": row["text"], "source": row["source"]}, row["size"])
    summary = {"part": spec["part"], "removed": f"written/part-{spec['part']:05d}/removed.jsonl"}
    for split, writer in shards.items():
        summary[split] = writer.close()
    work.commit_bytes(summary["removed"], "".join(removed_lines).encode("utf-8"))
    work.commit_json(marker, summary)
    return summary


class _Shards:
    """A split's shards of one part: the same records and formats as ShardWriter, committed one by one."""

    def __init__(self, work: WorkDir, part: int, split: str, output_format: str, max_shard_bytes: int):
        self.work, self.part, self.split, self.format = work, part, split, output_format
        self.max_shard_bytes = max_shard_bytes
        self.records: list[dict] = []
        self.size = 0
        self.files: list[str] = []
        self.docs = 0
        self.bytes = 0

    def add(self, record: dict, size: int) -> None:
        if self.records and self.size + size > self.max_shard_bytes:
            self._flush()
        self.records.append(record)
        self.size += size
        self.docs += 1
        self.bytes += size

    def _flush(self) -> None:
        name = f"written/part-{self.part:05d}/{self.split}-{len(self.files):05d}.{self.format}"
        if self.format == "jsonl":
            data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records).encode("utf-8")
            self.work.commit_bytes(name, data)
        else:
            self.work.commit(name, lambda path, filesystem: _write_parquet(self.records, path, filesystem))
        self.files.append(name)
        self.records, self.size = [], 0

    def close(self) -> dict:
        if self.records:
            self._flush()
        return {"files": self.files, "docs": self.docs, "bytes": self.bytes}


def _write_parquet(records: list[dict], path: str, filesystem) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pretrain.corpus.shards import _PARQUET_ROWS_PER_GROUP

    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])
    pq.write_table(
        pa.Table.from_pylist(records, schema=schema),
        path,
        filesystem=filesystem,
        compression="zstd",
        row_group_size=_PARQUET_ROWS_PER_GROUP,
    )


def content_digest(*values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
