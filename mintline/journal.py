"""The run directory and its `run.json` journal.

A run lives in one directory (`runs/<name>/`) with one sub-directory per stage. `run.json`
records, per stage: the config, the digests of its inputs and outputs, start/finish times,
wall time, status, and the figures the stage measured. A stage that finished with the same
config and inputs, whose outputs are still intact, is skipped; anything else runs again.

Writes are atomic (temp file + rename) under an advisory lock, so a crash never leaves a
half-written journal and two processes never interleave their updates. In a torchrun job
only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from mintline import __version__

log = logging.getLogger("mintline")

JOURNAL_NAME = "run.json"
_CHUNK = 1 << 20


@dataclass
class RunArguments:
    """Where a stage reads and writes: every sub-command that produces files takes these."""

    run_dir: str = field(
        default="runs/default",
        metadata={"help": "run directory: one sub-directory per stage plus the run.json journal"},
    )
    force: bool = field(
        default=False,
        metadata={"help": "run the stage again even if run.json says it finished with the same inputs"},
    )


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def digest_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def digest_path(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a directory as the sorted list of (relative path, file digest)."""
    path = Path(path)
    if path.is_file():
        return "sha256:" + digest_file(path)
    if not path.is_dir():
        raise FileNotFoundError(path)
    listing = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix()
        listing.update(f"{relative}\0{digest_file(file)}\n".encode())
    return "sha256:" + listing.hexdigest()


def digest_config(config: Any) -> str:
    blob = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@dataclass
class StageRun:
    """Handed to the code inside `Journal.stage(...)`: put the stage's figures here."""

    name: str
    directory: Path
    skipped: bool = False
    figures: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] | None = None
    # "waiting": the stage stopped for something outside (labels from people); it is recorded
    # with its figures and wall time but never counts as finished, so the next run resumes it
    status: str = "finished"


class Journal:
    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / JOURNAL_NAME

    # -- reading -------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            from mintline.errors import MintlineError

            raise MintlineError(f"{self.path} is not valid JSON ({exc.msg}); move it away to start afresh") from exc

    def stage_record(self, name: str) -> dict[str, Any] | None:
        return self.load().get("stages", {}).get(name)

    def stage_dir(self, name: str) -> Path:
        return self.run_dir / name

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Read-modify-write of run.json under an exclusive lock; yields the document to edit."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / f".{JOURNAL_NAME}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            document = self.load()
            document.setdefault("run", self._run_header())
            document.setdefault("stages", {})
            yield document
            atomic_write_text(self.path, json.dumps(document, indent=2, sort_keys=False) + "\n")

    def update_stage(self, name: str, **fields: Any) -> None:
        if not is_main_process():
            return
        with self._locked() as document:
            record = document["stages"].setdefault(name, {})
            record.update(to_jsonable(fields))

    def _run_header(self) -> dict[str, Any]:
        return {
            "created_at": now_iso(),
            "mintline_version": __version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "argv": sys.argv,
        }

    # -- the stage protocol --------------------------------------------------------------
    def is_up_to_date(self, name: str, config_digest: str, input_digests: dict[str, str]) -> dict | None:
        """The previous record if the stage finished with these inputs and its outputs are intact."""
        previous = self.stage_record(name)
        if not previous or previous.get("status") != "finished":
            return None
        if previous.get("config_digest") != config_digest or previous.get("inputs") != input_digests:
            return None
        for output, recorded in (previous.get("outputs") or {}).items():
            try:
                if digest_path(output) != recorded:
                    return None
            except FileNotFoundError:
                return None
        return previous

    @contextlib.contextmanager
    def stage(
        self,
        name: str,
        *,
        config: Any,
        inputs: Mapping[str, str | os.PathLike] | None = None,
        outputs: list[str | os.PathLike] | None = None,
        force: bool = False,
    ) -> Iterator[StageRun]:
        """Run one stage under the journal.

        `inputs` maps a label to a path whose digest decides whether the stage must run again;
        `outputs` lists the paths the stage produces (digested when it finishes). Yields a
        StageRun; when `.skipped` is true the caller must not redo the work.
        """
        config_json = to_jsonable(config)
        config_digest = digest_config(config_json)
        input_digests = {label: digest_path(path) for label, path in (inputs or {}).items()}
        directory = self.stage_dir(name)
        previous = None if force else self.is_up_to_date(name, config_digest, input_digests)
        if previous is not None:
            log.info("%s: finished earlier with the same config and inputs; nothing to do (%s)", name, self.path)
            yield StageRun(name, directory, skipped=True, figures=dict(previous.get("figures", {})), previous=previous)
            return

        started = time.time()
        self.update_stage(
            name,
            status="running",
            started_at=now_iso(),
            finished_at=None,
            config=config_json,
            config_digest=config_digest,
            inputs=input_digests,
            input_paths={label: os.fspath(p) for label, p in (inputs or {}).items()},
            error=None,
        )
        run = StageRun(name, directory, previous=self.stage_record(name))
        try:
            yield run
        except BaseException as exc:
            self.update_stage(
                name,
                status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                finished_at=now_iso(),
                wall_seconds=round(time.time() - started, 3),
                error=(str(exc).strip().splitlines() or [type(exc).__name__])[0],
                figures=run.figures,
            )
            raise
        finished = run.status == "finished"
        output_digests = {os.fspath(p): digest_path(p) for p in (outputs or []) if finished and Path(p).exists()}
        self.update_stage(
            name,
            status=run.status,
            finished_at=now_iso(),
            wall_seconds=round(time.time() - started, 3),
            outputs=output_digests,
            figures=run.figures,
        )
