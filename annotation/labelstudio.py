"""Label Studio through `label-studio-sdk` 2.x: the project, retries with back-off, task listings.

Retries are ours, not the SDK's (`max_retries=0`): the SDK would also re-send a task import
whose first answer was lost, creating duplicate tasks, and it does not retry read timeouts.
Here a failed request is retried with exponential back-off and jitter; a non-idempotent call
may pass `before_retry` to look at the server's state first (push uses it to drop tasks that
did arrive). When every try fails, one `LabelStudioUnavailable` names the URL and the cause.

Task listings go through the SDK's authenticated HTTP client as plain JSON (the Data Manager
`/api/tasks/` endpoint with `include=` and `query=`): parsing thousands of tasks into pydantic
models would cost more than the request, and `/api/projects/{id}/next/` has no SDK method.
Full tasks come from the project export endpoint with `ids[]` (3x faster than the Data Manager
with `fields=all` on 1.23.2; the SDK's `exports.download_sync` sends `ids`, which the server
ignores), falling back to the Data Manager where that endpoint is gone (Enterprise).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from annotation.config import Secret, resolve_api_key, resolve_url
from annotation.errors import LabelStudioError, LabelStudioUnavailable

log = logging.getLogger("annotation")

CONTROL = "preference"  # the Choices tag annotators answer with
TO_NAME = "prompt"
CHOICE_LABELS = {"A": "first", "B": "second", "Tie": "tie"}
SIMULATED_EMAIL_DOMAIN = "simulated.mintline.invalid"  # Label Studio users that are simulated annotators
QUEUE_VIEW = "Least certain first"  # the Data Manager tab whose order the browser's labelling stream follows
PREDICTION_COLUMNS = ["tasks:predictions_score", "tasks:predictions_model_versions", "tasks:predictions_results"]

LABEL_CONFIG = """<View>
  <Style>.mintline-text { white-space: pre-wrap; font-family: monospace; }</Style>
  <Header value="Prompt"/>
  <View className="mintline-text"><Text name="prompt" value="$prompt"/></View>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1;">
      <Header value="Response A"/>
      <View className="mintline-text"><Text name="shown_a" value="$shown_a"/></View>
    </View>
    <View style="flex: 1;">
      <Header value="Response B"/>
      <View className="mintline-text"><Text name="shown_b" value="$shown_b"/></View>
    </View>
  </View>
  <Header value="Which response is better?"/>
  <Choices name="preference" toName="prompt" choice="single-radio" required="true" showInline="true">
    <Choice value="A" hotkey="1"/>
    <Choice value="B" hotkey="2"/>
    <Choice value="Tie" hotkey="3"/>
  </Choices>
