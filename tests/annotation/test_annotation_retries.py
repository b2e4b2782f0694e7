"""Retries with back-off and one-line errors, without a server (a closed loopback port at most)."""

import socket

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError

from annotation.errors import LabelStudioError, LabelStudioUnavailable
from annotation.labelstudio import LabelStudioClient

KEY = "unit-test-key-0123456789"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: connections are refused


def client(delays, retries=3, url="http://127.0.0.1:9"):
    return LabelStudioClient(url, KEY, retries=retries, backoff=0.5, max_backoff=1.5, timeout=2, sleep=delays.append)


def test_transient_failures_are_retried_with_growing_back_off():
    delays, answers = (
        [],
        [httpx.ConnectError("refused"), ApiError(status_code=503, body="busy"), httpx.ReadTimeout("slow"), "done"],
    )

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert client(delays).retrying("the test call", call) == "done"
    assert len(delays) == 3
    assert 0.5 <= delays[0] <= 0.6 and 1.0 <= delays[1] <= 1.2 and 1.5 <= delays[2] <= 1.8  # doubling, capped


def test_giving_up_names_the_url_and_the_cause():
    delays = []

    def call():
        raise ApiError(status_code=502, body="bad gateway")

    with pytest.raises(LabelStudioUnavailable) as caught:
        client(delays, retries=2).retrying("tasks of project 1", call)
    message = str(caught.value)
    assert "http://127.0.0.1:9" in message and "tasks of project 1" in message and "HTTP 502" in message
    assert "3 tries" in message and "\n" not in message and len(delays) == 2


def test_refusals_are_not_retried():
    delays = []

    def unauthorized():
        raise ApiError(status_code=401, body={"detail": "Invalid token"})

    with pytest.raises(LabelStudioError, match="refused the API key") as caught:
        client(delays).retrying("the project list", unauthorized)
    assert caught.value.status == 401 and delays == [] and KEY not in str(caught.value)

    def bad_request():
        raise ApiError(status_code=400, body={"detail": "label config is invalid"})

    with pytest.raises(LabelStudioError, match="HTTP 400: label config is invalid"):
        client(delays).retrying("creating a project", bad_request)


def test_a_closed_loopback_port_gives_up_after_the_retries():
    delays = []
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(LabelStudioUnavailable, match="connection refused") as caught:
        client(delays, retries=2, url=url).find_projects("anything")
    assert url in str(caught.value) and len(delays) == 2


def test_before_retry_sees_the_server_state_first():
    calls = []

    def flaky():
        calls.append("call")
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("answer lost")
        return "ok"

    assert client([]).retrying("import", flaky, before_retry=lambda: calls.append("look")) == "ok"
    assert calls == ["call", "look", "call"]


def test_an_expired_personal_access_token_is_a_one_line_refusal():
    import base64
    import json as _json

    def part(data):
        return base64.urlsafe_b64encode(_json.dumps(data).encode()).rstrip(b"=").decode()

    expired = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'token_type': 'refresh', 'exp': 1000})}.c2ln"
    with pytest.raises(LabelStudioError, match="expired") as caught:
        LabelStudioClient("http://127.0.0.1:9", expired)
    assert expired not in str(caught.value)
