"""mintline's Gopher quality + Gopher repetition + C4 filtering vs datatrove's, in one run.

    pip install -e ".[dev]" orjson   # datatrove + spacy (the baseline) come with the dev extra
    python benchmarks/prepare.py [--quick] [--workers 2] [--executor ray]

Corpus: the built-in corpus (the running Python's docs, ~2 MB) repeated to >= 50 MB (--quick:
>= 6 MB). Every copy after the first is perturbed (3% of words swapped for other corpus
words, 10% of paragraphs dropped, seeded) so no two documents are the same and documents
near a threshold land on both sides of it. Dedup is not part of the comparison (datatrove's
MinHash is a multi-stage job), so the repeats do not matter to it; the full `mintline
prepare` run at the end, which does dedup, shows them collapse as near duplicates.

Both sides read the same JSONL files and write the documents they keep, with the same
thresholds (datatrove's defaults) and the same number of worker processes: mintline through
`prepare_corpus` (blocks gopher_repetition, gopher_quality, c4; FineWeb's order), datatrove
through its LocalPipelineExecutor (JsonlReader -> the three filters -> JsonlWriter). The
corpus is cut into chunks and the two alternate chunk by chunk (order swapped every chunk),
so machine load hits them alike; docs/s is documents over summed wall time.

Agreement: the share of documents both keep or both drop, and the share of kept documents
whose text (C4 edits lines) is identical. An untimed in-process pass then compares each
filter alone, reason by reason, with datatrove's defaults and with the python-docs profile's
thresholds (whose alphabetic-word threshold sits in the middle of this corpus).

Targets (issue 2): agreement >= 99%, throughput >= 1.0x datatrove's. Ends with one JSON line.

--executor ray (issue 22) adds the full `mintline prepare` (normalise, 3 filters, PII, exact +
MinHash dedup, no tokenizer) on the whole corpus with the local executor and with Ray Data
(`prepare_corpus_ray` on a local Ray instance bound to 127.0.0.1), each with 1 and 2 workers:
docs/s, Ray's scaling efficiency (docs/s with 2 workers / (2 x docs/s with 1)), and whether every
run kept the same documents with the same ids and text. Ray's start-up is timed apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # `python benchmarks/prepare.py`: this folder would shadow the packages; use the repo root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

FILTERS = ["gopher_repetition", "gopher_quality", "c4"]


def require_baseline() -> None:
    missing = []
    for module in ("datatrove", "spacy", "orjson"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        sys.stderr.write(
            f"benchmarks/prepare.py: needs {' and '.join(missing)} for the baseline: pip install datatrove spacy orjson\n"
        )
        raise SystemExit(2)


# -- corpus -----------------------------------------------------------------------------------
_WORD = re.compile(r"\b[A-Za-z]{3,}\b")


def perturb(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    paragraphs = [p for p in text.split("\n\n") if rng.random() >= 0.10] or [text]
    swapped = _WORD.sub(
        lambda m: rng.choice(vocabulary) if rng.random() < 0.03 else m.group(0), "\n\n".join(paragraphs)
    )
    return swapped


def build_corpus(root: Path, target_bytes: int, chunks: int) -> dict:
    """Write chunk_i/part-0.jsonl and part-1.jsonl (two files so each datatrove task has one)."""
    from pretrain.corpus.builtin import iter_builtin_corpus

    base = list(iter_builtin_corpus())
    vocabulary = sorted({w for d in base for w in _WORD.findall(d.text)})
    documents = []
    size = copy = 0
    while size < target_bytes:
        rng = random.Random(copy)
        for doc in base:
            text = doc.text if copy == 0 else perturb(doc.text, rng, vocabulary)
            documents.append({"id": f"{doc.id}#{copy}", "text": text})
            size += len(text.encode())
        copy += 1
    random.Random(1).shuffle(documents)  # spread large and small documents across chunks
    for c in range(chunks):
        chunk = documents[c::chunks]
        for part in range(2):
            path = root / f"chunk_{c}" / f"part-{part}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                for record in chunk[part::2]:
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return {"docs": len(documents), "bytes": size, "copies": copy}


# -- the two contenders ---------------------------------------------------------------------------
def mintline_config(profile: str, workers: int, **extra):
    from pretrain.corpus.config import PrepareConfig

    overrides = dict(
        filters=FILTERS, exact_dedup=False, near_dedup=False, train_tokenizer=False, validation_fraction=0
    )
    overrides.update(extra)
    config = PrepareConfig.from_profile(profile, inputs=["benchmark"], num_workers=workers, **overrides)
    config.c4.keep_line_indentation = False  # datatrove has no such option
    return config


def run_mintline(chunk: Path, out: Path, config) -> tuple[float, dict[str, str]]:
    from dataclasses import replace

    from pretrain.corpus.shards import iter_shard_records
    from pretrain.prepare import prepare_corpus

    config = replace(config, corpus=replace(config.corpus, inputs=[str(chunk)]))
    started = time.perf_counter()
    prepare_corpus(config, out)
    seconds = time.perf_counter() - started
    kept = {r["id"]: _digest(r["text"]) for r in iter_shard_records(sorted((out / "data").glob("train-*")))}
    return seconds, kept


def datatrove_filters(config):
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

    q, r, c = config.gopher_quality, config.gopher_repetition, config.c4
    return [
        GopherRepetitionFilter(
            dup_line_frac=r.dup_line_frac,
            dup_para_frac=r.dup_para_frac,
            dup_line_char_frac=r.dup_line_char_frac,
            dup_para_char_frac=r.dup_para_char_frac,
            top_n_grams=tuple((n, getattr(r, f"top_{n}_gram_frac")) for n in (2, 3, 4)),
            dup_n_grams=tuple((n, getattr(r, f"dup_{n}_gram_frac")) for n in range(5, 11)),
        ),
        GopherQualityFilter(
            min_doc_words=q.min_doc_words,
            max_doc_words=q.max_doc_words,
            min_avg_word_length=q.min_avg_word_length,
            max_avg_word_length=q.max_avg_word_length,
            max_symbol_word_ratio=q.max_symbol_word_ratio,
            max_bullet_lines_ratio=q.max_bullet_lines_ratio,
            max_ellipsis_lines_ratio=q.max_ellipsis_lines_ratio,
            max_non_alpha_words_ratio=q.max_non_alpha_words_ratio,
            min_stop_words=q.min_stop_words,
            stop_words=list(q.stop_words),
        ),
        C4QualityFilter(
            remove_citations=c.remove_citations,
            filter_no_terminal_punct=c.filter_no_terminal_punct,
            min_num_sentences=c.min_num_sentences,
            min_words_per_line=c.min_words_per_line,
            max_word_length=c.max_word_length,
            filter_lorem_ipsum=c.filter_lorem_ipsum,
            filter_javascript=c.filter_javascript,
            filter_curly_bracket=c.filter_curly_bracket,
            filter_policy=c.filter_policy,
        ),
    ]


def run_datatrove(chunk: Path, out: Path, config, workers: int) -> tuple[float, dict[str, str]]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    pipeline = [JsonlReader(str(chunk)), *datatrove_filters(config), JsonlWriter(str(out / "kept"), compression=None)]
    executor = LocalPipelineExecutor(pipeline, tasks=2, workers=workers, logging_dir=str(out / "logs"))
    started = time.perf_counter()
    with stderr_to(out / "datatrove.log"):  # its tasks log their stats tables to stderr
        executor.run()
    seconds = time.perf_counter() - started
    kept = {}
    for path in sorted((out / "kept").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            kept[record["id"]] = _digest(record["text"])
    return seconds, kept


@contextlib.contextmanager
def stderr_to(path: Path):
    """Point file descriptor 2 (inherited by worker processes) at a file for a while."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def all_ids(chunk: Path) -> list[str]:
    return [json.loads(line)["id"] for path in sorted(chunk.glob("*.jsonl")) for line in path.open(encoding="utf-8")]


