"""What a prepare run measured (`filter_report.json`, the figures it returns) and `--explain`.

The per-block counts come from the blocks' own base class (FilterStats); this module only
adds them up across workers, adds the dedup and split figures, and reads `removed.jsonl`
back to explain a single document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pretrain.corpus.shards import iter_shard_records, shard_paths
from pretrain.errors import CorpusError
from pretrain.filters.base import FilterStats

REPORT_NAME = "filter_report.json"
REMOVED_NAME = "removed.jsonl"


class FilterReport:
    def __init__(self, config, sources):
        self.config = config
        self.sources = [s.label for s in sources]
        self.read = None  # ReadStats, set when reading is done
        self.docs_read = 0
        self.bytes_read = 0
        self.passed = 0  # documents every block kept
        self.filters: dict[str, FilterStats] = {name: FilterStats() for name in config.corpus.filters}
        self.lines_removed: dict[str, dict[str, int]] = {}
        self.replacements: dict[str, dict[str, int]] = {}
        self.dedup = {"exact_duplicate": [0, 0], "near_duplicate": [0, 0]}
        self.clusters = 0
        self.split: dict[str, dict[str, Any]] = {}
        self.seconds: dict[str, float] = {}

    # -- collecting ----------------------------------------------------------------------
    def add_read(self, size: int) -> None:
        self.docs_read += 1
        self.bytes_read += size

    def add_counts(self, counts: dict[str, Any]) -> None:
        for name, stats in counts["filters"].items():
            self.filters[name].merge(stats)
        for group, target in (("lines", self.lines_removed), ("pii", self.replacements)):
            for name, values in counts[group].items():
                totals = target.setdefault(name, {})
                for key, value in values.items():
                    totals[key] = totals.get(key, 0) + value

    def dedup_removal(self, verdict, doc_id: str, source: str, size: int, ids: dict[int, str]) -> dict[str, Any]:
        """Count a document dedup removed; returns its removed.jsonl record."""
        entry = self.dedup[verdict.reason]
        entry[0] += 1
        entry[1] += size
        record = {
            "id": doc_id,
            "source": source,
            "filter": "dedup",
            "reason": verdict.reason,
            "duplicate_of": ids.get(verdict.matched),
            "kept_instead": ids.get(verdict.kept_instead),
            "bytes": size,
        }
        if verdict.reason == "near_duplicate":
            record.update(
                measured=f"estimated Jaccard similarity of 5-gram shingles with {ids.get(verdict.matched)}",
                value=None if verdict.similarity is None else round(verdict.similarity, 4),
                comparison=">=",
                threshold=round(self.config.dedup.similarity_threshold, 4),
            )
        else:
            record.update(
                measured="normalised text", value="identical", comparison="==", threshold=ids.get(verdict.matched)
            )
        return record

    def set_split(self, writers, paths, index) -> None:
        for split, writer in writers.items():
            if split in paths:
                self.split[split] = {
                    "docs": writer.docs,
                    "bytes": writer.bytes,
                    "shards": [p.name for p in paths[split]],
                }
        self.clusters = index.clusters() if index is not None else 0

    # -- reporting -----------------------------------------------------------------------
    def removed_by_rule(self) -> dict[str, dict[str, int]]:
        rules: dict[str, dict[str, int]] = {}
        for name, stats in self.filters.items():
            for reason, (docs, size) in sorted(stats.dropped.items()):
                rules[f"{name}/{reason}"] = {"docs": docs, "bytes": size}
        for reason, (docs, size) in self.dedup.items():
            if docs:
                rules[f"dedup/{reason}"] = {"docs": docs, "bytes": size}
        return rules

    def kept(self) -> tuple[int, int]:
        docs = sum(s["docs"] for s in self.split.values())
        size = sum(s["bytes"] for s in self.split.values())
        return docs, size

    def to_dict(self) -> dict[str, Any]:
        kept_docs, kept_bytes = self.kept()
        filters = {}
        for name, stats in self.filters.items():
            filters[name] = stats.to_dict()
            if name in self.lines_removed:
                filters[name]["lines_removed"] = dict(sorted(self.lines_removed[name].items()))
            if name in self.replacements:
                filters[name]["replacements"] = self.replacements[name]
        return {
            "profile": self.config.corpus.profile,
            "inputs": self.sources,
            "read": self.read.to_dict() if self.read else {},
            "docs_read": self.docs_read,
            "bytes_read": self.bytes_read,
            "filters": filters,
            "dedup": {
                "exact_duplicates": dict(zip(("docs", "bytes"), self.dedup["exact_duplicate"])),
                "near_duplicates": dict(zip(("docs", "bytes"), self.dedup["near_duplicate"])),
                "clusters": self.clusters,
            },
            "removed_by_rule": self.removed_by_rule(),
            "kept": {"docs": kept_docs, "bytes": kept_bytes},
            "split": self.split,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "docs_per_s": round(self.docs_read / self.seconds["total"], 1) if self.seconds.get("total") else None,
            "config": self.config.identity(),
        }

    def figures(self) -> dict[str, Any]:
        """The numbers the run journal and `--json` carry."""
        kept_docs, kept_bytes = self.kept()
        total = self.seconds.get("total", 0.0)
        return {
            "profile": self.config.corpus.profile,
            "docs_read": self.docs_read,
            "bytes_read": self.bytes_read,
            "docs_kept": kept_docs,
            "bytes_kept": kept_bytes,
            "docs_removed": self.docs_read - kept_docs,
            "removed_by_rule": {rule: v["docs"] for rule, v in self.removed_by_rule().items()},
            "exact_duplicates": self.dedup["exact_duplicate"][0],
            "near_duplicates": self.dedup["near_duplicate"][0],
            "dedup_clusters": self.clusters,
            "train_docs": self.split.get("train", {}).get("docs", 0),
            "validation_docs": self.split.get("validation", {}).get("docs", 0),
            "train_shards": len(self.split.get("train", {}).get("shards", [])),
            "read_warnings": self.read.warnings() if self.read else {},
            "seconds": round(total, 3),
            "docs_per_s": round(self.docs_read / total, 1) if total else None,
        }


def most_removed_rule(report: FilterReport) -> tuple[str, int]:
    rules = report.removed_by_rule()
    if not rules:
        return "no rule", 0
    rule = max(rules, key=lambda r: rules[r]["docs"])
    return rule, rules[rule]["docs"]


# -- explain -------------------------------------------------------------------------------
_COMPARISON_WORDS = {"<": "below the minimum", ">": "above the maximum", ">=": "at or above", "==": "same as"}


def explain_document(out_dir: str | Path, doc_id: str) -> dict[str, Any]:
    """Why `doc_id` was removed (rule, measured value, threshold), or where it was kept."""
    out_dir = Path(out_dir)
    removed_path = out_dir / REMOVED_NAME
    if not removed_path.is_file():
        raise CorpusError(
            f"{out_dir}: no finished prepare output here (no {REMOVED_NAME}); run `mintline prepare` first"
        )
    with open(removed_path, encoding="utf-8") as handle:
        for line in handle:
            if f'"{_json_escaped(doc_id)}"' not in line:  # cheap pre-check before parsing
                continue
            record = json.loads(line)
            if record["id"] == doc_id:
                return {"id": doc_id, "status": "removed", **record, "explanation": describe_removal(record)}
    for split in ("train", "validation"):
        for path in shard_paths(out_dir / "data", split):
            for record in iter_shard_records([path]):
                if record["id"] == doc_id:
                    return {
                        "id": doc_id,
                        "status": "kept",
                        "split": split,
                        "shard": path.name,
                        "source": record.get("source"),
                        "explanation": f"{doc_id} was kept: it is in {split} shard {path.name}",
                    }
    raise CorpusError(
        f"{doc_id!r}: no document with this id in {out_dir} (ids are listed in {REMOVED_NAME} and the data shards)"
    )


def describe_removal(record: dict[str, Any]) -> str:
    where = f"{record['id']} was removed by {record['filter']} ({record['reason']})"
    if record["filter"] == "dedup":
        if record["reason"] == "exact_duplicate":
            kept = record.get("kept_instead")
            cluster = (
                f"; its cluster kept {kept}" if kept and kept != record.get("duplicate_of") else ", which was kept"
            )
            return f"{where}: its normalised text is identical to {record['duplicate_of']}{cluster}"
        similarity = record.get("value")
        shown = f"{similarity:.2f}" if isinstance(similarity, float) else "n/a"
        kept = record.get("kept_instead")
        cluster = f"; its cluster kept {kept}" if kept and kept != record.get("duplicate_of") else ""
        return (
            f"{where}: it shares a MinHash LSH bucket with {record['duplicate_of']} "
            f"(estimated Jaccard similarity {shown}; the bands catch pairs above ~{record['threshold']}){cluster}"
        )
    if "measured" not in record:
        return where
    words = _COMPARISON_WORDS.get(record["comparison"], record["comparison"])
    if record["comparison"] == "found":
        return f"{where}: the {record['measured']} contains {record['value']} ({record['threshold']})"
    return f"{where}: {record['measured']} = {_shown(record['value'])}, {words} {_shown(record['threshold'])}"


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _json_escaped(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]
