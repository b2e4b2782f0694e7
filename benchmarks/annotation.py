"""Push and pull throughput against a real Label Studio server, with same-run baselines.

    python benchmarks/annotation.py            # 2,000 tasks (HH-RLHF harmless-base test pairs)
    python benchmarks/annotation.py --quick    # 300 tasks, under 5 minutes with a warm server

Uses the server named by LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY, or starts one with
.ci/labelstudio.py (and stops it at the end). The steps:

1. push, in rounds (as the active-learning loop does), interleaved with a baseline that
   imports the same payloads with one bare `import_tasks` call per round into a second project
   (no dedupe listing, no verification): `push_vs_raw_import` is mintline's rate / the bare rate;
2. simulated annotators (gold = HH-RLHF's human choice, 25% flips) annotate every task through
   the API, one annotation per task (timed, not a target);
3. pull into a fresh copy of the post-push ledger, interleaved with the obvious alternative,
   a full JSON export of the project (`/api/projects/{id}/export`), three times each (medians);
   then an incremental re-pull with nothing new.

Timings swing 2-3x on a shared machine: compare the ratios, which come from the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if not __package__:  # `python benchmarks/annotation.py`: this folder would shadow the packages; use the repo root
    sys.path[0] = str(ROOT)
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads the variable then

from annotation.config import LabelStudioSettings  # noqa: E402
from annotation.labelstudio import LabelStudioClient  # noqa: E402
from annotation.labelstudio_annotators import annotate_project  # noqa: E402
from annotation.pairs import PreferencePair  # noqa: E402
from annotation.push import shown_order, task_payload  # noqa: E402
from annotation.simulated import SimulatedAnnotators  # noqa: E402
from annotation.stage import AnnotationConfig, init_project, pull, push  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
MARK = "\n\nAssistant:"


def load_pairs(n: int, seed: int = 0) -> tuple[list[PreferencePair], dict[str, str]]:
    """HH-RLHF rows as pairs (sides shuffled, synthetic reward-model confidences) + the human choice."""
    rng = random.Random(seed)
    pairs, human_choice = [], {}
    if DATA.exists():
        with gzip.open(DATA, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle]
    else:  # the shared data is absent: synthetic dialogues of similar length
        rows = [
            {
                "chosen": f"\n\nHuman: q{i}{MARK} helpful answer {i} " * 8,
                "rejected": f"\n\nHuman: q{i}{MARK} no {i} " * 8,
            }
            for i in range(n)
        ]
    for row in rows:
        cut_c, cut_r = row["chosen"].rfind(MARK), row["rejected"].rfind(MARK)
        prompt, chosen, rejected = (
            row["chosen"][: cut_c + len(MARK)],
            row["chosen"][cut_c + len(MARK) :],
            row["rejected"][cut_r + len(MARK) :],
        )
        if cut_c < 0 or chosen == rejected:
            continue
        a, b = (chosen, rejected) if rng.random() < 0.5 else (rejected, chosen)
        pair = PreferencePair(
            prompt.strip(),
            a.strip(),
            b.strip(),
            model="hh-rlhf",
            predicted=rng.choice("ab"),
            confidence=round(rng.uniform(0.5, 1.0), 4),
        )
        if pair.pair_id in human_choice:
            continue
        human_choice[pair.pair_id] = chosen.strip()
        pairs.append(pair)
        if len(pairs) == n:
            break
    return pairs, human_choice


SERVER_ENV = dict(
    os.environ, LABEL_STUDIO_STATE=os.path.join(tempfile.gettempdir(), f"mintline-bench-ls-{os.getpid()}.json")
)


def start_server() -> tuple[str, str]:
    """A server of our own, with its own state file, so a CI or development server is left alone."""
    script = ROOT / ".ci" / "labelstudio.py"
    exports = subprocess.run(
        [sys.executable, str(script), "start"], check=True, capture_output=True, text=True, env=SERVER_ENV
    ).stdout
    env = dict(
        line.removeprefix("export ").split("=", 1) for line in exports.splitlines() if line.startswith("export ")
    )
    subprocess.run([sys.executable, str(script), "wait"], check=True, env=SERVER_ENV)
    return env["LABEL_STUDIO_URL"], env["LABEL_STUDIO_API_KEY"]


def stop_server() -> None:
    subprocess.run([sys.executable, str(ROOT / ".ci" / "labelstudio.py"), "stop"], check=False, env=SERVER_ENV)


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 tasks instead of 2,000")
    parser.add_argument("--tasks", type=int, default=None)
    args = parser.parse_args()
    n_tasks = args.tasks or (300 if args.quick else 2000)
    rounds = 3 if args.quick else 4

    started_here = not (os.environ.get("LABEL_STUDIO_URL") and os.environ.get("LABEL_STUDIO_API_KEY"))
    if started_here:
        print("starting a Label Studio server (.ci/labelstudio.py)...", file=sys.stderr, flush=True)
        url, key = start_server()
    else:
        url, key = os.environ["LABEL_STUDIO_URL"], os.environ["LABEL_STUDIO_API_KEY"]
    work = Path(tempfile.mkdtemp(prefix="mintline-bench-annotation-"))
    try:
        results = run(url, key, work, n_tasks, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started_here:
            stop_server()
    print(json.dumps(results))


def run(url: str, key: str, work: Path, n_tasks: int, rounds: int) -> dict:
    pairs, human_choice = load_pairs(n_tasks)
    tag = uuid.uuid4().hex[:6]
    settings = LabelStudioSettings(url=url, project_title=f"bench mintline {tag}", timeout=120)
    config = AnnotationConfig(workdir=str(work / "run" / "annotate"), labelstudio=settings, model_version="bench-rm")
    client = LabelStudioClient(url, key, timeout=120)
    project_id = init_project(config, key)["project_id"]
    baseline_id = client.create_project(f"bench raw import {tag}", "bench-rm")

    # 1. push in rounds, interleaved with the bare import of the same tasks
    ours, bare = [], []
    size = -(-len(pairs) // rounds)
    for start in range(0, len(pairs), size):
        batch = pairs[start : start + size]
        seconds, figures = timed(lambda: push(config, batch, round=start // size, api_key=key))
        assert figures["pushed"] == len(batch), figures
        ours.append(seconds)
        payload = [task_payload(p, shown_order(0, p.pair_id), "bench-rm") for p in batch]
        seconds, answer = timed(
            lambda: client.sdk.projects.import_tasks(baseline_id, request=payload, return_task_ids=True)
        )
        assert len(answer.task_ids) == len(batch)
        bare.append(seconds)
    push_rate, bare_rate = len(pairs) / sum(ours), len(pairs) / sum(bare)
    snapshot = work / "after-push.sqlite"
    shutil.copy(config.ledger_path, snapshot)

    # 2. simulated annotators through the API (gold: the HH-RLHF human choice)
    chosen = {(p.prompt, human_choice[p.pair_id]) for p in pairs}
    sim = SimulatedAnnotators(
        lambda prompt, response: float((prompt, response) in chosen),
        n_annotators=3,
        temperature=0.0,
        flip_rate=0.25,
        seed=1,
    )
    annotate_seconds, made = timed(
        lambda: annotate_project(client, project_id, sim, annotators_per_task=1, skip_rate=0.02)
    )
    n_annotations = made["annotations"] + made["skips"]

    # 3. pull into a fresh ledger vs a full export, interleaved, 3 times each
    pulls, exports = [], []
    for attempt in range(3):
        fresh = work / f"pull{attempt}" / "annotate"
        fresh.mkdir(parents=True)
        shutil.copy(snapshot, fresh / "ledger.sqlite")
        fresh_config = AnnotationConfig(workdir=str(fresh), labelstudio=settings)
        seconds, figures = timed(lambda: pull(fresh_config, key))
        assert figures["new"] == n_annotations, (figures, n_annotations)
        pulls.append(seconds)
        seconds, exported = timed(
            lambda: client.request_json("GET", f"api/projects/{project_id}/export", {"exportType": "JSON"})
        )
        assert sum(len(t["annotations"]) for t in exported) == n_annotations
        exports.append(seconds)
    repull_seconds, figures = timed(lambda: pull(fresh_config, key))
    assert figures["new"] == 0

    pull_s, export_s = statistics.median(pulls), statistics.median(exports)
    table = [
        ("push (mintline: dedupe listing, inline predictions, verify, ledger)", f"{push_rate:8.1f} tasks/s"),
        ("push baseline (bare import_tasks, same payload)", f"{bare_rate:8.1f} tasks/s"),
        (
            "annotate (simulated annotators via API, 1 per task)",
            f"{n_annotations / annotate_seconds:8.1f} annotations/s",
        ),
        ("pull (mintline, fresh ledger, median of 3)", f"{n_annotations / pull_s:8.1f} annotations/s"),
        ("pull baseline (full JSON export, median of 3)", f"{n_annotations / export_s:8.1f} annotations/s"),
        ("incremental re-pull, nothing new", f"{repull_seconds:8.2f} s"),
    ]
    print(f"\nLabel Studio at {url}: {len(pairs)} tasks, {n_annotations} annotations", file=sys.stderr)
    for name, value in table:
        print(f"  {name:<70} {value}", file=sys.stderr)
    return {
        "push_tasks_per_s": round(push_rate, 1),
        "pull_annotations_per_s": round(n_annotations / pull_s, 1),
        "push_vs_raw_import": round(push_rate / bare_rate, 3),
        "pull_vs_full_export": round(export_s / pull_s, 3),
        "repull_no_change_s": round(repull_seconds, 3),
        "annotate_annotations_per_s": round(n_annotations / annotate_seconds, 1),
        "tasks": len(pairs),
        "annotations": n_annotations,
    }


if __name__ == "__main__":
    main()
