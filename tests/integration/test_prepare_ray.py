"""`prepare --executor ray` on a real two-node Ray cluster started here, against `--executor local`.

The cluster is two `ray start --block` processes (a head and a second node, one CPU each, a
small object store, no dashboard, their own temp dir and a random auth token); the test stops
exactly those processes and their descendants, by process id, never with `ray stop`.
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
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "prepare"))
from prepare_helpers import prose, small_corpus_records, write_jsonl  # noqa: E402

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

STARTUP_S = 240


# -- the cluster ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found = []
    for task in tasks:
        try:
            found += [int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return found


def descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        for child in _children(queue.pop()):
            found.append(child)
            queue.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _is_busy_worker(title: str) -> bool:
    """A Ray worker process running a task: its title is ray::<task>, IDLE when it has none."""
    return title.startswith("ray::") and not any(
        word in title for word in ("IDLE", "Agent", "agent", "RuntimeEnv", "Dashboard")
    )


def _wait_for(log: Path, text: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.time() + STARTUP_S
    while text not in log.read_text(errors="replace"):
        if process.poll() is not None or time.time() > deadline:
            pytest.fail(f"{what} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(1)


@pytest.fixture(scope="module")
def ray_cluster():
    """(address, env, [head process, node process]) of a two-node cluster on 127.0.0.1."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's sockets live under it
    port = _free_port()
    env = dict(
        os.environ,
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(16),  # this cluster's own token: nothing else can join it or run code on it
        RAY_USAGE_STATS_ENABLED="0",
        OMP_NUM_THREADS="1",
        TQDM_DISABLE="1",
    )
    ray_command = str(Path(sys.executable).with_name("ray"))
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "200000000", "--block"]
    processes: list[subprocess.Popen] = []
    started: set[int] = set()
    try:
        head_log = temp / "head.log"
        head = subprocess.Popen(
            [
                ray_command,
                "start",
                "--head",
                "--port",
                str(port),
                "--include-dashboard",
                "false",
                "--temp-dir",
                str(temp),
                "--disable-usage-stats",
                *common,
            ],
            stdout=open(head_log, "w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        processes.append(head)
        _wait_for(head_log, "Ray runtime started", head, "the Ray head")
        node_log = temp / "node.log"
        node = subprocess.Popen(
            [ray_command, "start", "--address", f"127.0.0.1:{port}", *common],
            stdout=open(node_log, "w"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        processes.append(node)
        _wait_for(node_log, "Ray runtime started", node, "the second Ray node")
        yield f"127.0.0.1:{port}", env, processes
    finally:
        for process in processes:
            started.update(descendants(process.pid))
        for process in processes:  # `ray start --block` stops its own processes on SIGTERM
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        time.sleep(2)
        for pid in started:  # whatever outlived its parent: only the processes this fixture started
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        shutil.rmtree(temp, ignore_errors=True)


# -- the corpus and the runs -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Four files: clean prose, junk, exact and near duplicates (across files too) and repeated ids."""
    root = tmp_path_factory.mktemp("ray-corpus") / "corpus"
    records = small_corpus_records()
    records += [{"id": f"doc-{i}", "text": prose(10, seed=1000 + i)} for i in range(160)]
    records += [{"id": "copy-of-doc-7", "text": records[40]["text"]}]  # exact, in another file than its original
    near = records[50]["text"].split(" ")
    near[11] = "altered"
    records += [{"id": "near-doc", "text": " ".join(near)}]
    records += [{"id": "same", "text": prose(10, seed=3000 + s)} for s in range(3)] + [
        {"id": "same#2", "text": prose(10, seed=3100)}
    ]
    for index in range(4):
        write_jsonl(root / f"part-{index}.jsonl", records[index::4])
    return root


def run_prepare(corpus: Path, run_dir: Path, env: dict, *extra: str, wait: bool = True):
    command = [
        sys.executable,
        "-m",
        "mintline",
        "prepare",
        "--inputs",
        str(corpus),
        "--run_dir",
        str(run_dir),
        "--vocab_size",
        "512",
        "--json",
        "-q",
        *extra,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if not wait:
        return process
    out, err = process.communicate(timeout=900)
    assert process.returncode == 0, err[-4000:]
    return json.loads(out)


@pytest.fixture(scope="module")
def local_output(corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("local-run")
    figures = run_prepare(corpus, run, dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1"), "--executor", "local")
    return figures, run / "prepare"


def documents(out: Path) -> list[tuple[str, str, str]]:
    """(split, id, text, source) of every kept document, splits in order, shards in order."""
    from pretrain.corpus.shards import iter_shard_records, shard_paths

    return [
        (split, r["id"], r["text"], r["source"])
        for split in ("train", "validation")
        for r in iter_shard_records(shard_paths(out / "data", split))
    ]


def report_without_timings(out: Path) -> dict:
    report = json.loads((out / "filter_report.json").read_text())
    for key in ("seconds", "docs_per_s"):
        report.pop(key)
    for split in report["split"].values():
        split.pop("shards")  # shard boundaries may differ
    return report


def assert_same_output(ray_out: Path, local_out: Path) -> None:
    assert documents(ray_out) == documents(local_out)
    assert report_without_timings(ray_out) == report_without_timings(local_out)
    assert (ray_out / "removed.jsonl").read_bytes() == (local_out / "removed.jsonl").read_bytes()
    # the tokenizer was trained on the same kept text, in the same order
    assert (ray_out / "tokenizer" / "tokenizer.json").read_bytes() == (
        local_out / "tokenizer" / "tokenizer.json"
    ).read_bytes()


def assert_no_partial_files(work: Path) -> None:
    """Every file under a final name is complete: a killed writer leaves only .tmp-* files."""
    import pyarrow.parquet as pq

    for path in work.rglob("*"):
        if path.is_file() and not path.name.startswith(".tmp-"):
            if path.suffix == ".parquet":
                pq.read_table(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".jsonl":
                [json.loads(line) for line in path.read_text().splitlines()]


# -- the tests ---------------------------------------------------------------------------------------------------
def test_ray_on_two_nodes_keeps_exactly_what_local_keeps(ray_cluster, corpus, local_output, tmp_path):
    address, env, _ = ray_cluster
    local_figures, local_out = local_output
    assert local_figures["exact_duplicates"] >= 2 and local_figures["near_duplicates"] >= 2
    figures = run_prepare(corpus, tmp_path / "run", env, "--executor", "ray", "--ray_address", address)
    assert figures["executor"] == "ray"
    for key in (
        "docs_read",
        "docs_kept",
        "removed_by_rule",
        "exact_duplicates",
        "near_duplicates",
        "dedup_clusters",
        "train_docs",
        "validation_docs",
    ):
        assert figures[key] == local_figures[key], key
    assert_same_output(tmp_path / "run" / "prepare", local_out)
    ids = [doc[1] for doc in documents(tmp_path / "run" / "prepare")]
    assert (
        len(ids) == len(set(ids)) and len([i for i in ids if i.startswith("same")]) == 4
    )  # "same" x3 + "same#2", renamed
    assert not list((tmp_path / "run").glob(".prepare.*")), "the work directory is removed after a finished job"


def test_a_worker_killed_mid_job_leaves_no_partial_shard_and_the_result_is_the_same(
    ray_cluster, corpus, local_output, tmp_path
):

    address, env, cluster = ray_cluster
    _, local_out = local_output
    run = tmp_path / "run"
    job = run_prepare(corpus, run, env, "--executor", "ray", "--ray_address", address, wait=False)
    killed = None
    deadline = time.time() + 600
    while killed is None and job.poll() is None and time.time() < deadline:
        # a worker process of the second node running a task (not an idle worker, not one of Ray's agents)
        busy = [pid for pid in descendants(cluster[1].pid) if _is_busy_worker(_cmdline(pid))]
        if busy and list(run.glob(".prepare.ray-*/filtered/*.json")):
            killed = _cmdline(busy[0])
            os.kill(busy[0], signal.SIGKILL)
        else:
            time.sleep(0.2)
    assert killed is not None, "the job ended before a worker could be killed"
    work = next(run.glob(".prepare.ray-*"), None)
    if work is not None:
        assert_no_partial_files(work)
    out, err = job.communicate(timeout=900)
    assert job.returncode in (0, 2), f"killed {killed}: {err[-6000:]}"
    print(
        f"killed {killed!r} mid-job; the job "
        + ("finished (Ray retried the task)" if job.returncode == 0 else "failed with one line")
    )
    if job.returncode != 0:  # Ray gave up on the task: one line, exit 2, and a re-run resumes from the committed parts
        assert job.returncode == 2 and len(err.strip().splitlines()) == 1, err[-3000:]
        assert not (run / "prepare").exists()
        run_prepare(corpus, run, env, "--executor", "ray", "--ray_address", address)
    assert_same_output(run / "prepare", local_out)
    leftovers = [p for p in (run / "prepare").rglob("*") if p.name.startswith(".tmp-") or p.suffix == ".partial"]
    assert leftovers == []


def test_a_job_killed_mid_way_leaves_whole_parts_and_a_rerun_resumes_from_them(
    ray_cluster, corpus, local_output, tmp_path
):
    address, env, _ = ray_cluster
    _, local_out = local_output
    run = tmp_path / "run"
    job = run_prepare(corpus, run, env, "--executor", "ray", "--ray_address", address, wait=False)
    deadline = time.time() + 600
    while job.poll() is None and not list(run.glob(".prepare.ray-*/filtered/*.json")) and time.time() < deadline:
        time.sleep(0.2)
    assert job.poll() is None, "the job ended before it could be killed"
    job.kill()  # the driver dies: Ray drops the job and its tasks
    job.communicate(timeout=60)
    work = next(run.glob(".prepare.ray-*"))
    committed = list((work / "filtered").glob("*.json"))
    assert committed and not (run / "prepare").exists()
    assert_no_partial_files(work)
    figures = run_prepare(corpus, run, env, "--executor", "ray", "--ray_address", address)
    assert len(committed) <= figures["ray_parts_resumed"] <= figures["ray_parts"]
    assert_same_output(run / "prepare", local_out)
    assert not work.exists()
