"""Where Label Studio is and how to reach it; the API key is resolved here and never stored.

The URL and key come from the arguments, then a key file (mode 0600, like an SSH key), then
the SDK's own environment variables LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY. The key is
wrapped in `Secret`, whose repr and str hide it, so a log line, a traceback's locals shown by
a test runner, a run.json config dump or an error message cannot leak it by accident.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from annotation.errors import CredentialsError

URL_VARIABLE = "LABEL_STUDIO_URL"
KEY_VARIABLE = "LABEL_STUDIO_API_KEY"


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass
class LabelStudioSettings:
    """How to talk to Label Studio. Holds no secret: it is written to run.json as it is."""

    url: str | None = field(default=None, metadata={"help": f"Label Studio base URL (default: ${URL_VARIABLE})"})
    api_key_file: str | None = field(
        default=None, metadata={"help": f"a file (mode 0600) holding only the API key (default: ${KEY_VARIABLE})"}
    )
    project_title: str = field(
        default="mintline preferences", metadata={"help": "project to find by title, or create"}
    )
    project_id: int | None = field(
        default=None, metadata={"help": "use this project id instead of finding one by title"}
    )
    timeout: float = field(default=30.0, metadata={"help": "seconds to wait for each request"})
    retries: int = field(default=4, metadata={"help": "further tries after a failed request (exponential back-off)"})
    backoff: float = field(default=0.5, metadata={"help": "first back-off delay in seconds; doubles each retry"})
    max_backoff: float = field(default=8.0, metadata={"help": "longest back-off delay in seconds"})

    def __post_init__(self):
        if self.timeout <= 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            raise ValueError(f"retries: must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff and max_backoff: must be >= 0 seconds")
        if not self.project_title.strip():
            raise ValueError("project_title: must not be empty")


def resolve_url(url: str | None = None) -> str:
    value = (url or os.environ.get(URL_VARIABLE) or "").strip()
    if not value:
        raise CredentialsError(f"no Label Studio URL: pass url or set {URL_VARIABLE}")
    parsed = urlparse(value)
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise CredentialsError(f"Label Studio URL must look like http://host:port, got {value!r}")
    return value.rstrip("/")


def resolve_api_key(api_key: str | Secret | None = None, api_key_file: str | os.PathLike | None = None) -> Secret:
    if isinstance(api_key, Secret):
        return api_key
    if api_key:
        return Secret(api_key.strip())
    if api_key_file:
        return Secret(read_key_file(api_key_file))
    value = os.environ.get(KEY_VARIABLE, "").strip()
    if not value:
        raise CredentialsError(
            f"no Label Studio API key: set {KEY_VARIABLE} or give api_key_file (a file holding only the key)"
        )
    return Secret(value)


def read_key_file(path: str | os.PathLike) -> str:
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialsError(f"api_key_file: no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"api_key_file: cannot read {path} ({type(exc).__name__})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CredentialsError(
            f"api_key_file: {path} is readable by others (mode {stat.S_IMODE(mode):o}); run chmod 600 {path}"
        )
    key = text.strip()
    if not key or "\n" in key:
        raise CredentialsError(f"api_key_file: {path} must hold the key alone on one line")
    return key