</View>"""

INSTRUCTIONS = (
    "<p>Read the prompt, then both responses. Choose <b>A</b> or <b>B</b> for the response that answers "
    "the prompt better: correct, helpful, clear. Choose <b>Tie</b> only when neither is better.</p>"
    "<p>Judge the content, not the position or the length. <b>Skip</b> a task you cannot judge.</p>"
)


class LabelStudioClient:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | Secret | None = None,
        *,
        api_key_file: str | None = None,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        from label_studio_sdk import LabelStudio

        self.url = resolve_url(url)
        key = resolve_api_key(api_key, api_key_file)
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self._sleep = sleep
        from label_studio_sdk.core.api_error import ApiError

        try:
            self.sdk = LabelStudio(base_url=self.url, api_key=key.reveal(), timeout=timeout, max_retries=0)
        except ApiError as exc:  # the SDK checks a personal access token's expiry up front
            raise LabelStudioError(
                f"Label Studio API key for {self.url} refused: {_detail(exc.body)}", exc.status_code
            ) from None

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r})"

    # -- retries ---------------------------------------------------------------------------
    def retrying(self, what: str, call: Callable[[], Any], before_retry: Callable[[], Any] | None = None) -> Any:
        """Run `call`, retrying transient failures with back-off; permanent ones raise at once."""
        started = time.monotonic()
        reason = "no answer"
        for attempt in range(self.retries + 1):
            try:
                if attempt and before_retry is not None:
                    before_retry()
                return call()
            except Exception as exc:  # noqa: BLE001 - sorted into transient / permanent below
                reason = self._transient_reason(exc, what)
            if attempt < self.retries:
                delay = min(self.max_backoff, self.backoff * 2**attempt) * (1 + 0.2 * random.random())
                log.info("Label Studio at %s: %s failed (%s); retrying in %.1f s", self.url, what, reason, delay)
                self._sleep(delay)
        raise LabelStudioUnavailable(
            f"Label Studio at {self.url} did not answer {what}: {reason} "
            f"(gave up after {self.retries + 1} tries in {time.monotonic() - started:.1f} s)"
        )

    def _transient_reason(self, exc: Exception, what: str) -> str:
        """A short reason if `exc` is worth retrying; raises LabelStudioError if it is not."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
            raise LabelStudioError(f"cannot reach Label Studio at {self.url}: {exc}") from None
        if isinstance(exc, httpx.TimeoutException):
            return f"timed out after {self.timeout:g} s"
        if isinstance(exc, httpx.ConnectError):
            return "connection refused or host unreachable"
        if isinstance(exc, httpx.TransportError):
            return f"connection failed ({type(exc).__name__})"
        if isinstance(exc, json.JSONDecodeError):
            return "the answer was not JSON"
        if isinstance(exc, ApiError):
            status = exc.status_code or 0
            if status >= 500 or status in (408, 429):
                return f"HTTP {status}"
            if status in (401, 403):
                raise LabelStudioError(
                    f"Label Studio at {self.url} refused the API key (HTTP {status}) for {what}", status
                ) from None
            detail = _detail(exc.body)
            raise LabelStudioError(
                f"Label Studio at {self.url} refused {what} (HTTP {status}{': ' + detail if detail else ''})", status
            ) from None
        if type(exc).__name__ in ("ParsingError", "ValidationError"):
            return "the answer did not have the expected shape"
        raise exc

    # -- plain JSON requests through the SDK's authenticated client ------------------------
    def request_json(self, method: str, path: str, params: dict | None = None, body: Any = None) -> Any:
        from label_studio_sdk.core.api_error import ApiError

        response = self.sdk._client_wrapper.httpx_client.request(path, method=method, params=params, json=body)
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = response.text[:200]
            raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=payload)
        return response.json() if response.content else None

    def get_json(self, what: str, path: str, params: dict | None = None) -> Any:
        return self.retrying(what, lambda: self.request_json("GET", path, params))

    # -- projects ----------------------------------------------------------------------------
    def find_projects(self, title: str) -> list[int]:
        def call():
            return [p.id for p in self.sdk.projects.list(title=title, page_size=100) if p.title == title]

        return self.retrying(f"the project list (title {title!r})", call)

    def project(self, project_id: int) -> dict:
        return self.get_json(f"project {project_id}", f"api/projects/{project_id}/")

    def create_project(self, title: str, model_version: str, overlap: int = 1) -> int:
        def call():
            return self.sdk.projects.create(
                title=title,
                description="Pairwise preference labels for mintline (prompt, response A, response B).",
                label_config=LABEL_CONFIG,
                expert_instruction=INSTRUCTIONS,
                show_instruction=True,
                show_skip_button=True,
                maximum_annotations=overlap,
                sampling="Uncertainty sampling",
                model_version=model_version,
                # Predictions order the queue but are never shown: a pre-selected answer anchors
                # annotators to the reward model they are meant to correct.
                show_collab_predictions=False,
            ).id

        # A lost answer to a create could leave a project behind: look before creating again.
        found: list[int] = []
        project_id = self.retrying(
            f"creating project {title!r}",
            lambda: found[0] if found else call(),
            before_retry=lambda: found.extend(self.find_projects(title)[:1]),
        )
        return int(project_id)

    def hide_predictions(self, project_id: int, model_version: str | None) -> None:
        """Stop showing predictions to annotators, keeping `model_version` (the queue's order).

        Label Studio clears a project's model_version when show_collab_predictions is turned off,
        unless the same request sets it again; so both go in one request.
        """
        fields = {"show_collab_predictions": False}
        if model_version:
            fields["model_version"] = model_version
        self.retrying(
            f"hiding predictions in project {project_id}", lambda: self.sdk.projects.update(project_id, **fields)
        )

    def ensure_queue_view(self, project_id: int) -> bool:
        """Give the project a first Data Manager tab ordered by prediction score; True if it was made now.

        In the browser, "Label All Tasks" sends the open tab's filters, so Label Studio (1.23)
        serves tasks in that tab's order and never consults uncertainty sampling, which only the
        `/next/` API follows. Ordered by ascending score, the tab serves the least certain pair
        first there too; its prediction columns are hidden, so the table shows no model answer.
        """

        def tabs() -> list[dict]:
            return self.get_json(
                f"the Data Manager tabs of project {project_id}", "api/dm/views/", {"project": project_id}
            )

        def has_queue_view(views: list[dict]) -> bool:
            return any((view.get("data") or {}).get("title") == QUEUE_VIEW for view in views)

        views = tabs()
        if has_queue_view(views):
            return False
        data = {
            "title": QUEUE_VIEW,
            "ordering": ["tasks:predictions_score"],
            "hiddenColumns": {"explore": PREDICTION_COLUMNS, "labeling": PREDICTION_COLUMNS},
        }
        body = {
            "project": project_id,
            "data": data,
            "order": min([view.get("order") or 0 for view in views], default=0) - 1,
        }  # before any other tab
        arrived: list[bool] = []  # a retry first looks again: the lost answer may have been a success
        self.retrying(
            f"creating the queue tab of project {project_id}",
            lambda: arrived or self.request_json("POST", "api/dm/views/", body=body),
            before_retry=lambda: arrived.extend([True] if has_queue_view(tabs()) else []),
        )
        return True

    def set_model_version(self, project_id: int, model_version: str) -> None:
        self.retrying(
            f"setting model_version of project {project_id}",
            lambda: self.sdk.projects.update(project_id, model_version=model_version),
        )

    def next_task(self, project_id: int) -> dict | None:
        """The task Label Studio's queue serves next to this user (None when the queue is empty)."""
        try:
            return self.retrying(
                f"the next task of project {project_id}",
                lambda: self.request_json("GET", f"api/projects/{project_id}/next/"),
            )
        except LabelStudioError as exc:
            if exc.status == 404:
                return None
            raise

    def user_emails(self) -> dict[int, str]:
        return self.retrying("the user list", lambda: {u.id: (u.email or "") for u in self.sdk.users.list()})

    # -- tasks -------------------------------------------------------------------------------
    def list_tasks(self, project_id: int, include: str, page_size: int = 1000) -> list[dict]:
        """Every task of a project, with only the `include`d fields (id always)."""
        tasks: list[dict] = []
        page = 1
        while True:
            params = {"project": project_id, "page": page, "page_size": page_size, "include": include}
            try:
                answer = self.get_json(f"tasks of project {project_id} (page {page})", "api/tasks/", params)
            except LabelStudioError as exc:
                if page > 1 and exc.status == 404:  # past the last page
                    break
                raise
            batch = answer.get("tasks", [])
            tasks.extend(batch)
            if not batch or len(tasks) >= answer.get("total", 0):
                break
            page += 1
        return tasks

    def tasks_by_ids(
        self, project_id: int, task_ids: Iterable[int], batch: int = 200, include: str | None = None
    ) -> list[dict]:
        """Tasks with the given ids (in full, or only the `include`d fields); missing ids are absent."""
        ids = sorted({int(t) for t in task_ids})
        tasks: list[dict] = []
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            query = json.dumps({"selectedItems": {"all": False, "included": chunk}})
            params = {"project": project_id, "page_size": len(chunk), "query": query}
            params.update({"include": include} if include else {"fields": "all"})
            answer = self.get_json(f"{len(chunk)} tasks of project {project_id}", "api/tasks/", params)
            tasks.extend(answer.get("tasks", []))
        return tasks

    def export_tasks(self, project_id: int, task_ids: Iterable[int], batch: int = 400) -> list[dict]:
        """Full tasks (data, meta, annotations) for the given ids; ids that do not exist are absent."""
        ids = sorted({int(t) for t in task_ids})
        tasks: list[dict] = []
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            params = {"exportType": "JSON", "download_all_tasks": "true", "ids[]": chunk}
            try:
                tasks.extend(
                    self.get_json(
                        f"{len(chunk)} tasks of project {project_id}", f"api/projects/{project_id}/export", params
                    )
                )
            except LabelStudioError as exc:
                if exc.status not in (404, 405):
                    raise
                tasks.extend(self.tasks_by_ids(project_id, chunk))
        return tasks


def connect(
    settings, api_key: str | Secret | None = None, sleep: Callable[[float], None] = time.sleep
) -> LabelStudioClient:
    """A client from LabelStudioSettings (URL and key resolved as config.py describes)."""
    return LabelStudioClient(
        settings.url,
        api_key,
        api_key_file=settings.api_key_file,
        timeout=settings.timeout,
        retries=settings.retries,
        backoff=settings.backoff,
        max_backoff=settings.max_backoff,
        sleep=sleep,
    )


def check_label_config(label_config: str, project_id: int, url: str) -> None:
    """A project found by title must still ask the question mintline reads back."""
    for name in (f'name="{CONTROL}"', 'name="shown_a"', 'name="shown_b"', 'value="Tie"'):
        if name not in (label_config or ""):
            raise LabelStudioError(
                f"project {project_id} at {url} has a labelling config without {name}: it was not made by "
                "`mintline annotate init`; choose another project_title"
            )


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("validation_errors", "detail", "message", "error"):
            if body.get(key):
                return " ".join(str(body[key]).split())[:200]
    return " ".join(str(body or "").split())[:200]
