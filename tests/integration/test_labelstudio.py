"""`mintline annotate` against a real Label Studio server (started by .ci/labelstudio.py).

One project per module, in the order a team would use it: init, push with predictions, the
uncertainty queue, several simulated annotators working through the API, pull, edits, skips
and malformed annotations, export; the key must never land in any file or output.
"""

from __future__ import annotations

import json
import random
import uuid

import pytest

from annotation.labelstudio import LabelStudioClient
from annotation.labelstudio_annotators import annotate_project, choice_result
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair, write_pairs_jsonl
from annotation.simulated import SimulatedAnnotators

pytestmark = pytest.mark.labelstudio


def gold(prompt: str, response: str) -> float:
    return response.count("+") - response.count("-")


def make_pairs(n: int, seed: int) -> list[PreferencePair]:
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        better = "+" * rng.randint(1, 3) + f" answer {i} " + "-" * rng.randint(0, 1)
        worse = "-" * rng.randint(1, 3) + f" reply {i}"
        a, b = (better, worse) if rng.random() < 0.5 else (worse, better)
        predicted = "a" if gold("", a) > gold("", b) else "b"
        pairs.append(
            PreferencePair(
                f"question {i}?",
                a,
                b,
                model="nano-test",
                predicted=predicted,
                confidence=round(rng.uniform(0.5, 1.0), 4),
            )
        )
    return pairs


@pytest.fixture(scope="module")
def setup(label_studio, tmp_path_factory):
    url, key = label_studio
    root = tmp_path_factory.mktemp("labelstudio")
    state = {
        "url": url,
        "key": key,
        "run_dir": root / "run",
        "title": f"mintline test {uuid.uuid4().hex[:8]}",
        "pairs": make_pairs(30, seed=1),
        "more": make_pairs(35, seed=1)[30:],
        "root": root,
        "client": LabelStudioClient(url, key, retries=3, backoff=0.2),
    }
    write_pairs_jsonl(root / "pairs.jsonl", state["pairs"])
    write_pairs_jsonl(root / "more.jsonl", state["pairs"][:10] + state["more"])
    return state


def ledger_of(setup) -> Ledger:
    return Ledger(setup["run_dir"] / "annotate" / "ledger.sqlite")


def test_init_creates_the_project_once(cli, setup):
    args = ("--run_dir", setup["run_dir"], "--project_title", setup["title"], "--overlap", "2", "--json")
    first = cli("annotate", "init", *args)
    assert first.code == 0, first
    created = first.json()
    assert created["created"] is True and created["url"] == setup["url"]
    again = cli("annotate", "init", *args).json()
    assert again["created"] is False and again["project_id"] == created["project_id"]
    setup["project_id"] = created["project_id"]

    project = setup["client"].project(created["project_id"])
    config = project["label_config"]
    for needle in (
        '<Text name="prompt"',
        'name="shown_a"',
        'name="shown_b"',
        '<Choices name="preference"',
        'value="A"',
        'value="B"',
        'value="Tie"',
    ):
        assert needle in config
    assert project["show_skip_button"] is True and project["show_instruction"] is True
    assert "Tie" in project["expert_instruction"] and project["maximum_annotations"] == 2
    assert project["sampling"] == "Uncertainty sampling"


