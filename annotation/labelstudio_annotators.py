"""Simulated annotators working inside Label Studio, through its API, as people would.

For integration tests, benchmarks and demos without people: each simulated annotator is a
Label Studio user whose e-mail is in the reserved `simulated.mintline.invalid` domain (so
every annotation they make is pulled into the ledger as kind="simulated"), reads the task as
displayed (prompt, response A, response B) and submits A / B / Tie, or skips.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from annotation.labelstudio import CONTROL, SIMULATED_EMAIL_DOMAIN, TO_NAME, LabelStudioClient
from annotation.simulated import SimulatedAnnotators, keyed_rng

log = logging.getLogger("annotation")
VERDICT_LABEL = {"first": "A", "second": "B", "tie": "Tie"}


def simulated_email(name: str) -> str:
    return f"{name}@{SIMULATED_EMAIL_DOMAIN}"


def ensure_simulated_users(client: LabelStudioClient, annotators: SimulatedAnnotators) -> list[int]:
    """Label Studio user ids of the simulated annotators, creating the users that are missing."""
    existing = {email: user_id for user_id, email in client.user_emails().items()}
    ids = []
    for profile in annotators.profiles:
        email = simulated_email(profile.name)
        if email not in existing:

            def create(profile=profile, email=email):
                # a retry first looks again: the lost answer may have been a success
                return (
                    existing.get(email)
                    or client.sdk.users.create(
                        email=email, username=profile.name, first_name="Simulated", last_name=profile.name
                    ).id
                )

            def look_again():
                existing.update({e: i for i, e in client.user_emails().items()})

            existing[email] = client.retrying(f"creating user {email}", create, before_retry=look_again)
        ids.append(existing[email])
    return ids


def choice_result(label: str) -> list[dict]:
    return [{"from_name": CONTROL, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}]


def annotate_project(
    client: LabelStudioClient,
    project_id: int,
    annotators: SimulatedAnnotators,
    annotators_per_task: int = 1,
    skip_rate: float = 0.0,
    task_ids: list[int] | None = None,
    workers: int = 4,
) -> dict:
    """Every simulated annotator chosen for a task submits (or skips) it; returns counts."""
    user_ids = ensure_simulated_users(client, annotators)
    tasks = client.list_tasks(project_id, "id,data,meta,total_annotations,cancelled_annotations")
    if task_ids is not None:
        wanted = {int(t) for t in task_ids}
        tasks = [t for t in tasks if int(t["id"]) in wanted]
    jobs = []
    for task in tasks:
        if (task.get("total_annotations") or 0) + (task.get("cancelled_annotations") or 0) > 0:
            continue  # already annotated: a re-run does not add a second round
        data = task.get("data") or {}
        key = (task.get("meta") or {}).get("mintline_pair_id") or str(task["id"])
        for index in annotators.annotators_for(key, annotators_per_task):
            rng = keyed_rng("labelstudio", annotators.seed, key, index)
            if rng.random() < skip_rate:
                jobs.append((task["id"], user_ids[index], None, rng.uniform(2, 20)))
                continue
            verdict = annotators.vote(
                data.get("prompt", ""), data.get("shown_a", ""), data.get("shown_b", ""), index, key
            )
            jobs.append((task["id"], user_ids[index], VERDICT_LABEL[verdict], rng.uniform(5, 90)))

    def submit(job):
        task_id, user_id, label, lead_time = job
        if label is None:  # the Skip button: a cancelled annotation with an empty result
            call = lambda: client.sdk.annotations.create(
                task_id,
                result=[],
                was_cancelled=True,  # noqa: E731
                completed_by=user_id,
                lead_time=lead_time,
            )
        else:
            call = lambda: client.sdk.annotations.create(
                task_id,
                result=choice_result(label),  # noqa: E731
                completed_by=user_id,
                lead_time=lead_time,
            )
        client.retrying(f"annotating task {task_id}", call)
        return label

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        labels = list(pool.map(submit, jobs))
    return {
        "tasks": len({j[0] for j in jobs}),
        "annotations": sum(label is not None for label in labels),
        "skips": sum(label is None for label in labels),
    }