# -- untimed, filter by filter ----------------------------------------------------------------------
def per_filter_agreement(chunk: Path, config, sample: int) -> list[dict]:
    from datatrove.data import Document as DatatroveDocument

    from pretrain.corpus.document import Document

    records = [json.loads(line) for path in sorted(chunk.glob("*.jsonl")) for line in path.open(encoding="utf-8")][
        :sample
    ]
    ours = config.build_filters()
    theirs = datatrove_filters(config)
    rows = []
    for mine, baseline in zip(ours, theirs):
        same_decision = same_reason = same_text = both_kept = kept = 0
        for record in records:
            a = Document(id=record["id"], text=record["text"])
            b = DatatroveDocument(text=record["text"], id=record["id"])
            keep_a = mine(a)
            result = baseline.filter(b)
            keep_b = result is True or (isinstance(result, tuple) and result[0])
            reason_b = result[1] if isinstance(result, tuple) else None
            same_decision += keep_a == keep_b
            kept += keep_a
            if keep_a and keep_b:
                both_kept += 1
                same_text += a.text == b.text
            elif not keep_a and not keep_b:
                same_reason += a.metadata["removal"]["reason"] == reason_b
        dropped_both = same_decision - both_kept
        rows.append(
            {
                "filter": mine.name,
                "docs": len(records),
                "kept": kept,
                "decision_agreement": same_decision / len(records),
                "reason_agreement": same_reason / dropped_both if dropped_both else 1.0,
                "text_agreement": same_text / both_kept if both_kept else 1.0,
            }
        )
    return rows


