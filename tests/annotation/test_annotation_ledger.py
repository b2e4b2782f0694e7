import json
import sqlite3

import pytest

from annotation.errors import LedgerError
from annotation.ledger import Annotation, Ledger


def vote(pair, annotator, choice, **kwargs):
    return Annotation(pair_id=pair.pair_id, annotator=annotator, choice=choice, **kwargs)


def test_ledger_is_wal_and_pairs_are_idempotent(ledger, pairs):
    assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.add_pairs(pairs, round=0) == 6
    assert ledger.add_pairs(pairs, round=1) == 0
    assert ledger.pair(pairs[2].pair_id) == pairs[2]
    assert ledger.pending() == [p.pair_id for p in pairs]
    with pytest.raises(LedgerError, match="no pair"):
        ledger.pair("nope")


def test_annotations_recorded_once_and_aggregated(ledger, pairs):
    ledger.add_pairs(pairs)
    p0, p1, p2, p3 = pairs[:4]
    batch = [
        vote(p0, "ann1", "a"),
        vote(p0, "ann2", "a"),
        vote(p0, "ann3", "b"),
        vote(p1, "ann1", "a"),
        vote(p1, "ann2", "b"),  # a draw: explicit tie
        vote(p2, "ann1", "skip"),  # a skip alone is not a label
        vote(p3, "ann1", "tie", kind="simulated", source="simulated"),
    ]
    assert ledger.record_annotations(batch) == 7
    assert ledger.record_annotations(batch) == 0  # same (external_id, version): once
    labels = {label.pair_id: label for label in ledger.labels()}
    assert labels[p0.pair_id].choice == "a" and labels[p0.pair_id].votes == {"a": 2, "b": 1, "tie": 0}
    assert labels[p0.pair_id].annotators == ["ann1", "ann2", "ann3"] and labels[p0.pair_id].kind == "human"
    assert labels[p1.pair_id].choice == "tie"
    assert labels[p3.pair_id].kind == "simulated"
    assert p2.pair_id not in labels and p2.pair_id in ledger.pending()
    counts = ledger.counts()
    assert counts["requested"] == 6 and counts["labelled"] == 3 and counts["pending"] == 2
    assert counts["skipped"] == 1 and counts["skips"] == 1
    assert counts["votes"] == 6 and counts["human"] == 5 and counts["simulated"] == 1
    assert [label.pair_id for label in ledger.labels(pair_ids=[p1.pair_id])] == [p1.pair_id]


def test_a_pair_every_annotator_skipped_counts_as_skipped_not_pending(ledger, pairs):
    ledger.add_pairs(pairs[:5])
    p0, p1, p2, p3, p4 = pairs[:5]
    ledger.record_annotations(
        [
            vote(p0, "ann1", "skip"),
            vote(p0, "ann2", "skip"),  # skipped by everyone who answered
            vote(p1, "ann1", "skip"),
            vote(p1, "ann2", "b"),  # one skip, one vote: labelled
            vote(p2, "ann1", "a"),
            vote(p3, "ann1", "skip", external_id="ls:9", version=1),
            vote(p3, "ann1", "a", external_id="ls:9", version=2),  # a skip edited into a vote: labelled
        ]
    )
    counts = ledger.counts()
    assert (counts["requested"], counts["labelled"], counts["pending"], counts["skipped"]) == (5, 3, 1, 1)
    assert counts["skips"] == 3  # latest annotations (p3's skip was edited away), where "skipped" counts pairs
    assert ledger.skipped_pairs() == [p0.pair_id]
    assert ledger.pending(include_skipped=False) == [p4.pair_id]
    # what a caller choosing the next pairs reads: the skipped pair is not to be asked for again
    assert ledger.pending() == [p0.pair_id, p4.pair_id]
    ledger.record_annotations([vote(p0, "ann3", "tie")])  # another annotator takes it up after all
    assert ledger.skipped_pairs() == [] and ledger.counts()["labelled"] == 4


def test_edits_are_new_versions_and_latest_wins(ledger, pairs):
    ledger.add_pairs(pairs[:1])
    p = pairs[0]
    with ledger.transaction() as db:
        first = ledger.record_revisions(db, [vote(p, "ann1", "a", external_id="ls:7", revision="t1")])
    with ledger.transaction() as db:
        again = ledger.record_revisions(db, [vote(p, "ann1", "a", external_id="ls:7", revision="t1")])
    with ledger.transaction() as db:
        edit = ledger.record_revisions(db, [vote(p, "ann1", "b", external_id="ls:7", revision="t2")])
    assert (first["new"], again["unchanged"], edit["edited"]) == (1, 1, 1)
    history = ledger.annotations(latest_only=False)
    assert [(a.version, a.choice) for a in history] == [(1, "a"), (2, "b")]
    assert [a.choice for a in ledger.annotations()] == ["b"]
    assert ledger.labels()[0].choice == "b" and ledger.counts()["edits"] == 1


