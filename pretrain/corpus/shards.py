"""Sharded output: `{split}-{i:05d}-of-{n:05d}.jsonl` (or `.parquet`), one {"id","text","source"}
record per line/row, the layout `datasets.load_dataset("json"|"parquet", data_files=...)` reads.

The number of shards is known only at the end, so shards are written under provisional
names and renamed when the split is closed (all inside the stage's temporary directory).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

FORMATS = ("jsonl", "parquet")
_PARQUET_ROWS_PER_GROUP = 2000


class ShardWriter:
    def __init__(self, directory: Path, split: str, output_format: str = "jsonl", max_shard_bytes: int = 100_000_000):
        if output_format not in FORMATS:
            raise ValueError(f"output_format: choose from {', '.join(FORMATS)}, got {output_format!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.format = output_format
        self.max_shard_bytes = max_shard_bytes
        self.docs = 0
        self.bytes = 0
        self._partials: list[Path] = []
        self._handle = None
        self._shard_bytes = 0
        self._rows: list[dict] = []

    def write(self, record: dict, size: int) -> None:
        if self._handle is None or (self._shard_bytes and self._shard_bytes + size > self.max_shard_bytes):
            self._start_shard()
        self.docs += 1
        self.bytes += size
        self._shard_bytes += size
        if self.format == "jsonl":
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            self._rows.append(record)
            if len(self._rows) >= _PARQUET_ROWS_PER_GROUP:
                self._flush_rows()

    def _start_shard(self) -> None:
        self._close_shard()
        path = self.directory / f".{self.split}-{len(self._partials):05d}.partial"
        self._partials.append(path)
        self._shard_bytes = 0
        if self.format == "jsonl":
            self._handle = open(path, "w", encoding="utf-8", newline="\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("source", pa.string())])
            self._handle = pq.ParquetWriter(path, schema, compression="zstd")

    def _flush_rows(self) -> None:
        if self._rows:
            import pyarrow as pa

            self._handle.write_table(pa.Table.from_pylist(self._rows, schema=self._handle.schema))
            self._rows = []

    def _close_shard(self) -> None:
        if self._handle is not None:
            if self.format == "parquet":
                self._flush_rows()
            self._handle.close()
            self._handle = None

    def close(self) -> list[Path]:
        """Finish the split; returns the final shard paths (an empty split still gets one empty shard)."""
        if self._handle is None and not self._partials:
            self._start_shard()
        self._close_shard()
        total = len(self._partials)
        final = []
        for index, partial in enumerate(self._partials):
            path = self.directory / shard_name(self.split, index, total, self.format)
            os.replace(partial, path)
            final.append(path)
        return final


def shard_name(split: str, index: int, total: int, output_format: str) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.{output_format}"


def shard_paths(data_dir: Path, split: str) -> list[Path]:
    return sorted(p for p in Path(data_dir).glob(f"{split}-*-of-*.*") if p.suffix in (".jsonl", ".parquet"))


def iter_shard_records(paths: list[Path]) -> Iterator[dict]:
    for path in paths:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                yield from batch.to_pylist()
        else:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    yield json.loads(line)


def iter_shard_texts(paths: list[Path]) -> Iterator[str]:
    for record in iter_shard_records(paths):
        yield record["text"]
