"""Push preference pairs to Label Studio as tasks, each with the reward model's prediction.

* Dedupe: the server is asked which pair ids its project already holds (task `meta`), so the
  same pair pushed twice, or a push re-run after a crash, creates no second task.
* Order: which response is displayed as A is drawn from (seed, pair_id) and recorded in the
  task's meta and in the ledger, so position bias can be measured and choices mapped back.
* Queue: each task carries one inline prediction (the predicted side as displayed, `score` =
  the reward model's confidence, the push's `model_version`), and the project's model_version
  is set to match, so Label Studio's uncertainty sampling serves the least certain pair first.
  Inline, because bulk `import_predictions` silently drops predictions for some tags; the
  number created is checked and any missing prediction is created per task.
* Atomicity: a batch is recorded in the ledger (pairs + task ids, one transaction) only after
  Label Studio confirmed it; tasks that arrived while their answer got lost are found by the
  next listing and recorded then.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

from tqdm.auto import tqdm

from annotation.errors import LabelStudioError
from annotation.labelstudio import CONTROL, TO_NAME, LabelStudioClient
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair

log = logging.getLogger("annotation")
LISTING_FIELDS = "id,meta,total_predictions"


def shown_order(seed: int, pair_id: str) -> str:
    """ "ab" (response_a shown as A) or "ba", a fair coin keyed by (seed, pair_id)."""
    digest = hashlib.sha256(f"order\0{seed}\0{pair_id}".encode()).digest()
    return "ab" if digest[0] & 1 == 0 else "ba"


def displayed_label(side: str, order: str) -> str:
    """The button ("A"/"B") under which the original response `side` ("a"/"b") is displayed."""
    return "A" if (side == "a") == (order == "ab") else "B"


def prediction_for(pair: PreferencePair, order: str, model_version: str) -> dict | None:
    if pair.predicted is None or pair.confidence is None:
        return None
    return {
        "model_version": model_version,
        "score": float(pair.confidence),
        "result": [
            {
                "from_name": CONTROL,
                "to_name": TO_NAME,
                "type": "choices",
                "value": {"choices": [displayed_label(pair.predicted, order)]},
            }
        ],
    }


def task_payload(pair: PreferencePair, order: str, model_version: str) -> dict:
    first, second = (pair.response_a, pair.response_b) if order == "ab" else (pair.response_b, pair.response_a)
    task = {
        "data": {
            "prompt": pair.prompt,
            "shown_a": first,
            "shown_b": second,
            "pair_id": pair.pair_id,
            "model": pair.model,
        },
        "meta": {"mintline_pair_id": pair.pair_id, "shown_order": order},
    }
    prediction = prediction_for(pair, order, model_version)
    if prediction is not None:
        task["predictions"] = [prediction]
    return task


def server_pairs(client: LabelStudioClient, project_id: int) -> dict[str, dict]:
    """{pair_id: listing row} of the project's tasks that mintline pushed (first task per pair)."""
    found: dict[str, dict] = {}
    for task in sorted(client.list_tasks(project_id, LISTING_FIELDS), key=lambda t: t["id"]):
        pair_id = (task.get("meta") or {}).get("mintline_pair_id")
        if pair_id and pair_id not in found:
            found[pair_id] = task
    return found


