"""The label ledger: every requested pair, every annotation (each once), every rejection.

One SQLite file in WAL mode. Every write is a single transaction (`BEGIN IMMEDIATE` …
`COMMIT`), so a process killed at any point leaves either the whole write or none of it, and
re-running the same write is harmless: annotations are unique by (external_id, version),
rejections by (external_id, digest of the raw record), pairs by pair_id.

Choices are always stored in terms of the ORIGINAL response_a / response_b, whatever order the
annotator saw (`shown_order` says which: "ab" = response_a was shown as A).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from annotation.agreement import agreement_report, count_votes, majority
from annotation.errors import LedgerError
from annotation.pairs import PreferencePair

CHOICES = ("a", "b", "tie", "skip")
KINDS = ("human", "simulated")
ORDERS = ("ab", "ba")
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY, prompt TEXT NOT NULL, response_a TEXT NOT NULL, response_b TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '', predicted TEXT, confidence REAL, metadata TEXT NOT NULL DEFAULT '{}',
    round INTEGER, requested INTEGER NOT NULL DEFAULT 1, added_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, pair_id TEXT NOT NULL REFERENCES pairs(pair_id), project TEXT,
    shown_order TEXT CHECK (shown_order IN ('ab', 'ba')), model_version TEXT, pushed_at TEXT NOT NULL,
    seen_updated_at TEXT, deleted_at TEXT);
CREATE INDEX IF NOT EXISTS tasks_by_pair ON tasks(pair_id);
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY, external_id TEXT NOT NULL, version INTEGER NOT NULL,
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id), annotator TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'skip')),
    kind TEXT NOT NULL CHECK (kind IN ('human', 'simulated')), source TEXT NOT NULL,
    lead_time REAL, created_at TEXT, task_id TEXT, shown_order TEXT, revision TEXT, recorded_at TEXT NOT NULL,
    UNIQUE (external_id, version));
CREATE INDEX IF NOT EXISTS annotations_by_pair ON annotations(pair_id);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY, external_id TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT, digest TEXT NOT NULL,
    recorded_at TEXT NOT NULL, UNIQUE (external_id, digest));
CREATE TABLE IF NOT EXISTS pseudo_labels (
    pair_id TEXT NOT NULL, model TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b')), confidence REAL NOT NULL, recorded_at TEXT NOT NULL,
    PRIMARY KEY (pair_id, model));
-- the latest version of every annotation: what aggregation and counts read
CREATE VIEW IF NOT EXISTS latest AS
    SELECT a.* FROM annotations a
    WHERE a.version = (SELECT MAX(b.version) FROM annotations b WHERE b.external_id = a.external_id);
"""


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Annotation:
    pair_id: str
    annotator: str
    choice: str  # "a" | "b" | "tie" | "skip", in terms of the ORIGINAL response_a/response_b
    kind: str = "human"  # "human" | "simulated"
    source: str = "labelstudio"  # "labelstudio" | "simulated" | ...
    external_id: str | None = None  # e.g. the Label Studio annotation id; default source:annotator:pair_id
    version: int = 1  # an edited annotation is a new version of the same external_id
    lead_time: float | None = None
    created_at: str | None = None
    task_id: str | None = None
    shown_order: str | None = None  # "ab" | "ba": which original response was displayed as A
    revision: str | None = None  # what identifies this version at the source (Label Studio: updated_at)

    def __post_init__(self):
        self.choice = str(self.choice).lower()
        if self.choice not in CHOICES:
            raise LedgerError(f"annotation choice must be one of {', '.join(CHOICES)}, got {self.choice!r}")
        if self.kind not in KINDS:
            raise LedgerError(f"annotation kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.shown_order is not None and self.shown_order not in ORDERS:
            raise LedgerError(f"shown_order must be 'ab' or 'ba', got {self.shown_order!r}")
        if not self.external_id:
            self.external_id = f"{self.source}:{self.annotator}:{self.pair_id}"
        self.external_id = str(self.external_id)
        if self.task_id is not None:
            self.task_id = str(self.task_id)


@dataclass
class AggregatedLabel:
    pair_id: str
    choice: str  # "a" | "b" | "tie": majority over latest versions, ties explicit
    votes: dict  # {"a": n, "b": n, "tie": n}
    annotators: list[str]
    kind: str  # "human" | "simulated" | "pseudo"; "simulated" if any vote is simulated
    confidence: float | None = None  # pseudo labels only: the model's confidence


class Ledger:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE) so none is left open
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            with self.transaction() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open the label ledger {self.path}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: all statements inside commit together or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- key/value state (project binding, sync bookkeeping); never secrets -----------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, values: dict[str, str], db: sqlite3.Connection | None = None) -> None:
        if db is None:
            with self.transaction() as tx:
                self.set_meta(values, tx)
            return
        for key, value in values.items():
            db.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, str(value)),
            )

    # -- pairs ---------------------------------------------------------------------------
    def add_pairs(self, pairs: Iterable[PreferencePair], round: int | None = None, requested: bool = True) -> int:
        """Record pairs (idempotent by pair_id); returns how many were new.

        `requested=False` stores a pair only so that a pseudo label can refer to it; a pair
        stored that way becomes requested when it is added again with `requested=True`.
        """
        with self.transaction() as db:
            return self.record_pairs(db, pairs, round, requested)

    def record_pairs(self, db, pairs, round=None, requested=True) -> int:
        """Inside a transaction: add_pairs."""
        added = 0
        for pair in pairs:
            existing = db.execute(
                "SELECT prompt, response_a, response_b, requested FROM pairs WHERE pair_id = ?", (pair.pair_id,)
            ).fetchone()
            if existing is None:
                db.execute(
                    "INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        pair.pair_id,
                        pair.prompt,
                        pair.response_a,
                        pair.response_b,
                        pair.model,
                        pair.predicted,
                        pair.confidence,
                        json.dumps(pair.metadata, ensure_ascii=False),
                        round,
                        int(requested),
                        now_iso(),
                    ),
                )
                added += 1
                continue
            if (existing["prompt"], existing["response_a"], existing["response_b"]) != (
                pair.prompt,
                pair.response_a,
                pair.response_b,
            ):
                raise LedgerError(f"pair_id {pair.pair_id!r} already names a different pair in {self.path}")
            if requested and not existing["requested"]:
                db.execute(
                    "UPDATE pairs SET requested = 1, round = COALESCE(?, round) WHERE pair_id = ?",
                    (round, pair.pair_id),
                )
                added += 1
        return added

    def pair(self, pair_id: str) -> PreferencePair:
        row = self._db.execute("SELECT * FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no pair {pair_id!r} in the ledger {self.path}")
        return _pair_from_row(row)

    def pairs(self, requested_only: bool = True) -> list[PreferencePair]:
        where = "WHERE requested = 1" if requested_only else ""
        return [_pair_from_row(r) for r in self._db.execute(f"SELECT * FROM pairs {where} ORDER BY rowid")]

    def has_pair(self, pair_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone() is not None

    # -- annotations ---------------------------------------------------------------------
    def record_annotations(self, annotations: Iterable[Annotation], db=None) -> int:
        """Record annotations; the same (external_id, version) twice is recorded once. Returns new rows."""
        if db is None:
            with self.transaction() as tx:
                return self.record_annotations(annotations, tx)
        return sum(self._insert_annotation(db, a) for a in annotations)

    def _insert_annotation(self, db, a: Annotation) -> int:
        if db.execute("SELECT 1 FROM pairs WHERE pair_id = ?", (a.pair_id,)).fetchone() is None:
            raise LedgerError(f"annotation {a.external_id} is for pair {a.pair_id!r}, which the ledger does not hold")
        cursor = db.execute(
            "INSERT OR IGNORE INTO annotations (external_id, version, pair_id, annotator, choice, kind, source, lead_time,"
            " created_at, task_id, shown_order, revision, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                a.external_id,
                int(a.version),
                a.pair_id,
                a.annotator,
                a.choice,
                a.kind,
                a.source,
                a.lead_time,
                a.created_at,
                a.task_id,
                a.shown_order,
                a.revision,
                now_iso(),
            ),
        )
        return cursor.rowcount

    def record_revisions(self, db, annotations: Iterable[Annotation]) -> dict[str, int]:
        """Inside a transaction: record observed annotations, numbering versions by revision.

        An external_id seen for the first time becomes version 1; the same revision again is
        ignored; a different revision (an edit) becomes the next version.
        """
        figures = {"new": 0, "edited": 0, "unchanged": 0, "skips": 0}
        for a in annotations:
            latest = db.execute(
                "SELECT version, revision FROM annotations WHERE external_id = ? ORDER BY version DESC LIMIT 1",
                (a.external_id,),
            ).fetchone()
            if latest is not None and latest["revision"] == a.revision:
                figures["unchanged"] += 1
                continue
            a.version = 1 if latest is None else latest["version"] + 1
            self._insert_annotation(db, a)
            figures["new" if latest is None else "edited"] += 1
            figures["skips"] += a.choice == "skip"
        return figures

    def annotations(self, latest_only: bool = True) -> list[Annotation]:
        table = "latest" if latest_only else "annotations"
        rows = self._db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        return [_annotation_from_row(r) for r in rows]

    def record_rejected(self, external_id: str, reason: str, raw: dict | None = None, db=None) -> int:
        """Keep a record that could not become an annotation, with why (idempotent); 1 if new."""
        if db is None:
            with self.transaction() as tx:
                return self.record_rejected(external_id, reason, raw, tx)
        blob = json.dumps(raw, sort_keys=True, default=str) if raw is not None else None
        digest = hashlib.sha256(f"{reason}\0{blob}".encode()).hexdigest()
        return db.execute(
            "INSERT OR IGNORE INTO rejected (external_id, reason, raw, digest, recorded_at) VALUES (?, ?, ?, ?, ?)",
            (str(external_id), reason, blob, digest, now_iso()),
        ).rowcount

    def rejected(self) -> list[dict]:
        rows = self._db.execute("SELECT external_id, reason, recorded_at FROM rejected ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def record_pseudo_labels(
        self, labels: Iterable[tuple[str, str, float]], model: str, pairs: Iterable[PreferencePair] = ()
    ) -> int:
        """Model-made labels (pair_id, "a"|"b", confidence), kept apart from human/simulated votes.

        The pairs need not be in the ledger; give them as `pairs` (stored as not requested) so
        that `export_trl(include_pseudo=True)` can write their text. Returns labels new or changed.
        """
        changed = 0
        with self.transaction() as db:
            self.record_pairs(db, pairs, requested=False)
            for pair_id, choice, confidence in labels:
                if choice not in ("a", "b"):
                    raise LedgerError(f"pseudo label for {pair_id!r}: choice must be 'a' or 'b', got {choice!r}")
                before = db.execute(
                    "SELECT choice, confidence FROM pseudo_labels WHERE pair_id = ? AND model = ?", (pair_id, model)
                ).fetchone()
                if before is not None and (before["choice"], before["confidence"]) == (choice, float(confidence)):
                    continue
                db.execute(
                    "INSERT INTO pseudo_labels VALUES (?, ?, ?, ?, ?) ON CONFLICT(pair_id, model) DO UPDATE SET "
                    "choice = excluded.choice, confidence = excluded.confidence, recorded_at = excluded.recorded_at",
                    (pair_id, model, choice, float(confidence), now_iso()),
                )
                changed += 1
        return changed

    # -- Label Studio task bookkeeping ----------------------------------------------------
    def record_tasks(self, db, rows: Iterable[tuple[str, str, str, str, str | None]]) -> int:
        """Inside a transaction: (task_id, pair_id, project, shown_order, model_version) rows."""
        added = 0
        for task_id, pair_id, project, order, model_version in rows:
            cursor = db.execute(
                "INSERT INTO tasks (task_id, pair_id, project, shown_order, model_version, pushed_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(task_id) DO UPDATE SET deleted_at = NULL",
                (str(task_id), pair_id, str(project), order, model_version, now_iso()),
            )
            added += cursor.rowcount
        return added

    def tasks(self, live_only: bool = True) -> dict[str, sqlite3.Row]:
        where = "WHERE deleted_at IS NULL" if live_only else ""
        return {r["task_id"]: r for r in self._db.execute(f"SELECT * FROM tasks {where}")}

    # -- reading labels ------------------------------------------------------------------
    def _votes_by_pair(self) -> dict[str, list[sqlite3.Row]]:
        votes: dict[str, list[sqlite3.Row]] = {}
        for row in self._db.execute("SELECT * FROM latest WHERE choice != 'skip' ORDER BY id"):
            votes.setdefault(row["pair_id"], []).append(row)
        return votes

    def labels(self, pair_ids=None, include_pseudo: bool = False) -> list[AggregatedLabel]:
        """Aggregated labels of pairs with at least one non-skip vote (pseudo labels on request)."""
        wanted = None if pair_ids is None else set(pair_ids)
        votes = self._votes_by_pair()
        result = []
        order = [r[0] for r in self._db.execute("SELECT pair_id FROM pairs ORDER BY rowid")]
        if include_pseudo:  # pseudo labels may name pairs whose text the ledger was never given
            known = set(order)
            order += [
                r[0]
                for r in self._db.execute("SELECT DISTINCT pair_id FROM pseudo_labels ORDER BY rowid")
                if r[0] not in known
            ]
        for pair_id in order:
            if wanted is not None and pair_id not in wanted:
                continue
            rows = votes.get(pair_id)
            if rows:
                tally = count_votes(r["choice"] for r in rows)
                kind = "simulated" if any(r["kind"] == "simulated" for r in rows) else "human"
                annotators = sorted({r["annotator"] for r in rows})
                result.append(AggregatedLabel(pair_id, majority(tally), tally, annotators, kind))
            elif include_pseudo:
                pseudo = self._db.execute(
                    "SELECT * FROM pseudo_labels WHERE pair_id = ? ORDER BY recorded_at DESC LIMIT 1", (pair_id,)
                ).fetchone()
                if pseudo is not None:
                    tally = count_votes([pseudo["choice"]])
                    result.append(
                        AggregatedLabel(
                            pair_id,
                            pseudo["choice"],
                            tally,
                            [f"model:{pseudo['model']}"],
                            "pseudo",
                            pseudo["confidence"],
                        )
                    )
        return result

    def pending(self, include_skipped: bool = True) -> list[str]:
        """Requested pairs without a non-skip vote (skips alone are not labels).

        With `include_skipped=False`, only the pairs still awaiting an answer: pairs that every
        annotator who answered skipped (`skipped_pairs`) are left out. The default keeps them,
        because a caller choosing what to ask next must not ask for them again.
        """
        rows = self._db.execute(
            "SELECT pair_id FROM pairs WHERE requested = 1 AND pair_id NOT IN "
            "(SELECT pair_id FROM latest WHERE choice != 'skip') ORDER BY rowid"
        )
        unlabelled = [r["pair_id"] for r in rows]
        if include_skipped:
            return unlabelled
        skipped = set(self.skipped_pairs())
        return [pair_id for pair_id in unlabelled if pair_id not in skipped]

    def skipped_pairs(self) -> list[str]:
        """Requested pairs answered only with skips: every annotator who answered skipped them.

        Nothing is coming for them unless another annotator takes them up (Label Studio queues
        a skipped task for others), so they count as skipped, not pending.
        """
        rows = self._db.execute(
            "SELECT pair_id FROM pairs WHERE requested = 1 "
            "AND pair_id IN (SELECT pair_id FROM latest WHERE choice = 'skip') "
            "AND pair_id NOT IN (SELECT pair_id FROM latest WHERE choice != 'skip') ORDER BY rowid"
        )
        return [r["pair_id"] for r in rows]

    def counts(self) -> dict:
        """Pairs: requested = labelled + pending + skipped; and annotations, votes, skips, tasks."""
        one = lambda sql: self._db.execute(sql).fetchone()[0]  # noqa: E731
        labelled = one("SELECT COUNT(DISTINCT pair_id) FROM latest WHERE choice != 'skip'")
        return {
            "requested": one("SELECT COUNT(*) FROM pairs WHERE requested = 1"),
            "labelled": labelled,
            "pending": len(self.pending(include_skipped=False)),
            "skipped": len(self.skipped_pairs()),
            "skips": one("SELECT COUNT(*) FROM latest WHERE choice = 'skip'"),
            "rejected": one("SELECT COUNT(*) FROM rejected"),
            "pseudo": one(
                "SELECT COUNT(DISTINCT pair_id) FROM pseudo_labels WHERE pair_id NOT IN "
                "(SELECT pair_id FROM latest WHERE choice != 'skip')"
            ),
            "annotations": one("SELECT COUNT(*) FROM latest"),
            "edits": one("SELECT COUNT(*) FROM annotations WHERE version > 1"),
            "votes": one("SELECT COUNT(*) FROM latest WHERE choice != 'skip'"),
            "human": one("SELECT COUNT(*) FROM latest WHERE choice != 'skip' AND kind = 'human'"),
            "simulated": one("SELECT COUNT(*) FROM latest WHERE choice != 'skip' AND kind = 'simulated'"),
            "annotators": one("SELECT COUNT(DISTINCT annotator) FROM latest"),
            "tasks": one("SELECT COUNT(*) FROM tasks WHERE deleted_at IS NULL"),
            "deleted_tasks": one("SELECT COUNT(*) FROM tasks WHERE deleted_at IS NOT NULL"),
        }

    def agreement(self) -> dict:
        """Percent agreement and kappa over pairs with >= 2 votes (latest versions, skips excluded)."""
        ratings = {}
        for pair_id, rows in self._votes_by_pair().items():
            # one vote per annotator per pair: their most recent annotation wins
            ratings[pair_id] = {r["annotator"]: r["choice"] for r in rows}
        return agreement_report(ratings)

    def position_bias(self) -> dict:
        """How often a decisive vote went to the response displayed as A (0.5 = no bias)."""
        rows = self._db.execute(
            "SELECT choice, shown_order FROM latest WHERE choice IN ('a', 'b') AND shown_order IS NOT NULL"
        ).fetchall()
        first = sum((r["choice"] == "a") == (r["shown_order"] == "ab") for r in rows)
        return {"decisive_votes": len(rows), "chose_shown_first": round(first / len(rows), 4) if rows else None}

    def export_trl(self, path: str | os.PathLike, include_pseudo: bool = False, include_ties: bool = False) -> int:
        from annotation.export import write_trl_jsonl

        return write_trl_jsonl(self, path, include_pseudo=include_pseudo, include_ties=include_ties)


def _pair_from_row(row: sqlite3.Row) -> PreferencePair:
    return PreferencePair(
        prompt=row["prompt"],
        response_a=row["response_a"],
        response_b=row["response_b"],
        pair_id=row["pair_id"],
        model=row["model"],
        predicted=row["predicted"],
        confidence=row["confidence"],
        metadata=json.loads(row["metadata"]),
    )


def _annotation_from_row(row: sqlite3.Row) -> Annotation:
    names = (
        "pair_id",
        "annotator",
        "choice",
        "kind",
        "source",
        "external_id",
        "version",
        "lead_time",
        "created_at",
        "task_id",
        "shown_order",
        "revision",
    )
    return Annotation(**{name: row[name] for name in names})
