"""Data preparation: raw text -> clean, deduplicated shards -> tokenizer.

    read (streaming) -> [workers: normalize, Gopher repetition, Gopher quality, C4, PII,
    MinHash fingerprint] -> exact + near dedup (parent, in input order) -> train/validation
    shards -> byte-level BPE tokenizer trained on the train shards

`prepare_corpus(config, out_dir)` is the library entry point; `mintline prepare` wraps it in
the run journal. Output (all written to a temporary directory beside `out_dir`, which then
replaces it, so a failed run leaves nothing half-written):

    out_dir/data/train-00000-of-0000N.jsonl, validation-00000-of-00001.jsonl (or .parquet)
    out_dir/filter_report.json   per-block kept/dropped documents and bytes, dedup, split
    out_dir/removed.jsonl        every removed document: rule, measured value, threshold
    out_dir/tokenizer/           save_pretrained fast tokenizer

Output is byte-identical for the same inputs and config whatever the number of workers:
batches come back in input order and every decision that spans documents is made in the
parent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pretrain.corpus.config import PrepareArguments, PrepareConfig
from pretrain.corpus.readers import CorpusReader, resolve_inputs
from pretrain.corpus.report import FilterReport, explain_document, most_removed_rule
from pretrain.corpus.shards import ShardWriter, iter_shard_texts
from pretrain.dedup import DuplicateIndex
from pretrain.errors import CorpusError

log = logging.getLogger("pretrain")

__all__ = ["PrepareArguments", "PrepareConfig", "explain_document", "prepare_corpus"]

_BATCH_DOCS = 256
_BATCH_CHARS = 1 << 20


# -- worker side -------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(config: PrepareConfig) -> None:
    from pretrain.dedup import Fingerprinter

    _WORKER["filters"] = config.build_filters()
    dedup = config.dedup
    _WORKER["fingerprint"] = Fingerprinter(dedup) if (dedup.exact_dedup or dedup.near_dedup) else None


def _process_batch(batch: list[tuple[str, str, str]]) -> tuple[list[tuple], dict[str, Any]]:
    """Run the blocks over a batch; returns per-document outcomes and the blocks' counts."""
    from pretrain.corpus.document import Document
    from pretrain.filters.base import REMOVAL_KEY, forget_caches, text_bytes

    filters = _WORKER["filters"]
    fingerprint = _WORKER["fingerprint"]
    outcomes = []
    for doc_id, text, source in batch:
        doc = Document(id=doc_id, text=text, source=source)
        size_in = text_bytes(doc)
        kept = True
        for block in filters:
            if not block(doc):
                kept = False
                break
        if kept:
            fingerprinted = fingerprint(doc.text) if fingerprint else None
            outcomes.append((doc_id, source, size_in, True, (doc.text, text_bytes(doc), fingerprinted)))
        else:
            outcomes.append((doc_id, source, size_in, False, dict(doc.metadata[REMOVAL_KEY], bytes=text_bytes(doc))))
        forget_caches(doc)
    counts = {
        "filters": {block.name: block.take_stats() for block in filters},
        "lines": {block.name: block.take_line_stats() for block in filters if hasattr(block, "take_line_stats")},
        "pii": {block.name: block.take_replacements() for block in filters if hasattr(block, "take_replacements")},
    }
    return outcomes, counts