def test_a_failing_write_leaves_nothing(ledger, pairs):
    ledger.add_pairs(pairs[:1])
    good = vote(pairs[0], "ann1", "a")
    orphan = Annotation(pair_id="unknown-pair", annotator="ann1", choice="a")
    with pytest.raises(LedgerError, match="does not hold"):
        ledger.record_annotations([good, orphan])
    assert ledger.counts()["annotations"] == 0  # the whole transaction rolled back


def test_rejections_and_pseudo_labels_are_counted_apart(ledger, pairs, tmp_path):
    ledger.add_pairs(pairs[:2])
    ledger.record_rejected("ls:9", "task 3: no choice", {"result": []})
    ledger.record_rejected("ls:9", "task 3: no choice", {"result": []})
    assert ledger.rejected()[0]["reason"] == "task 3: no choice" and ledger.counts()["rejected"] == 1
    # pseudo labels for pairs never requested: with their text (pairs=) or without
    assert (
        ledger.record_pseudo_labels(
            [(pairs[2].pair_id, "b", 0.97), (pairs[0].pair_id, "a", 0.9)], model="rm-1", pairs=[pairs[2]]
        )
        == 2
    )
    assert ledger.record_pseudo_labels([(pairs[2].pair_id, "b", 0.97)], model="rm-1") == 0
    assert ledger.record_pseudo_labels([("text-unknown", "a", 0.8)], model="rm-1") == 1
    with pytest.raises(LedgerError, match="choice"):
        ledger.record_pseudo_labels([(pairs[3].pair_id, "tie", 0.9)], model="rm-1")
    assert ledger.labels() == []
    pseudo = {label.pair_id: label for label in ledger.labels(include_pseudo=True)}
    assert pseudo[pairs[2].pair_id].kind == "pseudo" and pseudo[pairs[2].pair_id].confidence == 0.97
    assert "text-unknown" in pseudo and pairs[3].pair_id not in pseudo
    counts = ledger.counts()
    assert counts["pseudo"] == 3 and counts["requested"] == 2 and counts["labelled"] == 0
    assert ledger.pending() == [pairs[0].pair_id, pairs[1].pair_id]  # pseudo labels are not human labels
    out = tmp_path / "pseudo.jsonl"
    assert ledger.export_trl(out, include_pseudo=True) == 2  # the pair without text is left out
    assert ledger.export_trl(out) == 0


def test_export_trl_with_provenance(ledger, pairs, tmp_path):
    ledger.add_pairs(pairs[:3])
    ledger.record_annotations(
        [
            vote(pairs[0], "ann1", "b", shown_order="ba"),
            vote(pairs[0], "ann2", "b"),
            vote(pairs[1], "ann1", "tie"),
            vote(pairs[2], "ann1", "a"),
        ]
    )
    out = tmp_path / "prefs.jsonl"
    assert ledger.export_trl(out) == 2  # the tie is left out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["prompt"] == pairs[0].prompt
    assert (rows[0]["chosen"], rows[0]["rejected"]) == (pairs[0].response_b, pairs[0].response_a)
    assert rows[0]["provenance"] == {
        "kind": "human",
        "label": "b",
        "votes": {"a": 0, "b": 2, "tie": 0},
        "annotators": ["ann1", "ann2"],
        "confidence": None,
    }
    assert (rows[1]["chosen"], rows[1]["rejected"]) == (pairs[2].response_a, pairs[2].response_b)
    assert ledger.export_trl(out, include_ties=True) == 3
    assert ledger.position_bias() == {"decisive_votes": 1, "chose_shown_first": 1.0}


def test_agreement_over_latest_votes(ledger, pairs):
    ledger.add_pairs(pairs[:3])
    ledger.record_annotations(
        [vote(p, name, c) for p, c1, c2 in zip(pairs, "aab", "abb") for name, c in (("x", c1), ("y", c2))]
    )
    report = ledger.agreement()
    assert report["items"] == 3 and report["method"] == "cohen"
    assert report["percent_agreement"] == pytest.approx(2 / 3, abs=1e-4)


def test_a_pair_id_cannot_change_meaning(ledger, pairs):
    ledger.add_pairs(pairs[:1])
    clash = type(pairs[0])("other prompt", "x", "y", pair_id=pairs[0].pair_id)
    with pytest.raises(LedgerError, match="different pair"):
        ledger.add_pairs([clash])


def test_a_corrupt_file_is_a_typed_error(tmp_path):
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(LedgerError, match="cannot open the label ledger"):
        Ledger(path)


def test_bad_annotation_values_are_refused():
    with pytest.raises(LedgerError, match="choice"):
        Annotation(pair_id="p", annotator="x", choice="maybe")
    with pytest.raises(LedgerError, match="kind"):
        Annotation(pair_id="p", annotator="x", choice="a", kind="robot")
    assert Annotation(pair_id="p", annotator="x", choice="A").external_id == "labelstudio:x:p"
    assert sqlite3.sqlite_version_info >= (3, 24)  # upserts (ON CONFLICT DO UPDATE) need 3.24
