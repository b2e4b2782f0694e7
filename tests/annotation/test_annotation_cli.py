"""`mintline annotate` without a server: status, export, and the one-line errors."""

import json
import socket

from annotation.backends import SimulatedBackend
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair
from annotation.simulated import SimulatedAnnotators

KEY = "cli-test-key-abcdef0123456789"


def filled_run(tmp_path):
    run_dir = tmp_path / "run"
    with Ledger(run_dir / "annotate" / "ledger.sqlite") as ledger:
        sim = SimulatedAnnotators(lambda p, r: len(r), n_annotators=2, temperature=0.0, flip_rate=0.0, tie_margin=0.5)
        pairs = [PreferencePair(f"q{i}", "long answer", "short") for i in range(5)] + [
            PreferencePair("tie", "same", "same")
        ]
        SimulatedBackend(ledger, sim, annotators_per_pair=2).request(pairs, round=0)
    return run_dir


def test_status_and_export(cli, tmp_path):
    run_dir = filled_run(tmp_path)
    status = cli("annotate", "status", "--run_dir", run_dir, "--label_budget", "24", "--json")
    assert status.code == 0, status
    figures = status.json()
    assert figures["requested"] == 6 and figures["labelled"] == 6 and figures["simulated"] == 12
    assert figures["budget_used"] == 0.5 and figures["agreement"]["percent_agreement"] == 1.0
    assert cli("annotate", "status", "--run_dir", run_dir).out.count("\n") > 10  # readable key: value lines

    export = cli("annotate", "export", "--format", "trl", "--run_dir", run_dir)
    assert export.code == 0 and "wrote 5 preference rows" in export.out
    rows = [json.loads(line) for line in (run_dir / "annotate" / "preferences.jsonl").read_text().splitlines()]
    assert {r["chosen"] for r in rows} == {"long answer"} and rows[0]["provenance"]["kind"] == "simulated"
    journal = json.loads((run_dir / "run.json").read_text())
    assert journal["stages"]["annotate"]["commands"]["export"]["figures"]["rows"] == 5
    assert cli("annotate", "export", "--format", "csv", "--run_dir", run_dir).code == 2


def test_errors_are_one_line_and_never_show_the_key(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    missing = cli("annotate", "status", "--run_dir", tmp_path / "empty")
    assert missing.code == 2 and "annotate init" in missing.err and missing.err.count("\n") == 1

    no_url = cli("annotate", "init", "--run_dir", tmp_path / "r1")
    assert no_url.code == 2 and "LABEL_STUDIO_URL" in no_url.err

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    down = cli("annotate", "init", "--run_dir", tmp_path / "r2", "--url", url, "--retries", "1", "--backoff", "0.01")
    assert down.code == 2 and url in down.err and "did not answer" in down.err
    assert down.err.count("\n") == 1 and "Traceback" not in down.err
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "q", "response_a": "x", "response_b": "y"}) + "\n")
    push = cli("annotate", "push", pairs, "--run_dir", tmp_path / "r2", "--url", url, "--retries", "0")
    assert push.code == 2 and url in push.err
    with Ledger(tmp_path / "r2" / "annotate" / "ledger.sqlite") as ledger:
        assert ledger.counts()["requested"] == 0 and ledger.get_meta("labelstudio_project") is None
    for run in (no_url, down, push):
        assert KEY not in run.out + run.err
    assert KEY not in (tmp_path / "r2" / "annotate" / "ledger.sqlite").read_bytes().decode("latin-1")