def test_push_creates_tasks_with_predictions_once(cli, setup):
    args = ("--run_dir", setup["run_dir"], "--project_title", setup["title"], "--model_version", "rm-test-1", "--json")
    pushed = cli("annotate", "push", setup["root"] / "pairs.jsonl", "--round", "0", *args)
    assert pushed.code == 0, pushed
    assert pushed.json()["pushed"] == 30 and pushed.json()["predictions_repaired"] == 0
    again = cli("annotate", "push", setup["root"] / "more.jsonl", "--round", "1", *args).json()
    assert again["pushed"] == 5 and again["already_there"] == 10  # the same pair twice: no second task

    client, project_id = setup["client"], setup["project_id"]
    assert client.project(project_id)["model_version"] == "rm-test-1"
    tasks = client.tasks_by_ids(project_id, [t["id"] for t in client.list_tasks(project_id, "id")])
    assert len(tasks) == 35
    by_pair = {p.pair_id: p for p in setup["pairs"] + setup["more"]}
    orders = set()
    for task in tasks:
        pair = by_pair[task["meta"]["mintline_pair_id"]]
        order = task["meta"]["shown_order"]
        orders.add(order)
        shown = (pair.response_a, pair.response_b) if order == "ab" else (pair.response_b, pair.response_a)
        assert (task["data"]["shown_a"], task["data"]["shown_b"]) == shown
        (prediction,) = task["predictions"]
        assert prediction["score"] == pytest.approx(pair.confidence) and prediction["model_version"] == "rm-test-1"
        predicted_shown = prediction["result"][0]["value"]["choices"][0]
        assert shown["AB".index(predicted_shown)] == (pair.response_a if pair.predicted == "a" else pair.response_b)
    assert orders == {"ab", "ba"}
    with ledger_of(setup) as ledger:
        assert ledger.counts()["tasks"] == 35 and ledger.counts()["requested"] == 35
        assert {row["shown_order"] for row in ledger.tasks().values()} == {"ab", "ba"}


def test_queue_serves_the_least_certain_pair_first(setup):
    task = setup["client"].next_task(setup["project_id"])
    least_certain = min(setup["pairs"] + setup["more"], key=lambda p: p.confidence)
    assert task["meta"]["mintline_pair_id"] == least_certain.pair_id


def test_a_personal_access_token_works_too(cli, setup, monkeypatch):
    tokens = setup["client"].sdk.tokens
    token = tokens.create().token  # a JWT refresh token; Label Studio allows one per user at a time
    try:
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
        found = cli("annotate", "init", "--run_dir", setup["run_dir"], "--project_title", setup["title"], "--json")
        assert found.code == 0, found
        assert found.json()["project_id"] == setup["project_id"]
        assert token not in found.out + found.err
    finally:
        tokens.blacklist(refresh=token)  # revoked, so the next run can create one again


def test_simulated_annotators_through_the_api_then_pull(cli, setup):
    client, project_id = setup["client"], setup["project_id"]
    sim = SimulatedAnnotators(gold, n_annotators=3, temperature=0.5, flip_rate=0.1, position_bias=0.3, seed=4)
    made = annotate_project(client, project_id, sim, annotators_per_task=2, skip_rate=0.1, workers=2)
    assert made["tasks"] == 35 and made["annotations"] + made["skips"] == 70

    pulled = cli("annotate", "pull", "--run_dir", setup["run_dir"], "--json")
    assert pulled.code == 0, pulled
    figures = pulled.json()
    assert figures["new"] == 70 and figures["skips"] == made["skips"] and figures["rejected"] == 0
    assert cli("annotate", "pull", "--run_dir", setup["run_dir"], "--json").json()["new"] == 0  # incremental

    tasks = client.tasks_by_ids(project_id, [t["id"] for t in client.list_tasks(project_id, "id")])
    with ledger_of(setup) as ledger:
        recorded = {a.external_id: a for a in ledger.annotations()}
        assert len(recorded) == 70
        for task in tasks:
            order = task["meta"]["shown_order"]
            for annotation in task["annotations"]:
                record = recorded[f"labelstudio:{annotation['id']}"]
                assert record.kind == "simulated" and record.task_id == str(task["id"])
                if annotation["was_cancelled"]:
                    assert record.choice == "skip"
                    continue
                shown = annotation["result"][0]["value"]["choices"][0]
                expected = {"Tie": "tie", "A": "a" if order == "ab" else "b", "B": "b" if order == "ab" else "a"}[
                    shown
                ]
                assert record.choice == expected and record.shown_order == order
        counts = ledger.counts()
        assert counts["simulated"] == made["annotations"] and counts["human"] == 0 and counts["annotators"] == 3
    status = cli("annotate", "status", "--run_dir", setup["run_dir"], "--label_budget", "100", "--json").json()
    assert status["agreement"]["items"] > 0 and status["agreement"]["fleiss_kappa"] is not None
    assert status["budget_used"] == made["annotations"] / 100