def push_pairs(
    client: LabelStudioClient,
    ledger: Ledger,
    project_id: int,
    pairs: Sequence[PreferencePair],
    *,
    seed: int = 0,
    model_version: str = "mintline-reward-model",
    round: int | None = None,
    batch_size: int = 250,
) -> dict:
    """Create the tasks Label Studio lacks; returns figures (pushed, already_there, predictions...)."""
    unique = list({p.pair_id: p for p in pairs}.values())
    on_server = server_pairs(client, project_id)
    figures = {"pairs": len(unique), "pushed": 0, "already_there": 0, "predictions": 0, "predictions_repaired": 0}

    # Pairs the server already holds: make sure the ledger knows their tasks (a crashed push).
    present = [p for p in unique if p.pair_id in on_server]
    figures["already_there"] = len(present)
    _record(ledger, project_id, model_version, round, [(p, on_server[p.pair_id]) for p in present])
    figures["predictions_repaired"] += _repair_predictions(
        client, [(p, on_server[p.pair_id]) for p in present], model_version
    )

    missing = [p for p in unique if p.pair_id not in on_server]
    with tqdm(total=len(missing), desc="push", unit="task") as bar:
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            created = _import_batch(client, project_id, batch, seed, model_version)
            rows = [(p, created[p.pair_id]) for p in batch]
            figures["predictions_repaired"] += _repair_predictions(client, rows, model_version)
            _record(ledger, project_id, model_version, round, rows)
            figures["pushed"] += len(batch)
            bar.update(len(batch))
    figures["predictions"] = sum(1 for p in unique if p.predicted is not None and p.confidence is not None)
    # After the import: Label Studio accepts a model_version only once predictions carry it.
    if figures["predictions"] and client.project(project_id).get("model_version") != model_version:
        client.set_model_version(project_id, model_version)
    figures["model_version"] = model_version
    return figures


def _import_batch(client, project_id, batch, seed, model_version) -> dict[str, dict]:
    """Import one batch; returns {pair_id: listing row} for every pair of the batch."""
    wanted = {p.pair_id for p in batch}
    arrived: dict[str, dict] = {}

    def look_again():
        # The previous try may have created some or all tasks before its answer was lost.
        arrived.clear()
        arrived.update({k: v for k, v in server_pairs(client, project_id).items() if k in wanted})

    def attempt():
        todo = [p for p in batch if p.pair_id not in arrived]
        if todo:
            payload = [task_payload(p, shown_order(seed, p.pair_id), model_version) for p in todo]
            answer = client.sdk.projects.import_tasks(project_id, request=payload, return_task_ids=True)
            task_ids = list(answer.task_ids or [])
            if len(task_ids) != len(todo):
                raise LabelStudioError(
                    f"Label Studio at {client.url} created {len(task_ids)} tasks for {len(todo)} pairs"
                )
            listing = client.tasks_by_ids(project_id, task_ids, include=LISTING_FIELDS)
            for task in listing:
                pair_id = (task.get("meta") or {}).get("mintline_pair_id")
                if pair_id in wanted:
                    arrived[pair_id] = task
        lost = wanted - set(arrived)
        if lost:
            raise LabelStudioError(
                f"Label Studio at {client.url} did not keep {len(lost)} imported tasks of project {project_id}"
            )
        return dict(arrived)

    return client.retrying(f"importing {len(batch)} tasks into project {project_id}", attempt, before_retry=look_again)


def _repair_predictions(client, rows, model_version) -> int:
    """Create, one by one, predictions Label Studio did not keep from the import."""
    repaired = 0
    for pair, task in rows:
        order = (task.get("meta") or {}).get("shown_order", "ab")
        prediction = prediction_for(pair, order, model_version)
        if prediction is None or (task.get("total_predictions") or len(task.get("predictions") or [])):
            continue
        client.retrying(
            f"creating the prediction of task {task['id']}",
            lambda: client.sdk.predictions.create(
                task=task["id"], result=prediction["result"], score=prediction["score"], model_version=model_version
            ),
        )
        repaired += 1
    if repaired:
        log.warning("Label Studio at %s dropped %d inline predictions; created them one by one", client.url, repaired)
    return repaired


def _record(ledger: Ledger, project_id, model_version, round, rows) -> None:
    if not rows:
        return
    with ledger.transaction() as db:
        ledger.record_pairs(db, [p for p, _ in rows], round)
        ledger.record_tasks(
            db,
            [
                (
                    str(task["id"]),
                    p.pair_id,
                    str(project_id),
                    (task.get("meta") or {}).get("shown_order"),
                    model_version,
                )
                for p, task in rows
            ],
        )
