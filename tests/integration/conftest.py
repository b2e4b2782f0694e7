"""Real servers and multi-process runs. Label Studio comes from .ci/labelstudio.py (see .ci/run)."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=5) as response:
            return json.loads(response.read()).get("status") == "UP"
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def label_studio():
    """(url, api_key) of a running Label Studio; waits for /health while it starts.

    Without LABEL_STUDIO_URL the tests skip, unless MINTLINE_REQUIRE_LABEL_STUDIO=1 (CI),
    where a missing or dead server is a failure.
    """
    url, key = os.environ.get("LABEL_STUDIO_URL"), os.environ.get("LABEL_STUDIO_API_KEY")
    required = os.environ.get("MINTLINE_REQUIRE_LABEL_STUDIO") == "1"
    if not url or not key:
        if required:
            pytest.fail("MINTLINE_REQUIRE_LABEL_STUDIO=1 but LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY are not set")
        pytest.skip('no Label Studio server: run `eval "$(python3 .ci/labelstudio.py start)"` first')
    deadline = time.time() + float(os.environ.get("MINTLINE_LABEL_STUDIO_WAIT", "420"))
    while not _health(url):
        if time.time() > deadline:
            message = f"Label Studio at {url} did not answer /health with UP"
            if required:
                pytest.fail(message)
            pytest.skip(message)
        time.sleep(2)
    return url, key
