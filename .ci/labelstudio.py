#!/usr/bin/env python3
"""Install, start, wait for and stop a real Label Studio server for the tests (loopback only).

    eval "$(python3 .ci/labelstudio.py start)"   # prints `export ...` lines for the shell
    python3 .ci/labelstudio.py wait              # blocks until GET /health answers UP
    python3 .ci/labelstudio.py stop              # stops it by PID, removes its data directory

The server gets its own virtual environment (its pins clash with the toolkit's) and a fresh
data directory, so the user and legacy token below are created at start. Standard library only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LABEL_STUDIO_VENV", HERE / ".labelstudio-venv"))
# Another state file lets a second server (a benchmark's) run beside the one CI started.
STATE = Path(os.environ.get("LABEL_STUDIO_STATE", HERE / ".labelstudio-state.json"))
VERSION = "1.23.2"
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"[labelstudio] {message}", file=sys.stderr, flush=True)


def ensure_installed() -> Path:
    binary = VENV / "bin" / "label-studio"
    if binary.exists():
        return binary
    log(f"installing label-studio=={VERSION} into {VENV} (a few minutes, once)")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=sys.stderr)
    subprocess.run([*pip, f"label-studio=={VERSION}"], check=True, stdout=sys.stderr)
    return binary


def free_port() -> int:
    # Label Studio silently moves to port+1 when its port is busy: pick one that is free now.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start() -> None:
    if STATE.exists():
        previous = json.loads(STATE.read_text())
        if not _exited(previous["pid"]):
            log(f"a server is already running at {previous['url']} (pid {previous['pid']}); stop it first")
            raise SystemExit(1)
    binary = ensure_installed()
    port = int(os.environ.get("LABEL_STUDIO_PORT") or free_port())
    data_dir = Path(tempfile.mkdtemp(prefix="mintline-labelstudio-"))
    token = secrets.token_hex(20)  # 40 characters: the most Label Studio accepts
    env = dict(
        os.environ,
        LABEL_STUDIO_USERNAME="ci@example.com",
        LABEL_STUDIO_PASSWORD=secrets.token_hex(12),
        LABEL_STUDIO_USER_TOKEN=token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
    )
    log_path = data_dir / "server.log"
    with open(log_path, "wb") as server_log:
        process = subprocess.Popen(
            [
                str(binary),
                "start",
                "--no-browser",
                "--internal-host",
                HOST,
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    STATE.write_text(json.dumps({"pid": process.pid, "url": url, "data_dir": str(data_dir), "log": str(log_path)}))
    log(f"starting on {url} (pid {process.pid}, log {log_path})")
    print(f"export LABEL_STUDIO_URL={url}")
    print(f"export LABEL_STUDIO_API_KEY={token}")
    print("export MINTLINE_REQUIRE_LABEL_STUDIO=1")


def wait(timeout: float = 400.0) -> None:
    state = json.loads(STATE.read_text())
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(state["url"] + "/health", timeout=5) as response:
                if json.loads(response.read()).get("status") == "UP":
                    log(f"up at {state['url']}")
                    return
        except (OSError, ValueError):
            pass
        if _exited(state["pid"]):
            break
        time.sleep(2)
    tail = Path(state["log"]).read_text(errors="replace")[-3000:] if Path(state["log"]).exists() else ""
    log(f"server at {state['url']} did not come up within {timeout:.0f} s; log tail:\n{tail}")
    raise SystemExit(1)


def _exited(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        return finished == pid
    except ChildProcessError:
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True


def stop() -> None:
    if not STATE.exists():
        return
    state = json.loads(STATE.read_text())
    try:
        os.killpg(state["pid"], signal.SIGTERM)
        for _ in range(50):
            os.kill(state["pid"], 0)
            time.sleep(0.2)
        os.killpg(state["pid"], signal.SIGKILL)
    except ProcessLookupError:
        pass
    STATE.unlink(missing_ok=True)
    # The data directory was made fresh by start(); keep it only when asked (to read server.log).
    if os.environ.get("LABEL_STUDIO_KEEP_DATA") != "1":
        shutil.rmtree(state["data_dir"], ignore_errors=True)
    log(f"stopped (pid {state['pid']})")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    actions = {"start": start, "wait": wait, "stop": stop, "install": ensure_installed}
    if command not in actions:
        sys.exit(f"usage: {sys.argv[0]} {{start|wait|stop|install}}")
    actions[command]()
