"""Label Studio down, slow or answering 5xx, and a pull killed with SIGKILL, against the real server.

A tiny proxy on 127.0.0.1 sits between mintline and the server: it can let the first N requests
through, fail the next M with a 5xx, delay requests, or add latency to every request (so a pull
lasts long enough to be killed at chosen points). Nothing here leaves the loopback interface.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from annotation.config import LabelStudioSettings
from annotation.labelstudio import LabelStudioClient
from annotation.labelstudio_annotators import annotate_project
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair
from annotation.simulated import SimulatedAnnotators
from annotation.stage import AnnotationConfig, init_project, push

pytestmark = pytest.mark.labelstudio
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FlakyProxy:
    """Forwards to `upstream`, misbehaving on purpose as configured (thread-safe counters)."""

    def __init__(self, upstream: str):
        self.upstream = urlparse(upstream)
        self.lock = threading.Lock()
        self.requests = 0
        self.reset()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def handle_any(self):
                proxy.handle(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self, pass_first=0, fail=0, status=503, delay=0, delay_seconds=0.0, latency=0.0):
        with self.lock:
            self.pass_first, self.fail, self.status = self.requests + pass_first, fail, status
            self.delay, self.delay_seconds, self.latency = delay, delay_seconds, latency
            self.failed = self.delayed = 0

    def handle(self, request: BaseHTTPRequestHandler):
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        with self.lock:
            self.requests += 1
            action, wait = "forward", self.latency
            if self.requests > self.pass_first and self.fail > 0:
                self.fail -= 1
                self.failed += 1
                action = "fail"
            elif self.requests > self.pass_first and self.delay > 0:
                self.delay -= 1
                self.delayed += 1
                wait += self.delay_seconds
        time.sleep(wait)
        try:
            if action == "fail":
                payload = json.dumps({"detail": "injected failure"}).encode()
                request.send_response(self.status)
                request.send_header("Content-Type", "application/json")
                request.send_header("Content-Length", str(len(payload)))
                request.end_headers()
                request.wfile.write(payload)
                return
            upstream = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
            upstream.request(request.command, request.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
            request.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_HEADERS:
                    request.send_header(key, value)
            request.send_header("Content-Length", str(len(content)))
            request.end_headers()
            request.wfile.write(content)
            upstream.close()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) while we were slow: that is the point

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def gold(prompt: str, response: str) -> float:
    return float(response.count("+"))


@pytest.fixture(scope="module")
def world(label_studio, tmp_path_factory):
    """A project pushed through the proxy (so the ledger is bound to the proxy's URL), then annotated."""
    url, key = label_studio
    proxy = FlakyProxy(url)
    root = tmp_path_factory.mktemp("labelstudio-failures")
    settings = LabelStudioSettings(
        url=proxy.url,
        project_title=f"mintline failures {uuid.uuid4().hex[:8]}",
        retries=3,
        backoff=0.05,
        max_backoff=0.2,
        timeout=5,
    )
    config = AnnotationConfig(workdir=str(root / "base" / "annotate"), labelstudio=settings)
    pairs = [
        PreferencePair(f"q{i}", "+" * (1 + i % 3) + f" a{i}", f"b{i}", predicted="a", confidence=0.5 + i / 100)
        for i in range(25)
    ]
    project_id = init_project(config, key)["project_id"]
    push(config, pairs, api_key=key)
    snapshot = root / "after-push.sqlite"
    shutil.copy(config.ledger_path, snapshot)  # closed ledger: the WAL is checkpointed into the file
    client = LabelStudioClient(url, key)
    sim = SimulatedAnnotators(gold, n_annotators=2, temperature=0.5, flip_rate=0.2, seed=9)
    made = annotate_project(client, project_id, sim, annotators_per_task=2, skip_rate=0.1, workers=2)
    yield {
        "proxy": proxy,
        "root": root,
        "key": key,
        "snapshot": snapshot,
        "settings": settings,
        "expected": made["annotations"] + made["skips"],
        "project_id": project_id,
    }
    proxy.close()


def fresh_run(world, name: str):
    run_dir = world["root"] / name
    (run_dir / "annotate").mkdir(parents=True)
    shutil.copy(world["snapshot"], run_dir / "annotate" / "ledger.sqlite")
    return run_dir


def ledger_dump(run_dir) -> list[str]:
    with Ledger(run_dir / "annotate" / "ledger.sqlite") as ledger:
        return list(ledger._db.iterdump())


def pull_args(world, run_dir, *extra):
    return (
        "annotate",
        "pull",
        "--run_dir",
        run_dir,
        "--url",
        world["proxy"].url,
        "--retries",
        "3",
        "--backoff",
        "0.05",
        "--max_backoff",
        "0.2",
        *extra,
    )


def test_5xx_is_retried_with_back_off(cli, world):
    run_dir = fresh_run(world, "flaky")
    world["proxy"].reset(fail=3, status=503)
    pulled = cli(*pull_args(world, run_dir, "--json"))
    assert pulled.code == 0, pulled
    assert world["proxy"].failed == 3 and pulled.json()["new"] == world["expected"]


def test_5xx_for_good_fails_in_one_line_and_leaves_the_ledger_as_it_was(cli, world, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", world["key"])
    run_dir = fresh_run(world, "broken")
    before = ledger_dump(run_dir)
    world["proxy"].reset(pass_first=2, fail=100, status=502)  # fails mid-pull, after the task listing
    pulled = cli(*pull_args(world, run_dir))
    assert pulled.code == 2 and pulled.err.count("\n") == 1 and "Traceback" not in pulled.err
    assert world["proxy"].url in pulled.err and "HTTP 502" in pulled.err and "4 tries" in pulled.err
    assert world["key"] not in pulled.err + pulled.out
    assert ledger_dump(run_dir) == before
    world["proxy"].reset()


def test_slow_answers_time_out_and_are_retried(cli, world):
    run_dir = fresh_run(world, "slow")
    world["proxy"].reset(delay=2, delay_seconds=1.5)
    pulled = cli(*pull_args(world, run_dir, "--timeout", "0.5", "--json"))
    assert pulled.code == 0, pulled
    assert world["proxy"].delayed == 2 and pulled.json()["new"] == world["expected"]

    world["proxy"].reset(delay=100, delay_seconds=1.0)
    before = ledger_dump(run_dir)
    too_slow = cli(*pull_args(world, run_dir, "--timeout", "0.3", "--retries", "1"))
    assert too_slow.code == 2 and "timed out after 0.3 s" in too_slow.err and world["proxy"].url in too_slow.err
    assert ledger_dump(run_dir) == before
    world["proxy"].reset()


def test_server_down_names_the_url(cli, world, label_studio):
    run_dir = fresh_run(world, "down")
    stopped = FlakyProxy(label_studio[0])
    stopped.close()  # a loopback port that was just closed: connections are refused
    pulled = cli(
        "annotate",
        "pull",
        "--run_dir",
        run_dir,
        "--url",
        stopped.url,
        "--project_id",
        str(world["project_id"]),
        "--retries",
        "2",
        "--backoff",
        "0.05",
    )
    assert pulled.code == 2 and pulled.err.count("\n") == 1
    assert stopped.url in pulled.err and "connection refused" in pulled.err
    assert ledger_dump(run_dir) == ledger_dump(fresh_run(world, "down-reference"))


PULLER = textwrap.dedent(
    """
    import sys
    from annotation.config import LabelStudioSettings
    from annotation.stage import AnnotationConfig, pull
    settings = LabelStudioSettings(url=sys.argv[2], retries=0, timeout=30)
    print(pull(AnnotationConfig(workdir=sys.argv[1], labelstudio=settings))["new"], flush=True)
    """
)


def test_pull_killed_at_any_point_then_rerun_records_each_annotation_once(world):
    run_dir = fresh_run(world, "killed")
    workdir = str(run_dir / "annotate")
    proxy = world["proxy"]
    env = dict(os.environ, LABEL_STUDIO_API_KEY=world["key"])
    # A pull makes 4 requests (project check, task listing, changed tasks, users), then writes.
    # Kill it once the k-th answer is in (the next request arrived), and once just after the
    # last answer (0.3 s latency), while it builds and writes the ledger transaction.
    for kill_after, extra_sleep in ((1, 0.0), (2, 0.0), (3, 0.0), (3, 0.35)):
        proxy.reset(latency=0.3)
        start = proxy.requests
        puller = subprocess.Popen(
            [sys.executable, "-c", PULLER, workdir, proxy.url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 90
        while proxy.requests - start < kill_after + 1 and puller.poll() is None and time.time() < deadline:
            time.sleep(0.01)  # request k+1 arriving means request k was answered
        time.sleep(extra_sleep)
        puller.send_signal(signal.SIGKILL)
        puller.wait()
        with Ledger(run_dir / "annotate" / "ledger.sqlite") as ledger:
            assert ledger._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            recorded = ledger.counts()["annotations"]
        if not extra_sleep:  # killed mid-request: nothing may have been written
            assert puller.returncode == -signal.SIGKILL and recorded == 0
        assert recorded in (0, world["expected"])  # all or nothing
    proxy.reset()
    finished = subprocess.run(
        [sys.executable, "-c", PULLER, workdir, proxy.url], env=env, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    with Ledger(run_dir / "annotate" / "ledger.sqlite") as ledger:
        rows = ledger._db.execute("SELECT COUNT(*), COUNT(DISTINCT external_id) FROM annotations").fetchone()
        assert tuple(rows) == (world["expected"], world["expected"])  # every annotation exactly once