# -- parent side -------------------------------------------------------------------------
class UniqueIds:
    """Document ids must be unique (`--explain` looks them up): a repeat gets "#2", "#3"..."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, doc_id: str) -> str:
        unique, number = doc_id, 1
        while unique in self._seen:
            number += 1
            unique = f"{doc_id}#{number}"
        self._seen.add(unique)
        return unique


def prepare_corpus(config: PrepareConfig, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Clean, deduplicate, shard and tokenize the corpus; returns the figures of the run."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    sources = resolve_inputs(config.corpus.inputs)
    reader = CorpusReader(sources, config.corpus.text_field, config.corpus.id_field)
    reader.check()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    os.chmod(work, 0o777 & ~_current_umask())  # mkdtemp makes it private; the output is not
    index = DuplicateIndex(config.dedup, work / "signatures.bin")
    try:
        report = FilterReport(config, sources)
        spill_path = work / "passed.jsonl"  # documents every block kept, until dedup has seen them all
        with open(work / "removed.jsonl", "w", encoding="utf-8") as removed:
            with open(spill_path, "w", encoding="utf-8") as spill:
                _filter_and_fingerprint(config, reader, report, index, removed, spill)
            report.read = reader.stats
            report.seconds["filter"] = time.perf_counter() - started
            if report.docs_read == 0:
                raise CorpusError(_empty_corpus_message(sources, reader))
            index.finish()
            kept = _write_shards(config, work, spill_path, index, report, removed)
        index.close()
        spill_path.unlink()
        (work / "signatures.bin").unlink(missing_ok=True)  # absent when near dedup is off
        if config.corpus.train_tokenizer:
            phase = time.perf_counter()
            _train_tokenizer(config, work, kept["train"])
            report.seconds["tokenizer"] = time.perf_counter() - phase
        report.seconds["total"] = time.perf_counter() - started
        (work / "filter_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
        _replace_directory(work, out_dir)
    except BaseException:
        index.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report.figures()


def _batches(reader: CorpusReader, ids: UniqueIds):
    """Batches of (id, text, source). With a pool this runs in its feeder thread: touch nothing shared."""
    batch: list[tuple[str, str, str]] = []
    chars = 0
    for document in reader:
        batch.append((ids(document.id), document.text, document.source))
        chars += len(document.text)
        if len(batch) >= _BATCH_DOCS or chars >= _BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _filter_and_fingerprint(config, reader, report, index, removed, spill) -> None:
    from tqdm.auto import tqdm

    workers = config.corpus.resolved_workers()
    progress = tqdm(desc="prepare: filtering", unit="doc")
    pool = None
    try:
        if workers > 1:
            # spawn, not fork: the parent may hold threads (torch, tokenizers) that fork would copy mid-lock
            pool = multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(config,))
            results = pool.imap(_process_batch, _batches(reader, UniqueIds()), chunksize=1)
        else:
            _init_worker(config)
            results = map(_process_batch, _batches(reader, UniqueIds()))
        for outcomes, counts in results:
            report.add_counts(counts)
            for doc_id, source, size_in, passed, detail in outcomes:
                report.add_read(size_in)
                if passed:
                    text, size, fingerprint = detail
                    position = index.add(fingerprint) if fingerprint is not None else report.passed
                    report.passed += 1
                    spill.write(json.dumps([position, doc_id, text, size, source], ensure_ascii=False) + "\n")
                else:
                    removed.write(json.dumps({"id": doc_id, "source": source, **detail}, ensure_ascii=False) + "\n")
            progress.update(len(outcomes))
    finally:
        progress.close()
        if pool is not None:
            pool.terminate()
            pool.join()


def _write_shards(
    config, work: Path, spill_path: Path, index: DuplicateIndex, report: FilterReport, removed
) -> dict[str, list[Path]]:
    """Dedup verdicts, then the train/validation split, in input order."""
    dedup_on = config.dedup.exact_dedup or config.dedup.near_dedup
    survivors: list[tuple[int, bytes]] = []  # (position, split key) of documents dedup keeps
    ids: dict[int, str] = {}
    with open(spill_path, encoding="utf-8") as spill:
        for line in spill:
            position, doc_id, _, size, source = json.loads(line)
            ids[position] = doc_id
            verdict = index.verdict(position) if dedup_on else None
            if verdict is None or verdict.kept:
                survivors.append((position, _split_key(doc_id)))
                continue
            record = report.dedup_removal(verdict, doc_id, source, size, ids)
            removed.write(json.dumps(record, ensure_ascii=False) + "\n")
    if not survivors:
        raise CorpusError(_all_removed_message(report))
    validation = _validation_positions(survivors, config.corpus.validation_fraction)
    data = work / "data"
    writers = {
        "train": ShardWriter(data, "train", config.corpus.output_format, config.corpus.max_shard_bytes),
        "validation": ShardWriter(data, "validation", config.corpus.output_format, 1 << 62),
    }
    keep = {position for position, _ in survivors}
    with open(spill_path, encoding="utf-8") as spill:
        for line in spill:
            position, doc_id, text, size, source = json.loads(line)
            if position in keep:
                split = "validation" if position in validation else "train"
                writers[split].write({"id": doc_id, "text": text, "source": source}, size)
    paths = {"train": writers["train"].close()}
    if validation:
        paths["validation"] = writers["validation"].close()
    report.set_split(writers, paths, index if dedup_on else None)
    return paths


def _split_key(doc_id: str) -> bytes:
    return hashlib.blake2b(doc_id.encode(), digest_size=8).digest()


def _validation_positions(survivors: list[tuple[int, bytes]], fraction: float) -> set[int]:
    """The documents whose id hashes lowest: a stable sample, whatever order the corpus is in."""
    count = validation_count(len(survivors), fraction)
    if count == 0:
        return set()
    ranked = sorted(survivors, key=lambda item: (item[1], item[0]))
    return {position for position, _ in ranked[:count]}


def validation_count(survivors: int, fraction: float) -> int:
    """How many of the surviving documents the validation split takes (shared with the Ray executor)."""
    if fraction <= 0:
        return 0
    if survivors < 2:
        raise CorpusError(
            f"only {survivors} document survived cleaning; a train/validation split needs 2 (or set --validation_fraction 0)"
        )
    return min(max(1, round(survivors * fraction)), survivors - 1)


def _train_tokenizer(config: PrepareConfig, work: Path, train_paths: list[Path]) -> None:
    from pretrain.tokenizer import save_tokenizer, train_tokenizer

    tokenizer = train_tokenizer(iter_shard_texts(train_paths), config.tokenizer)
    save_tokenizer(tokenizer, work / "tokenizer")


def _replace_directory(work: Path, out_dir: Path) -> None:
    """Put the finished output in place with renames; an older output is moved aside first."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(work, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(work, out_dir)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _empty_corpus_message(sources, reader: CorpusReader) -> str:
    where = ", ".join(s.label for s in sources[:3]) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
    skipped = reader.stats.warnings()
    listed = ", ".join(f"{name.replace('_', ' ')}: {count}" for name, count in skipped.items())
    detail = f" ({listed})" if skipped else ""
    return f"no documents to prepare in {where}{detail}"


def _all_removed_message(report: FilterReport) -> str:
    rule, count = most_removed_rule(report)
    return (
        f"the filters removed all {report.docs_read} documents; most were removed by {rule} ({count} documents): "
        "relax that threshold, check --text_field, or try --profile python-docs"
    )
