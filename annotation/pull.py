"""Pull annotations from Label Studio into the ledger: incremental, exactly once, all or nothing.

1. List the project's tasks with only (id, updated_at, annotation counts, meta): cheap.
2. Fetch in full only the tasks whose `updated_at` differs from what the ledger saw last time
   and that have annotations, plus ledger tasks missing from the listing (to confirm deletion).
3. Turn each annotation into an `Annotation` in the original a/b terms, or a rejection with a
   reason (no choice, unknown choice, unknown task); cancelled (skipped) ones become "skip".
4. Write everything in ONE ledger transaction: annotations (versions by revision = the
   annotation's updated_at, so an edit is a new version and a repeat is nothing), rejections,
   deleted tasks, and each task's new `updated_at`.

A pull killed at any point (even SIGKILL) has either written all of step 4 or nothing, and the
next pull redoes the rest; a server that fails mid-way leaves the ledger as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from annotation.labelstudio import CHOICE_LABELS, CONTROL, SIMULATED_EMAIL_DOMAIN, LabelStudioClient
from annotation.ledger import Annotation, Ledger, now_iso

log = logging.getLogger("annotation")
LISTING_FIELDS = "id,updated_at,total_annotations,cancelled_annotations,meta"


@dataclass
class Rejection:
    external_id: str
    reason: str
    raw: dict


def annotator_name(user_id) -> str:
    # Label Studio user ids, not e-mail addresses: exports carry provenance, not personal data.
    return f"labelstudio:{user_id}"


def read_choice(annotation: dict) -> tuple[str | None, str | None]:
    """("A"|"B"|"Tie", None) or (None, why not) from an annotation's result."""
    values = []
    for item in annotation.get("result") or []:
        if item.get("from_name") == CONTROL and item.get("type") == "choices":
            values.extend((item.get("value") or {}).get("choices") or [])
    if not values:
        return None, "no choice"
    if len(values) > 1:
        return None, f"several choices {values}"
    if values[0] not in CHOICE_LABELS:
        return None, f"unknown choice {values[0]!r}"
    return values[0], None


def interpret(
    task: dict, annotation: dict, pair_id: str, order: str | None, emails: dict[int, str]
) -> Annotation | Rejection:
    """One Label Studio annotation as a ledger Annotation (original a/b terms) or a Rejection."""
    external_id = f"labelstudio:{annotation['id']}"
    user = annotation.get("completed_by")
    email = emails.get(user, "") if isinstance(user, int) else ""
    common = dict(
        pair_id=pair_id,
        annotator=annotator_name(user),
        kind="simulated" if email.endswith("@" + SIMULATED_EMAIL_DOMAIN) else "human",
        source="labelstudio",
        external_id=external_id,
        lead_time=annotation.get("lead_time"),
        created_at=annotation.get("created_at"),
        task_id=str(task["id"]),
        shown_order=order,
        revision=annotation.get("updated_at") or annotation.get("created_at"),
    )
    if annotation.get("was_cancelled"):
        return Annotation(choice="skip", **common)
    label, problem = read_choice(annotation)
    if problem:
        return Rejection(external_id, f"task {task['id']}: {problem}", _raw(task, annotation))
    if order not in ("ab", "ba"):
        return Rejection(
            external_id, f"task {task['id']}: the displayed order of the responses is unknown", _raw(task, annotation)
        )
    verdict = CHOICE_LABELS[label]
    if verdict == "tie":
        choice = "tie"
    else:
        choice = "a" if (verdict == "first") == (order == "ab") else "b"
    return Annotation(choice=choice, **common)


def _raw(task: dict, annotation: dict) -> dict:
    keep = ("id", "result", "was_cancelled", "completed_by", "created_at", "updated_at", "lead_time")
    return {"task": task.get("id"), **{k: annotation.get(k) for k in keep}}


def pull_annotations(client: LabelStudioClient, ledger: Ledger, project_id: int) -> dict:
    """Bring new and edited annotations into the ledger; returns figures of what changed."""
    listing = {str(t["id"]): t for t in client.list_tasks(project_id, LISTING_FIELDS)}
    known = ledger.tasks(live_only=False)
    to_fetch = set()
    for task_id, row in listing.items():
        seen = known[task_id]["seen_updated_at"] if task_id in known else None
        has_annotations = (row.get("total_annotations") or 0) + (row.get("cancelled_annotations") or 0) > 0
        if has_annotations and row.get("updated_at") != seen:
            to_fetch.add(task_id)
    vanished = {task_id for task_id, row in known.items() if row["deleted_at"] is None and task_id not in listing}
    full = (
        {str(t["id"]): t for t in client.export_tasks(project_id, to_fetch | vanished)}
        if (to_fetch | vanished)
        else {}
    )
    deleted = sorted(vanished - set(full), key=int)
    emails = client.user_emails() if full else {}

    observed: list[Annotation] = []
    rejections: list[Rejection] = []
    adopted = []  # tasks the ledger lacks but whose pair it knows (a push killed before recording)
    for task_id, task in full.items():
        meta = task.get("meta") or {}
        if task_id in known:
            pair_id, order = known[task_id]["pair_id"], known[task_id]["shown_order"]
        elif meta.get("mintline_pair_id") and ledger.has_pair(meta["mintline_pair_id"]):
            pair_id, order = meta["mintline_pair_id"], meta.get("shown_order")
            adopted.append((task_id, pair_id, str(project_id), order, None))
        else:
            for annotation in task.get("annotations") or []:
                rejections.append(
                    Rejection(
                        f"labelstudio:{annotation['id']}",
                        f"task {task_id}: unknown task (no pair of this ledger)",
                        _raw(task, annotation),
                    )
                )
            continue
        for annotation in task.get("annotations") or []:
            result = interpret(task, annotation, pair_id, order, emails)
            (rejections if isinstance(result, Rejection) else observed).append(result)

    with ledger.transaction() as db:
        ledger.record_tasks(db, adopted)
        figures = ledger.record_revisions(db, observed)
        rejected = sum(ledger.record_rejected(r.external_id, r.reason, r.raw, db=db) for r in rejections)
        for task_id in deleted:
            db.execute("UPDATE tasks SET deleted_at = ? WHERE task_id = ?", (now_iso(), task_id))
            rejected += ledger.record_rejected(
                f"task:{task_id}", f"task {task_id} was deleted in Label Studio", {"task": task_id}, db=db
            )
        updates = [(row.get("updated_at"), task_id) for task_id, row in listing.items()]
        updates += [(task.get("updated_at"), task_id) for task_id, task in full.items()]
        db.executemany("UPDATE tasks SET seen_updated_at = ? WHERE task_id = ?", updates)
        ledger.set_meta({"labelstudio_last_pull": now_iso()}, db)
    return {
        "tasks_listed": len(listing),
        "tasks_fetched": len(full),
        "new": figures["new"],
        "edited": figures["edited"],
        "skips": figures["skips"],
        "rejected": rejected,
        "deleted_tasks": len(deleted),
    }
