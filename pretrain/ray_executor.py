"""`mintline prepare --executor ray`: the same cleaning and dedup as the local executor, on Ray Data.

    filter      Ray Data map, one task per part (ray_parts.filter_part): read, the filter
                blocks, MinHash fingerprints -> filtered/part-K.parquet, committed atomically
    shared keys read_parquet -> one row per (key, document) -> groupby(key) with Count and Min:
                the shuffle by exact hash, LSH band key and id base; keys held twice or more
    involved    read_parquet -> the documents holding such a key -> the driver, which runs the
                connected components of these candidate pairs and the id renaming (ray_clusters)
    split       read_parquet -> survivors' (hash of id, position) ranks -> sort, limit: the
                validation threshold
    write       Ray Data map, one task per contiguous range of a source (ray_parts.write_part):
                kept documents in input order -> shards, committed atomically
    finish      the driver renames the shards into train-i-of-n order, writes removed.jsonl and
                filter_report.json, trains the tokenizer, and swaps the output in

The work directory (beside the output by default, named after the config and the inputs)
survives a failed job, so a re-run skips every part already committed; a finished job
removes it. Ray is imported only when this executor runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pretrain.errors import CorpusError, PretrainError

log = logging.getLogger("pretrain")

EXECUTORS = ("local", "ray")
INSTALL_HINT = "--executor ray needs Ray Data, which is not installed: pip install -e '.[ray]' (ray[data]==2.60.0)"
MIN_PARTS = 8  # parts a corpus is cut into at least, so every worker of a small cluster gets some


@dataclass
class ExecutorArguments:
    executor: str = field(
        default="local",
        metadata={
            "help": "where cleaning and dedup run: local processes, or Ray Data (same output)",
            "choices": list(EXECUTORS),
        },
    )
    ray_address: str = field(
        default=None,
        metadata={"help": "Ray cluster to join: auto or HOST:PORT (none: start a local Ray instance on 127.0.0.1)"},
    )
    ray_work_dir: str = field(
        default=None,
        metadata={
            "help": "where Ray tasks commit their parts: a path every node sees, or a URI such as s3://bucket/prefix "
            "(none: beside the output)"
        },
    )

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor: choose from {', '.join(EXECUTORS)}, got {self.executor!r}")


class RayUnavailableError(PretrainError):
    """--executor ray without Ray installed."""


class RayJobError(PretrainError):
    """The Ray job failed (a task failed past its retries, or the cluster went away)."""


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayUnavailableError(INSTALL_HINT) from exc


# -- the driver ---------------------------------------------------------------------------------------
def prepare_corpus_ray(
    config, out_dir: str | os.PathLike, address: str | None = None, work_dir: str | None = None
) -> dict[str, Any]:
    """Like pretrain.prepare.prepare_corpus, with cleaning and dedup as a Ray Data job."""
    from pretrain.corpus.readers import CorpusReader, resolve_inputs
    from pretrain.ray_parts import WorkDir

    require_ray()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    sources = resolve_inputs(config.corpus.inputs)
    CorpusReader(sources, config.corpus.text_field, config.corpus.id_field).check()
    parts = plan_parts(sources)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = WorkDir(work_dir or str(default_work_dir(config, sources, parts, out_dir)))
    leftovers = work.remove_temporaries()
    if leftovers:
        log.info("removed %d temporary files a killed task had left in %s", leftovers, work.uri)
    with ray_session(address, config.corpus.resolved_workers()):
        try:
            figures = _run(config, sources, parts, work, out_dir, started)
        except PretrainError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray's failures become one typed line
            raise _job_error(exc, work.uri) from exc
    work.fs.delete_dir(work.root)
    return figures


def plan_parts(sources) -> list[dict]:
    """Parts of the corpus: every source cut into slices of ~PART_BYTES (and MIN_PARTS in all at least)."""
    from pretrain.ray_parts import PART_BYTES

    sizes = [_source_bytes(source) for source in sources]
    at_least = math.ceil(MIN_PARTS / len(sources))
    parts = []
    for index, (source, size) in enumerate(zip(sources, sizes)):
        slices = max(at_least, math.ceil(size / PART_BYTES), 1)
        for piece in range(slices):
            parts.append(
                {
                    "part": len(parts),
                    "source_index": index,
                    "kind": source.kind,
                    "path": source.path,
                    "slice": piece,
                    "slices": slices,
                }
            )
    return parts


def _source_bytes(source) -> int:
    if source.kind == "builtin":
        return 2_000_000
    path = Path(source.path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def default_work_dir(config, sources, parts, out_dir: Path) -> Path:
    """Beside the output, named after what decides the result, so only the same job resumes from it."""
    from pretrain.ray_parts import content_digest

    inputs = []
    for source in sources:
        if source.kind == "builtin":
            inputs.append("builtin")
        else:
            stat = os.stat(source.path)
            inputs.append([source.path, stat.st_size, stat.st_mtime_ns])
    return out_dir.with_name(f".{out_dir.name}.ray-{content_digest(config.identity(), inputs, parts)}")


@contextmanager
def ray_session(address: str | None, num_cpus: int):
    """Join the cluster at `address`, or start a local Ray instance bound to 127.0.0.1; left as found."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.enable_operator_progress_bars = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        yield
        return
    options = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", _node_ip_address="127.0.0.1", num_cpus=num_cpus, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise RayJobError(f"could not start or join {where}: {_first_line(exc)}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def _run(config, sources, parts, work, out_dir: Path, started: float) -> dict[str, Any]:
    from pretrain.corpus.report import FilterReport
    from pretrain.prepare import _all_removed_message, _empty_corpus_message, validation_count
    from pretrain.ray_clusters import Clusters, involved_from_rows, unique_ids
    from pretrain.ray_parts import filtered_marker, filtered_name

    report = FilterReport(config, sources)
    resumed = sum(work.exists(filtered_marker(p["part"])) for p in parts)  # committed by an earlier, failed job
    if resumed:
        log.info("resuming: %d of %d parts were filtered by an earlier job (%s)", resumed, len(parts), work.uri)
    summaries = _filter_stage(config, parts, work)
    _add_filter_counts(report, summaries)
    report.seconds["filter"] = time.perf_counter() - started
    if report.docs_read == 0:
        raise CorpusError(_empty_corpus_message(sources, _Stats(report.read)))

    files = [work.path(filtered_name(p["part"])) for p in parts]
    shared = _shared_keys(files, work)
    involved = involved_from_rows(_involved_rows(files, work, shared))
    renames = unique_ids(involved)
    clusters = Clusters(involved, config.dedup.num_perm)
    removed = clusters.removed()
    ids = {item.position: renames.get(item.position, item.id) for item in involved}
    by_position = {item.position: item for item in involved}
    dedup_records = []
    for position, verdict in sorted(removed.items()):
        item = by_position[position]
        dedup_records.append(report.dedup_removal(verdict, ids[position], item.source, item.size, ids))
    survivors = report.passed - len(removed)
    if survivors == 0:
        raise CorpusError(_all_removed_message(report))
    count = validation_count(survivors, config.corpus.validation_fraction)
    threshold = _validation_threshold(files, work, renames, removed, count) if count else None
    report.seconds["dedup"] = time.perf_counter() - started - report.seconds["filter"]

    phase = time.perf_counter()
    written = _write_stage(config, parts, summaries, work, renames, removed, threshold)
    report.seconds["write"] = time.perf_counter() - phase
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        from pretrain.prepare import _current_umask, _replace_directory, _train_tokenizer

        os.chmod(staging, 0o777 & ~_current_umask())
        paths = _gather(config, work, written, staging, dedup_records, report, with_validation=count > 0)
        dedup_on = config.dedup.exact_dedup or config.dedup.near_dedup
        report.clusters = clusters.count() if dedup_on else 0
        if config.corpus.train_tokenizer:
            phase = time.perf_counter()
            _train_tokenizer(config, staging, paths["train"])
            report.seconds["tokenizer"] = time.perf_counter() - phase
        report.seconds["total"] = time.perf_counter() - started
        (staging / "filter_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        _replace_directory(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    figures = report.figures()
    figures["executor"] = "ray"
    figures["ray_parts"] = len(parts)
    figures["ray_parts_resumed"] = resumed
    figures["stage_seconds"] = {name: round(value, 1) for name, value in report.seconds.items()}
    return figures


class _Stats:
    """What _empty_corpus_message reads from a reader: its stats."""

    def __init__(self, stats):
        self.stats = stats


def _filter_stage(config, parts, work) -> list[dict]:
    import ray.data

    dataset = ray.data.from_items(parts, override_num_blocks=len(parts))
    rows = dataset.map(_filter_row, fn_kwargs={"config": config, "work_uri": work.uri}, num_cpus=1).take_all()
    return sorted((json.loads(row["summary"]) for row in rows), key=lambda s: s["part"])


def _filter_row(row: dict, config, work_uri: str) -> dict:
    from pretrain.ray_parts import filter_part

    spec = {key: (int(value) if key != "kind" and key != "path" else value) for key, value in row.items()}
    return {"part": spec["part"], "summary": json.dumps(filter_part(spec, config, work_uri))}


def _add_filter_counts(report, summaries: list[dict]) -> None:
    from pretrain.corpus.readers import ReadStats
    from pretrain.filters.base import FilterStats

    read = ReadStats()
    for summary in summaries:
        counts = summary["counts"]
        counts["filters"] = {name: FilterStats(**values) for name, values in counts["filters"].items()}
        report.add_counts(counts)
        report.docs_read += summary["docs"]
        report.bytes_read += summary["bytes_in"]
        report.passed += summary["passed"]
        if summary["read"]:
            _merge_read_stats(read, summary["read"])
    report.read = read


def _merge_read_stats(total, part: dict) -> None:
    from pretrain.corpus.readers import _MAX_EXAMPLES

    for name, value in part.items():
        if name == "examples":
            for problem, where in value.items():
                examples = total.examples.setdefault(problem, [])
                examples.extend(where[: _MAX_EXAMPLES - len(examples)])
        else:
            setattr(total, name, getattr(total, name) + value)


def _read_parts(files: list[str], work, columns: list[str]):
    """The committed filter parts as a dataset, one block per part, read through the work directory's
    pyarrow file system (rather than read_parquet, whose path handling imports fsspec's HTTP support)."""
    import ray.data

    listing = ray.data.from_items([{"name": name} for name in files], override_num_blocks=len(files))
    return listing.map_batches(
        _read_part, fn_kwargs={"work_uri": work.uri, "columns": columns}, batch_size=1, batch_format="pyarrow"
    )


def _read_part(batch, work_uri: str, columns: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pretrain.ray_parts import WorkDir

    work = WorkDir(work_uri)
    return pa.concat_tables(
        [pq.read_table(name, columns=columns, filesystem=work.fs) for name in batch["name"].to_pylist()]
    )


def _shared_keys(files: list[str], work) -> dict[bytes, int]:
    """key -> the first position holding it, for every key two or more documents hold."""
    from ray.data.aggregate import Count, Min

    from pretrain.ray_parts import explode_keys

    keys = _read_parts(files, work, ["position", "keys"]).map_batches(explode_keys, batch_format="pyarrow")
    grouped = keys.groupby("key").aggregate(Count(alias_name="holders"), Min("position", alias_name="first"))
    shared = grouped.map_batches(_held_twice, batch_format="pyarrow").take_all()
    return {row["key"]: int(row["first"]) for row in shared}


def _held_twice(batch):
    import pyarrow.compute as pc

    return batch.filter(pc.greater(batch["holders"], 1)).select(["key", "first"])


def _involved_rows(files: list[str], work, shared: dict[bytes, int]) -> list[dict]:
    if not shared:
        return []
    import ray
    import ray.data

    columns = ["position", "id", "source", "size", "passed", "signature", "keys"]
    dataset = _read_parts(files, work, columns)
    handle = [ray.put(shared)]  # in a list, so that Ray hands the tasks the reference and they fetch it once each
    return dataset.map_batches(_involved_batch, fn_kwargs={"shared": handle}, batch_format="pyarrow").take_all()


def _involved_batch(batch, shared):
    import pyarrow as pa
    import ray

    from pretrain.ray_parts import involved_documents

    schema = pa.schema(
        [
            ("position", pa.int64()),
            ("id", pa.string()),
            ("source", pa.string()),
            ("size", pa.int64()),
            ("passed", pa.bool_()),
            ("signature", pa.binary()),
            ("hits", pa.string()),
        ]
    )
    return pa.table(involved_documents(batch, ray.get(shared[0])), schema=schema)


def _validation_threshold(files, work, renames: dict[int, str], removed: dict, count: int) -> str:
    """The count-th smallest rank among the survivors: documents ranked at or below it are validation."""
    import ray
    import ray.data

    handle = [ray.put((renames, set(removed)))]
    dataset = _read_parts(files, work, ["position", "id", "passed"])
    ranks = dataset.map_batches(_rank_batch, fn_kwargs={"decided": handle}, batch_format="pyarrow")
    return ranks.sort("rank").limit(count).max("rank")


def _rank_batch(batch, decided):
    import pyarrow as pa
    import ray

    from pretrain.ray_parts import split_rank

    renames, removed = ray.get(decided[0])
    ranks = []
    for position, doc_id, passed in zip(*(batch[name].to_pylist() for name in ("position", "id", "passed"))):
        if passed and position not in removed:
            ranks.append(split_rank(renames.get(position, doc_id), position))
    return pa.table({"rank": pa.array(ranks, type=pa.string())})


def _write_stage(config, parts, summaries, work, renames, removed, threshold) -> list[dict]:
    """One write task per contiguous range of a source, as many ranges as the source has slices."""
    import ray.data

    from pretrain.ray_parts import position_of

    by_source: dict[int, list[dict]] = {}
    for part in parts:
        by_source.setdefault(part["source_index"], []).append(part)
    source_docs = {parts[s["part"]]["source_index"]: s["source_docs"] for s in summaries}
    specs = []
    for source_index, pieces in sorted(by_source.items()):
        total = source_docs[source_index]
        step = max(1, math.ceil(total / len(pieces)))
        for low in range(0, max(total, 1), step):
            start, stop = position_of(source_index, low), position_of(source_index, min(low + step, total))
            plan = {
                "renames": {str(p): i for p, i in renames.items() if start <= p < stop},
                "duplicates": [p for p in removed if start <= p < stop],
                "threshold": threshold,
                "format": config.corpus.output_format,
                "max_shard_bytes": config.corpus.max_shard_bytes,
            }
            specs.append(
                {
                    "part": len(specs),
                    "filtered_parts": [p["part"] for p in pieces],
                    "start": start,
                    "stop": stop,
                    "plan": json.dumps(plan),
                }
            )
    dataset = ray.data.from_items(specs, override_num_blocks=len(specs))
    rows = dataset.map(_write_row, fn_kwargs={"work_uri": work.uri}, num_cpus=1).take_all()
    return sorted((json.loads(row["summary"]) for row in rows), key=lambda s: s["part"])


def _write_row(row: dict, work_uri: str) -> dict:
    from pretrain.ray_parts import write_part

    spec = {
        "part": int(row["part"]),
        "filtered_parts": [int(p) for p in row["filtered_parts"]],
        "start": int(row["start"]),
        "stop": int(row["stop"]),
    }
    return {"part": spec["part"], "summary": json.dumps(write_part(spec, json.loads(row["plan"]), work_uri))}


def _gather(
    config, work, written: list[dict], staging: Path, dedup_records, report, with_validation: bool
) -> dict[str, list[Path]]:
    """Committed part files -> the output layout: shards numbered in input order, one removed.jsonl."""
    from pretrain.corpus.shards import shard_name

    data = staging / "data"
    data.mkdir()
    paths: dict[str, list[Path]] = {}
    for split in ("train", "validation"):
        files = [name for summary in written for name in summary[split]["files"]]
        if split == "validation" and not with_validation:
            continue
        paths[split] = []
        for index, name in enumerate(files):
            target = data / shard_name(split, index, len(files), config.corpus.output_format)
            _fetch(work, name, target)
            paths[split].append(target)
        report.split[split] = {
            "docs": sum(s[split]["docs"] for s in written),
            "bytes": sum(s[split]["bytes"] for s in written),
            "shards": [p.name for p in paths[split]],
        }
    with open(staging / "removed.jsonl", "wb") as removed:
        for summary in written:
            with work.fs.open_input_stream(work.path(summary["removed"])) as handle:
                shutil.copyfileobj(handle, removed)
        for record in dedup_records:
            removed.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    return paths


def _fetch(work, name: str, target: Path) -> None:
    from pyarrow import fs

    if isinstance(work.fs, fs.LocalFileSystem):
        # a link, not a move: the committed part stays whole until the job has finished, for a re-run to resume from
        try:
            os.link(work.path(name), target)
        except OSError:  # another file system
            shutil.copyfile(work.path(name), target)
    else:
        fs.copy_files(
            work.path(name), str(target), source_filesystem=work.fs, destination_filesystem=fs.LocalFileSystem()
        )


# -- failures --------------------------------------------------------------------------------------------
def _job_error(exc: BaseException, work_uri: str) -> PretrainError:
    """A typed error raised inside a task comes back as itself; any other failure as one line."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PretrainError):
            return current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else (current.__cause__ or current.__context__)
    return RayJobError(
        f"the Ray job failed ({type(exc).__name__}: {_first_line(exc)}); the parts already committed in {work_uri} "
        "are kept, so running the same command again resumes"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


__all__ = ["ExecutorArguments", "RayJobError", "RayUnavailableError", "prepare_corpus_ray", "require_ray"]
