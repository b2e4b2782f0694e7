"""`mintline serve` against real uvicorn servers on 127.0.0.1 (subprocesses), compared with the CLI.

Two servers: one with `--detail full` and no rate limits (verdict and error tests), one with the
defaults (coarse answers, rate limit and query budget on). Every response either gives is
recorded and scanned for key material at the end.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import socket
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from serve_support import running_server, serve_materials

RESPONSES: list[httpx.Response] = []


def _record(response: httpx.Response) -> None:
    response.read()
    RESPONSES.append(response)


@pytest.fixture(scope="module")
def materials(request, tmp_path_factory):
    return serve_materials(request, tmp_path_factory)


@pytest.fixture(scope="module")
def full_server(materials, tmp_path_factory):
    options = (
        "--detail",
        "full",
        "--rate_limit",
        "0",
        "--query_budget",
        "0",
        "--upload_timeout",
        "2",
        "--max_text_bytes",
        "200000",
        "--max_bundle_bytes",
        "30000000",
    )
    with running_server(materials, tmp_path_factory.mktemp("serve-full"), *options) as url:
        with httpx.Client(base_url=url, timeout=60, event_hooks={"response": [_record]}) as client:
            yield client


@pytest.fixture(scope="module")
def default_server(materials, tmp_path_factory):
    with running_server(materials, tmp_path_factory.mktemp("serve-default")) as url:
        with httpx.Client(base_url=url, timeout=60, event_hooks={"response": [_record]}) as client:
            yield client


def cli_detect(cli, materials, names: list[str]) -> dict[str, dict]:
    files = [materials["texts"][n] for n in names]
    keys = [arg for path in materials["key_files"] for arg in ("--key", path)]
    run = cli("watermark", "detect", *keys, "--tokenizer", materials["tokenizer"], "--window", "48", "--json", *files)
    assert run.code == 0, run
    return {name: json.loads(line) for name, line in zip(names, run.out.strip().splitlines())}


def detect_text(client: httpx.Client, path: str) -> httpx.Response:
    body = Path(path).read_bytes()
    return client.post("/api/v1/detect", content=body, headers={"Content-Type": "text/plain; charset=utf-8"})


def assert_one_line_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    assert "\n" not in response.text.strip()
    data = response.json()
    assert list(data) == ["error"] and isinstance(data["error"], str) and data["error"]


def assert_still_serving(client: httpx.Client, materials) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert detect_text(client, materials["texts"]["marked0"]).json()["verdict"] == "watermarked"


TEXTS = ["marked0", "marked1", "marked2", "marked3", "human0", "human1", "human2", "mixed", "short"]


def test_detect_verdicts_equal_the_cli(full_server, materials, cli):
    expected = cli_detect(cli, materials, TEXTS)
    key_ids = {json.loads(Path(p).read_text())["key_id"] for p in materials["key_files"]}
    for name in TEXTS:
        answer = detect_text(full_server, materials["texts"][name]).json()
        want = expected[name]
        assert answer["verdict"] == want["verdict"], name
        assert answer["watermarked"] == want["watermarked"], name
        assert answer["p_value"] == pytest.approx(want["p_value"], rel=1e-9, abs=1e-300), name
        assert answer["tokens_scored"] == want["num_tokens_scored"], name
        assert {k["key_id"] for k in answer["keys"]} == key_ids
        for entry in answer["keys"]:
            cli_entry = next(k for k in want["per_key"] if k["key_id"] == entry["key_id"])
            assert entry["p_value"] == pytest.approx(cli_entry["p_value_corrected"], rel=1e-9, abs=1e-300)
            assert entry["tokens_scored"] == cli_entry["num_tokens_scored"]
        spans = [(s["start_char"], s["end_char"]) for s in answer["spans"]]
        assert spans == [(s["start_char"], s["end_char"]) for s in want.get("spans", [])], name
    verdicts = {name: expected[name]["verdict"] for name in TEXTS}
    assert all(verdicts[f"marked{i}"] == "watermarked" for i in range(4))
    assert all(verdicts[f"human{i}"] == "not watermarked" for i in range(3))
    assert verdicts["mixed"] == "watermarked" and verdicts["short"] == "insufficient evidence"


def test_mixed_text_gets_marked_spans_over_the_marked_part(full_server, materials):
    mixed = Path(materials["texts"]["mixed"]).read_text(encoding="utf-8")
    marked = Path(materials["texts"]["marked1"]).read_text(encoding="utf-8")
    start = mixed.index(marked)
    answer = full_server.post("/api/v1/detect", json={"text": mixed}).json()
    assert answer["verdict"] == "watermarked" and answer["spans"]
    covered = sum(
        max(0, min(start + len(marked), s["end_char"]) - max(start, s["start_char"])) for s in answer["spans"]
    )
    assert covered > 0.6 * len(marked)
    marked_key = json.loads(Path(materials["key_files"][0]).read_text())["key_id"]
    assert answer["key_id"] == marked_key
    by_key = {k["key_id"]: k["verdict"] for k in answer["keys"]}
    assert by_key[marked_key] == "watermarked" and set(by_key.values()) == {"watermarked", "not watermarked"}


def test_json_multipart_and_plain_bodies_give_one_answer(full_server, materials):
    path = materials["texts"]["marked3"]
    text = Path(path).read_text(encoding="utf-8")
    plain = detect_text(full_server, path).json()
    as_json = full_server.post("/api/v1/detect", json={"text": text}).json()
    as_file = full_server.post("/api/v1/detect", files={"file": ("sample.txt", text.encode(), "text/plain")}).json()
    as_field = full_server.post("/api/v1/detect", data={"text": text}).json()
    assert plain == as_json == as_file == as_field


def test_verify_verdicts_equal_the_cli(full_server, materials, cli):
    from release.keys import fingerprint, load_public_key

    publisher = fingerprint(load_public_key(materials["publisher_pub"]))
    for name in ("good", "tampered"):
        tar = materials["bundles"][name]
        run = cli("release", "verify", tar, "--pubkey", materials["publisher_pub"], "--json")
        expected = run.json()
        answer = full_server.post(
            "/api/v1/verify", content=Path(tar).read_bytes(), headers={"Content-Type": "application/x-tar"}
        ).json()
        assert answer["verified"] == expected["ok"] and answer["reasons"] == expected["reasons"], name
        assert run.code == (0 if expected["ok"] else 1)
    good = full_server.post(
        "/api/v1/verify", files={"file": ("good.tar", Path(materials["bundles"]["good"]).read_bytes())}
    )
    good = good.json()
    assert good["verdict"] == "verified" and good["reasons"] == []
    assert good["signer_fingerprint"] == publisher and good["signer_algorithm"] == "ed25519"
    assert good["model_card"]["license"] == "mit" and good["model_card"]["title"] == "serve-test 1.0.0"
    assert "parameters" in good["model_card"]["summary"] and good["files"] > 3
    tampered = full_server.post("/api/v1/verify", content=Path(materials["bundles"]["tampered"]).read_bytes()).json()
    assert tampered["verdict"] == "not verified" and tampered["signer_fingerprint"] is None
    assert any("config.json" in reason for reason in tampered["reasons"])
    foreign = full_server.post("/api/v1/verify", content=Path(materials["bundles"]["foreign"]).read_bytes()).json()
    assert foreign["verified"] is False and any("different key" in reason for reason in foreign["reasons"])


def _tar_bytes(members: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A tar of (name, data or None for a directory, symlink target or None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_bad_requests_get_one_line_json_4xx_and_the_server_keeps_serving(full_server, materials):
    detect = "/api/v1/detect"
    cases = [
        (full_server.post(detect, content=b"a" * 300_000, headers={"Content-Type": "text/plain"}), 413),
        (full_server.post(detect, content=iter([b"a" * 100_000] * 3), headers={"Content-Type": "text/plain"}), 413),
        (full_server.post(detect, content=b"", headers={"Content-Type": "text/plain"}), 400),
        (full_server.post(detect, content=b"  \n\t ", headers={"Content-Type": "text/plain"}), 400),
        (full_server.post(detect, content=b"caf\xe9 \xff\xfe text", headers={"Content-Type": "text/plain"}), 400),
        (full_server.post(detect, content=b'{"text": ', headers={"Content-Type": "application/json"}), 400),
        (full_server.post(detect, json={"texts": ["x"]}), 400),
        (
            full_server.post(
                detect, content=b'{"text": "\\udc80 lone surrogate"}', headers={"Content-Type": "application/json"}
            ),
            400,
        ),
        (full_server.post(detect, files={"other": ("a.txt", b"abc")}), 400),
        (full_server.post("/api/v1/verify", content=b""), 400),
        (full_server.post("/api/v1/verify", content=b"\x00not a tar at all" * 100), 400),
        (
            full_server.post(
                "/api/v1/verify", content=_tar_bytes([("b", None, None), ("b/evil", None, "/etc/passwd")])
            ),
            400,
        ),
        (full_server.post("/api/v1/verify", content=_tar_bytes([("a/x", b"1", None), ("b/y", b"2", None)])), 400),
        (full_server.post("/api/v1/verify", content=_tar_bytes([("b/../../escape", b"1", None)])), 400),
        (full_server.post("/api/v1/verify", content=b"x" * 40_000_000), 413),
        (full_server.get("/api/v1/nowhere"), 404),
        (full_server.put("/api/v1/detect", content=b"text"), 405),
        (full_server.post("/healthz", content=b"x" * 100_000), 413),
    ]
    for response, status in cases:
        assert_one_line_error(response, status)
    assert "not UTF-8" in cases[4][0].json()["error"]
    assert "link" in cases[11][0].json()["error"]
    assert_still_serving(full_server, materials)


def test_a_slow_upload_gets_408_and_the_server_keeps_serving(full_server, materials):
    host, port = full_server.base_url.host, full_server.base_url.port
    with socket.create_connection((host, port), timeout=30) as raw:
        raw.sendall(
            b"POST /api/v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
        )
        raw.sendall(b"only the first bytes")  # and then nothing: the 2 s upload deadline passes
        started = time.monotonic()
        reply = b""
        while chunk := raw.recv(65536):  # the server answers, then closes: the body was never complete
            reply += chunk
        waited = time.monotonic() - started
    reply = reply.decode("latin-1")
    status_line, _, rest = reply.partition("\r\n")
    assert " 408 " in status_line, reply
    body = json.loads(rest.split("\r\n\r\n", 1)[1])
    assert "upload too slow" in body["error"] and 1.0 < waited < 20
    assert_still_serving(full_server, materials)


def test_detection_runs_off_the_event_loop(full_server, materials):
    marked = Path(materials["texts"]["marked0"]).read_text(encoding="utf-8")
    long_text = (marked + "\n") * (190_000 // (len(marked.encode()) + 1))
    finished: dict[str, float] = {}

    def long_request():
        response = full_server.post(
            "/api/v1/detect", content=long_text.encode(), headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 200
        finished["long"] = time.monotonic()

    worker = threading.Thread(target=long_request)
    worker.start()
    time.sleep(0.05)
    health_answered = []
    while worker.is_alive() and len(health_answered) < 5:
        assert full_server.get("/healthz").status_code == 200
        health_answered.append(time.monotonic())
    worker.join(timeout=120)
    assert "long" in finished
    # the loop answered /healthz, one request after another, while the long text was being scored
    # (a blocked loop would answer at most one of them, after the long answer)
    assert len([t for t in health_answered if t < finished["long"]]) >= 2, (health_answered, finished)


def test_default_answers_are_coarse(default_server, materials, cli):
    expected = cli_detect(cli, materials, ["marked0", "human0"])
    for name in ("marked0", "human0"):
        answer = detect_text(default_server, materials["texts"][name]).json()
        assert answer["detail"] == "coarse" and answer["verdict"] == expected[name]["verdict"]
        low, high = answer["p_value_range"]
        assert low <= expected[name]["p_value"] <= high
        for entry in [answer, *answer["keys"], *answer["spans"]]:
            assert "p_value" not in entry and "z_score" not in entry
        assert not any("green" in k or "color" in k or "colour" in k for k in json.dumps(answer).split('"'))


def test_rate_limit_answers_429_with_retry_after_and_recovers(default_server, materials):
    text = Path(materials["texts"]["human1"]).read_bytes()
    statuses, limited = [], None
    for _ in range(25):  # the default burst is 10 at 30 per minute
        response = default_server.post("/api/v1/detect", content=text, headers={"Content-Type": "text/plain"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            limited = response
            break
    assert limited is not None, statuses
    assert_one_line_error(limited, 429)
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= 2  # one request's worth of tokens at 0.5 per second
    assert default_server.get("/healthz").status_code == 200  # liveness is never rate limited
    time.sleep(retry_after + 0.2)
    assert (
        default_server.post("/api/v1/detect", content=text, headers={"Content-Type": "text/plain"}).status_code == 200
    )


def test_query_budget_counts_per_client_and_resets():
    from mintline.serve.security import ClientLimits

    now = [0.0]
    limits = ClientLimits(per_minute=0, burst=1, budget=3, budget_seconds=100, clock=lambda: now[0])
    assert [limits.check("a", True) for _ in range(3)] == [None] * 3
    assert limits.check("a", True) == pytest.approx(100)
    assert limits.check("b", True) is None  # another client has its own budget
    assert limits.check("a", False) is None  # listing keys is not a query
    now[0] = 60.0
    assert limits.check("a", True) == pytest.approx(40)
    now[0] = 100.0
    assert limits.check("a", True) is None


def test_docs_are_served_from_this_server(default_server):
    page = default_server.get("/docs")
    assert page.status_code == 200
    assets = [a for a in page.text.replace("'", '"').split('"') if a.startswith(("/", "http"))]
    assert assets and not [a for a in assets if a.startswith("http")]
    for asset in assets:
        assert default_server.get(asset).status_code == 200, asset
    schema = default_server.get("/openapi.json").json()
    assert {"/api/v1/detect", "/api/v1/verify", "/api/v1/keys", "/healthz"} <= set(schema["paths"])


def test_no_response_carries_key_material(default_server, full_server, materials):
    from cryptography.hazmat.primitives import serialization

    from release.keys import load_private_key

    for client in (default_server, full_server):  # every endpoint at least once, then scan all answers
        client.get("/")
        client.get("/docs")
        client.get("/openapi.json")
        client.get("/api/v1/keys")
        client.get("/healthz")
        detect_text(client, materials["texts"]["mixed"])
        client.post("/api/v1/verify", content=Path(materials["bundles"]["good"]).read_bytes())
    needles: list[bytes] = []
    for path in materials["key_files"]:
        secret = bytes.fromhex(json.loads(Path(path).read_text())["secret"])
        needles += [
            secret,
            secret.hex().encode(),
            secret.hex().upper().encode(),
            base64.b64encode(secret),
            base64.urlsafe_b64encode(secret),
            secret.hex()[:16].encode(),
        ]
    private = load_private_key(materials["publisher_key"])
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = Path(materials["publisher_key"]).read_bytes()
    needles += [raw, raw.hex().encode(), base64.b64encode(raw), b"PRIVATE KEY"]
    needles += [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
    scanned = 0
    for response in RESPONSES:
        blob = response.content + b"\n".join(k.encode() + b": " + v.encode() for k, v in response.headers.items())
        for needle in needles:
            assert needle not in blob, f"{response.request.method} {response.request.url} leaks key material"
        scanned += 1
    assert scanned >= 14  # its own requests, plus every earlier test's when the module runs whole


def test_run_prints_a_serve_command_that_starts_on_its_own_layout(tmp_path, materials):
    import shutil

    from mintline.argparsing import MintlineParser
    from mintline.cli import build_top_parser
    from mintline.commands import serve as serve_command
    from mintline.serve.app import create_app
    from mintline.serve.hint import serve_hint

    run = tmp_path / "run"
    (run / "watermark").mkdir(parents=True)
    shutil.copy2(materials["key_files"][0], run / "watermark" / "key.json")
    shutil.copytree(materials["tokenizer"], run / "pretrain" / "model")
    shutil.copytree(materials["pubkeys"], run / "release" / "keys")
    assert serve_hint(run / "missing") == []
    lines = serve_hint(run)
    assert lines and lines[0].startswith("serve verdicts: mintline serve ")
    argv = shlex.split(lines[0].split(": ", 1)[1])
    parser = serve_command.make_parser(build_top_parser().add_subparsers(parser_class=MintlineParser))
    *configs, _ = parser.parse_args_and_config(argv[2:])
    app = create_app(*configs)
    assert {"/api/v1/detect", "/api/v1/verify"} <= {route.path for route in app.routes}
    assert (
        str(run / "release" / "bundle") in lines[1]
        and "--data-binary @- http://127.0.0.1:8000/api/v1/verify" in lines[1]
    )


def test_serve_refuses_unusable_keys_in_one_line(cli, tmp_path, materials):
    empty = tmp_path / "empty"
    empty.mkdir()
    run = cli("serve", "--keys", empty, "--pubkeys", materials["pubkeys"], "--tokenizer", materials["tokenizer"])
    assert run.code == 2 and "holds no watermark key file" in run.err and len(run.err.strip().splitlines()) == 1
    run = cli("serve", "--keys", materials["keys"], "--pubkeys", empty, "--tokenizer", materials["tokenizer"])
    assert run.code == 2 and "holds no public key" in run.err
    run = cli(
        "serve",
        "--keys",
        materials["keys"],
        "--pubkeys",
        materials["publisher_key"],
        "--tokenizer",
        materials["tokenizer"],
    )
    assert run.code == 2 and "private key" in run.err
    run = cli("serve", "--keys", materials["keys"], "--pubkeys", materials["pubkeys"])
    assert run.code == 2 and "--tokenizer" in run.err
