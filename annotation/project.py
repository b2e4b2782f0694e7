"""Which Label Studio project a ledger belongs to.

A project's predictions order its queue (least certain first: `/next/`, and in the browser a first
Data Manager tab sorted by prediction score) but are never shown to annotators: a project found
or bound with `show_collab_predictions` on has it turned off.

A ledger is bound to one project on one server (its URL and project id live in the ledger's
meta table; the API key never does). Mixing two projects' task ids in one ledger would map
annotations to the wrong pairs, so a ledger bound elsewhere is refused unless the user names
the project explicitly (`project_id`), e.g. after the server moved to a new address.
"""

from __future__ import annotations

import logging

from annotation.config import LabelStudioSettings
from annotation.errors import LabelStudioError, LedgerError
from annotation.labelstudio import LabelStudioClient, check_label_config
from annotation.ledger import Ledger

log = logging.getLogger("annotation")


def bound_project(ledger: Ledger) -> tuple[str | None, int | None]:
    project = ledger.get_meta("labelstudio_project")
    return ledger.get_meta("labelstudio_url"), (int(project) if project else None)


def bind_project(
    client: LabelStudioClient,
    ledger: Ledger,
    settings: LabelStudioSettings,
    model_version: str,
    overlap: int = 1,
    create: bool = True,
) -> tuple[int, bool]:
    """(project id, created?) for this ledger: the bound one, the one named, found by title, or a new one."""
    bound_url, bound_id = bound_project(ledger)
    created = False
    if settings.project_id is not None:
        project_id = settings.project_id
        title = _check_existing(client, project_id).get("title", "")
        if bound_id is not None and (bound_id, bound_url) != (project_id, client.url):
            log.warning(
                "ledger %s: re-bound from project %s at %s to project %s at %s",
                ledger.path,
                bound_id,
                bound_url,
                project_id,
                client.url,
            )
    elif bound_id is not None:
        if bound_url != client.url:
            raise LedgerError(
                f"ledger {ledger.path} belongs to project {bound_id} at {bound_url}, not to {client.url}; "
                "use another run_dir, or give project_id to re-bind it"
            )
        _check_existing(client, bound_id)
        return bound_id, False  # already bound: the ledger is not touched
    else:
        title = settings.project_title
        found = client.find_projects(title)
        if len(found) > 1:
            raise LabelStudioError(
                f"{len(found)} projects titled {title!r} at {client.url} (ids {', '.join(map(str, found))}); "
                "give project_id to choose one"
            )
        if found:
            project_id = found[0]
            _check_existing(client, project_id)
        elif not create:
            raise LedgerError(
                f"ledger {ledger.path} is not bound to a Label Studio project and none is titled {title!r} at "
                f"{client.url}: run `mintline annotate init` first"
            )
        else:
            project_id = client.create_project(title, model_version, overlap)
            client.ensure_queue_view(project_id)
            created = True
    if (bound_id, bound_url) != (project_id, client.url):
        ledger.set_meta(
            {"labelstudio_url": client.url, "labelstudio_project": str(project_id), "labelstudio_title": title}
        )
    return project_id, created


def _check_existing(client: LabelStudioClient, project_id: int) -> dict:
    try:
        project = client.project(project_id)
    except LabelStudioError as exc:
        if exc.status == 404:
            raise LabelStudioError(f"no project {project_id} at {client.url} (deleted?)", 404) from None
        raise
    check_label_config(project.get("label_config", ""), project_id, client.url)
    if project.get("show_collab_predictions"):
        # Projects made before predictions were hidden (or changed by hand): predictions are for the queue only.
        client.hide_predictions(project_id, project.get("model_version"))
        log.warning(
            "project %s at %s showed the reward model's predictions to annotators; they are hidden now",
            project_id,
            client.url,
        )
    client.ensure_queue_view(project_id)
    return project
