"""How one Label Studio annotation becomes a ledger record (no server: the task dicts are what
Label Studio 1.23's /api/tasks/?fields=all returns)."""

import pytest

from annotation.pairs import PreferencePair
from annotation.pull import Rejection, interpret, read_choice
from annotation.push import displayed_label, prediction_for, shown_order, task_payload

SIM_USER, HUMAN_USER = 5, 6
EMAILS = {SIM_USER: "sim-1@simulated.mintline.invalid", HUMAN_USER: "someone@example.com"}


def annotation(label=None, cancelled=False, user=HUMAN_USER, extra_result=()):
    result = (
        []
        if label is None
        else [{"from_name": "preference", "to_name": "prompt", "type": "choices", "value": {"choices": [label]}}]
    )
    return {
        "id": 11,
        "result": result + list(extra_result),
        "was_cancelled": cancelled,
        "completed_by": user,
        "lead_time": 4.5,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:01Z",
    }


@pytest.mark.parametrize(
    "label, order, expected",
    [("A", "ab", "a"), ("B", "ab", "b"), ("A", "ba", "b"), ("B", "ba", "a"), ("Tie", "ba", "tie")],
)
def test_displayed_choice_maps_back_to_original_sides(label, order, expected):
    record = interpret({"id": 3}, annotation(label), "pair-1", order, EMAILS)
    assert record.choice == expected and record.shown_order == order and record.task_id == "3"
    assert record.external_id == "labelstudio:11" and record.revision == "2026-01-01T00:00:01Z"
    assert record.kind == "human" and record.annotator == "labelstudio:6" and record.lead_time == 4.5


def test_skips_and_simulated_users():
    skipped = interpret({"id": 3}, annotation(cancelled=True, user=SIM_USER), "pair-1", "ab", EMAILS)
    assert skipped.choice == "skip" and skipped.kind == "simulated"


def test_malformed_annotations_are_rejections_with_reasons():
    assert read_choice(annotation()) == (None, "no choice")
    assert read_choice(annotation("Maybe"))[1] == "unknown choice 'Maybe'"
    double = annotation(
        "A", extra_result=[{"from_name": "preference", "type": "choices", "value": {"choices": ["B"]}}]
    )
    assert read_choice(double)[1].startswith("several choices")
    rejected = interpret({"id": 3}, annotation(), "pair-1", "ab", EMAILS)
    assert isinstance(rejected, Rejection) and rejected.reason == "task 3: no choice"
    assert rejected.raw["task"] == 3 and rejected.raw["result"] == []
    unknown_order = interpret({"id": 3}, annotation("A"), "pair-1", None, EMAILS)
    assert isinstance(unknown_order, Rejection) and "order" in unknown_order.reason


def test_task_payload_shows_the_drawn_order_and_predicts_in_it():
    pair = PreferencePair("q", "resp-a", "resp-b", model="nano", predicted="a", confidence=0.62)
    orders = {shown_order(seed, pair.pair_id) for seed in range(40)}
    assert orders == {"ab", "ba"} and shown_order(3, pair.pair_id) == shown_order(3, pair.pair_id)
    for order in ("ab", "ba"):
        task = task_payload(pair, order, "rm-1")
        shown = (task["data"]["shown_a"], task["data"]["shown_b"])
        assert shown == (("resp-a", "resp-b") if order == "ab" else ("resp-b", "resp-a"))
        assert task["meta"] == {"mintline_pair_id": pair.pair_id, "shown_order": order}
        (prediction,) = task["predictions"]
        assert prediction["score"] == 0.62 and prediction["model_version"] == "rm-1"
        assert prediction["result"][0]["value"]["choices"] == [displayed_label("a", order)]
    assert displayed_label("a", "ba") == "B" and displayed_label("b", "ba") == "A"
    assert prediction_for(PreferencePair("q", "x", "y"), "ab", "rm") is None