# -- local processes vs Ray Data (--executor ray) ----------------------------------------------------
def executor_comparison(corpus: Path, out: Path) -> dict:
    """The full prepare on the whole corpus: local and Ray, 1 and 2 workers, same output checked."""
    import logging

    import ray

    from pretrain.corpus.shards import iter_shard_records
    from pretrain.prepare import prepare_corpus
    from pretrain.ray_executor import prepare_corpus_ray

    runs, kept = {}, {}
    for workers in (1, 2):
        from dataclasses import replace

        config = mintline_config(
            "datatrove", workers, filters=["normalize", *FILTERS, "pii"], exact_dedup=True, near_dedup=True
        )
        config = replace(config, corpus=replace(config.corpus, inputs=[str(corpus)]))
        for executor in ("local", "ray"):
            name = f"{executor}-{workers}"
            target = out / name / "prepare"
            run: dict = {}
            if executor == "ray":
                started = time.perf_counter()
                ray.init(
                    address="local",
                    _node_ip_address="127.0.0.1",
                    num_cpus=workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
                run["startup_s"] = time.perf_counter() - started
            try:
                started = time.perf_counter()
                figures = (prepare_corpus_ray if executor == "ray" else prepare_corpus)(config, target)
                run["seconds"] = time.perf_counter() - started
            finally:
                if executor == "ray":
                    ray.shutdown()
            run["docs_per_s"] = figures["docs_read"] / run["seconds"]
            run["docs_kept"] = figures["docs_kept"]
            if executor == "ray":
                run["stage_seconds"] = figures["stage_seconds"]  # filter, dedup (shuffle + clusters + split), write
            runs[name] = run
            kept[name] = sorted(
                (r["id"], _digest(r["text"])) for r in iter_shard_records(sorted((target / "data").glob("*")))
            )
            shutil.rmtree(target.parent, ignore_errors=True)
            print(
                f"  {name:<8} {run['seconds']:7.1f} s, {run['docs_per_s']:7.1f} docs/s, kept {run['docs_kept']:,}",
                flush=True,
            )
    rate = {name: run["docs_per_s"] for name, run in runs.items()}
    return {
        "runs": runs,
        "identical": all(documents == kept["local-1"] for documents in kept.values()),
        "ray_scaling_efficiency": rate["ray-2"] / (2 * rate["ray-1"]),
        "local_scaling_efficiency": rate["local-2"] / (2 * rate["local-1"]),
        "ray_vs_local": rate["ray-2"] / rate["local-2"],
    }


def print_executor_comparison(result: dict) -> None:
    from mintline.console import format_table

    print(
        "\nfull prepare (normalise, 3 filters, PII, exact + MinHash dedup), whole corpus, local processes vs Ray Data:"
    )
    rows = [
        {
            "run": name,
            "seconds": round(run["seconds"], 1),
            "docs/s": round(run["docs_per_s"], 1),
            "kept": run["docs_kept"],
            "ray start-up s": round(run["startup_s"], 1) if "startup_s" in run else "",
        }
        for name, run in result["runs"].items()
    ]
    print(format_table(rows))
    for name, run in result["runs"].items():
        if "stage_seconds" in run:
            print(
                f"  {name} stages: "
                + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in run["stage_seconds"].items())
            )
    print(
        f"scaling 1 -> 2 workers: Ray {result['ray_scaling_efficiency']:.0%}, local {result['local_scaling_efficiency']:.0%} efficiency; "
        f"Ray / local at 2 workers: {result['ray_vs_local']:.2f}x; same documents, ids and text in every run: {result['identical']}"
    )


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a >= 6 MB corpus instead of >= 50 MB (under 5 minutes)")
    parser.add_argument("--workers", type=int, default=2, help="processes per contender")
    parser.add_argument("--sample", type=int, default=300, help="documents in the untimed filter-by-filter pass")
    parser.add_argument(
        "--workdir", default=None, help="where the corpus and outputs go (a temporary directory inside)"
    )
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="ray: also time the full prepare on local processes vs Ray Data with 1 and 2 workers",
    )
    args = parser.parse_args()
    if args.executor == "ray":
        from pretrain.ray_executor import RayUnavailableError, require_ray

        try:
            require_ray()
        except RayUnavailableError as exc:
            sys.stderr.write(f"benchmarks/prepare.py: {exc}\n")
            raise SystemExit(2)
    require_baseline()
    from loguru import logger

    from mintline.console import format_table

    logger.remove()  # datatrove's logs would drown the comparison
    logger.add(sys.stderr, level="WARNING")

    target = (6 if args.quick else 50) * 1_000_000
    chunks = 2 if args.quick else 4
    root = Path(tempfile.mkdtemp(prefix="corpus-filter-bench-", dir=args.workdir))
    try:
        corpus = build_corpus(root / "corpus", target, chunks)
        print(
            f"corpus: {corpus['bytes'] / 1e6:.1f} MB, {corpus['docs']:,} documents "
            f"(built-in corpus x {corpus['copies']}, perturbed), {chunks} chunks, {args.workers} workers each",
            flush=True,
        )
        config = mintline_config("datatrove", args.workers)
        seconds = {"mintline": 0.0, "datatrove": 0.0}
        kept = {"mintline": {}, "datatrove": {}}
        ids: list[str] = []
        for c in range(chunks):
            chunk = root / "corpus" / f"chunk_{c}"
            ids.extend(all_ids(chunk))
            order = ("mintline", "datatrove") if c % 2 == 0 else ("datatrove", "mintline")
            for name in order:
                out = root / "out" / name / f"chunk_{c}"
                if name == "mintline":
                    s, k = run_mintline(chunk, out / "prepare", config)
                else:
                    s, k = run_datatrove(chunk, out, config, args.workers)
                seconds[name] += s
                kept[name].update(k)
                print(f"  chunk {c}: {name:<9} {s:7.1f} s, kept {len(k):,}", flush=True)

        agree = sum((i in kept["mintline"]) == (i in kept["datatrove"]) for i in ids) / len(ids)
        both = [i for i in ids if i in kept["mintline"] and i in kept["datatrove"]]
        same_text = sum(kept["mintline"][i] == kept["datatrove"][i] for i in both) / max(len(both), 1)
        differing = [i for i in ids if (i in kept["mintline"]) != (i in kept["datatrove"])][:10]
        rate = {name: len(ids) / seconds[name] for name in seconds}
        mb_rate = {name: corpus["bytes"] / 1e6 / seconds[name] for name in seconds}
        ratio = rate["mintline"] / rate["datatrove"]

        # the full `mintline prepare` (normalise, filters, PII, dedup) on the same corpus, for reference
        full = mintline_config(
            "datatrove", args.workers, filters=["normalize", *FILTERS, "pii"], exact_dedup=True, near_dedup=True
        )
        from dataclasses import replace

        from pretrain.prepare import prepare_corpus

        full = replace(full, corpus=replace(full.corpus, inputs=[str(root / "corpus")]))
        started = time.perf_counter()
        full_figures = prepare_corpus(full, root / "out" / "full" / "prepare")
        full_seconds = time.perf_counter() - started

        executors = (
            executor_comparison(root / "corpus", root / "out" / "executors") if args.executor == "ray" else None
        )
        rows_default = per_filter_agreement(root / "corpus" / "chunk_0", mintline_config("datatrove", 1), args.sample)
        rows_docs = per_filter_agreement(root / "corpus" / "chunk_0", mintline_config("python-docs", 1), args.sample)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print()
    print(
        format_table(
            [
                {
                    "": "docs/s",
                    "mintline": round(rate["mintline"], 1),
                    "datatrove": round(rate["datatrove"], 1),
                    "ratio": round(ratio, 2),
                },
                {
                    "": "MB/s",
                    "mintline": round(mb_rate["mintline"], 2),
                    "datatrove": round(mb_rate["datatrove"], 2),
                    "ratio": round(ratio, 2),
                },
                {
                    "": "seconds",
                    "mintline": round(seconds["mintline"], 1),
                    "datatrove": round(seconds["datatrove"], 1),
                    "ratio": "",
                },
                {"": "docs kept", "mintline": len(kept["mintline"]), "datatrove": len(kept["datatrove"]), "ratio": ""},
            ]
        )
    )
    print(f"\nkeep/drop agreement: {agree:.4%} of {len(ids):,} documents; identical kept text: {same_text:.4%}")
    if differing:
        print("  documents decided differently:", ", ".join(differing))
    print(
        f"full mintline prepare (normalise, 3 filters, PII, exact + MinHash dedup): {len(ids) / full_seconds:.1f} docs/s; "
        f"near duplicates {full_figures['near_duplicates']:,}, exact {full_figures['exact_duplicates']:,}, kept {full_figures['docs_kept']:,}"
    )
    for label, rows in (("datatrove defaults", rows_default), ("python-docs profile", rows_docs)):
        print(f"\neach filter alone, {label} (untimed, first {rows[0]['docs']} documents of chunk 0):")
        print(format_table([{k: (f"{v:.2%}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows]))
    sample_agreement = min(r["decision_agreement"] for r in rows_default + rows_docs)
    extra = {}
    if executors is not None:
        print_executor_comparison(executors)
        extra = {
            "executor_docs_per_s": {name: round(run["docs_per_s"], 1) for name, run in executors["runs"].items()},
            "ray_scaling_efficiency": round(executors["ray_scaling_efficiency"], 3),
            "local_scaling_efficiency": round(executors["local_scaling_efficiency"], 3),
            "ray_vs_local_2_workers": round(executors["ray_vs_local"], 3),
            "ray_startup_s": {
                name: round(run["startup_s"], 1) for name, run in executors["runs"].items() if "startup_s" in run
            },
            "executors_identical": executors["identical"],
            "ray_stage_seconds": {
                name: run["stage_seconds"] for name, run in executors["runs"].items() if "stage_seconds" in run
            },
        }
    print(
        json.dumps(
            {
                "agreement": round(agree, 6),
                "throughput_ratio": round(ratio, 3),
                "mintline_docs_per_s": round(rate["mintline"], 1),
                "datatrove_docs_per_s": round(rate["datatrove"], 1),
                "kept_text_agreement": round(same_text, 6),
                "per_filter_min_agreement": round(sample_agreement, 6),
                "corpus_mb": round(corpus["bytes"] / 1e6, 1),
                "docs": len(ids),
                "mintline_full_prepare_docs_per_s": round(len(ids) / full_seconds, 1),
                **extra,
            }
        )
    )


if __name__ == "__main__":
    main()