def test_edits_skips_unknown_and_deleted_tasks(cli, setup):
    client, project_id = setup["client"], setup["project_id"]
    tasks = client.tasks_by_ids(project_id, [t["id"] for t in client.list_tasks(project_id, "id")])
    decided = [t for t in tasks if any(not a["was_cancelled"] for a in t["annotations"])]
    edited_task, empty_task, deleted_task = decided[0], decided[1], decided[2]
    target = next(a for a in edited_task["annotations"] if not a["was_cancelled"])
    other = {"A": "B", "B": "A", "Tie": "A"}[target["result"][0]["value"]["choices"][0]]
    client.sdk.annotations.update(target["id"], result=choice_result(other))
    empty = client.sdk.annotations.create(empty_task["id"], result=[])  # submitted without a choice
    stray = client.sdk.projects.import_tasks(
        project_id, request=[{"data": {"prompt": "?", "shown_a": "x", "shown_b": "y"}}], return_task_ids=True
    ).task_ids[0]
    client.sdk.annotations.create(stray, result=choice_result("A"))  # a task mintline never pushed
    client.sdk.tasks.delete(str(deleted_task["id"]))

    figures = cli("annotate", "pull", "--run_dir", setup["run_dir"], "--json").json()
    assert figures["edited"] == 1 and figures["new"] == 0
    assert figures["deleted_tasks"] == 1 and figures["rejected"] == 3
    with ledger_of(setup) as ledger:
        versions = [a for a in ledger.annotations(latest_only=False) if a.external_id == f"labelstudio:{target['id']}"]
        assert [a.version for a in versions] == [1, 2]
        reasons = " | ".join(r["reason"] for r in ledger.rejected())
        assert f"task {empty_task['id']}: no choice" in reasons and f"labelstudio:{empty.id}" in {
            r["external_id"] for r in ledger.rejected()
        }
        assert f"task {stray}: unknown task" in reasons and f"task {deleted_task['id']} was deleted" in reasons
        assert ledger.counts()["deleted_tasks"] == 1
    again = cli("annotate", "pull", "--run_dir", setup["run_dir"], "--json").json()
    assert (again["new"], again["edited"], again["rejected"], again["deleted_tasks"]) == (0, 0, 0, 0)


def test_export_trl_with_provenance(cli, setup):
    exported = cli("annotate", "export", "--format", "trl", "--run_dir", setup["run_dir"], "--json")
    assert exported.code == 0, exported
    path = setup["run_dir"] / "annotate" / "preferences.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    with ledger_of(setup) as ledger:
        decisive = [label for label in ledger.labels() if label.choice != "tie"]
        assert len(rows) == exported.json()["rows"] == len(decisive)
        for row, label in zip(rows, decisive):
            pair = ledger.pair(label.pair_id)
            winner = pair.response_a if label.choice == "a" else pair.response_b
            assert row["chosen"] == winner and row["prompt"] == pair.prompt
            assert row["provenance"]["votes"] == label.votes and row["provenance"]["kind"] == "simulated"
            assert all(name.startswith("labelstudio:") for name in row["provenance"]["annotators"])


def test_the_key_is_never_written(setup):
    key = setup["key"].encode()
    for path in setup["run_dir"].rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), path


def test_pull_never_creates_a_project(cli, setup):
    run_dir = setup["root"] / "unbound"
    init_free = cli("annotate", "pull", "--run_dir", run_dir, "--project_title", f"absent {uuid.uuid4().hex}")
    assert init_free.code == 2 and "no ledger" in init_free.err  # nothing to pull into yet
    Ledger(run_dir / "annotate" / "ledger.sqlite").close()
    unbound = cli("annotate", "pull", "--run_dir", run_dir, "--project_title", f"absent {uuid.uuid4().hex}")
    assert unbound.code == 2 and "annotate init" in unbound.err and unbound.err.count("\n") == 1
