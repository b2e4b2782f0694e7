"""`mintline annotate export` and `status` on the ledger the align stage writes (`<run_dir>/align/ledger.sqlite`)
or any ledger named with --ledger."""

import json

from annotation.backends import SimulatedBackend
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair
from annotation.simulated import SimulatedAnnotators


def fill_ledger(path, count=5):
    """Labels as the align stage's simulated backend records them."""
    with Ledger(path) as ledger:
        sim = SimulatedAnnotators(lambda p, r: len(r), n_annotators=1, temperature=0.0, flip_rate=0.0, tie_margin=0.5)
        pairs = [PreferencePair(f"q{i}", "long answer", "short") for i in range(count)]
        SimulatedBackend(ledger, sim, annotators_per_pair=1).request(pairs, round=0)


def test_export_finds_the_align_stages_ledger(cli, tmp_path):
    run_dir = tmp_path / "run"
    fill_ledger(run_dir / "align" / "ledger.sqlite")
    export = cli("annotate", "export", "--run_dir", run_dir, "--json")
    assert export.code == 0, export
    figures = export.json()
    assert figures["rows"] == 5 and figures["ledger"] == str(run_dir / "align" / "ledger.sqlite")
    rows = [json.loads(line) for line in (run_dir / "annotate" / "preferences.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and {r["chosen"] for r in rows} == {"long answer"}
    assert not (run_dir / "annotate" / "ledger.sqlite").exists()  # reading never creates an empty ledger

    status = cli("annotate", "status", "--run_dir", run_dir, "--json")
    assert status.code == 0 and status.json()["labelled"] == 5


def test_export_takes_a_ledger_path(cli, tmp_path):
    ledger = tmp_path / "elsewhere" / "labels.sqlite"
    fill_ledger(ledger, count=3)
    out = tmp_path / "prefs.jsonl"
    export = cli("annotate", "export", "--ledger", ledger, "--output", out, "--run_dir", tmp_path / "run")
    assert export.code == 0, export
    assert "wrote 3 preference rows" in export.out and str(ledger) in export.out
    assert len(out.read_text().splitlines()) == 3

    missing = cli("annotate", "export", "--ledger", tmp_path / "nope.sqlite", "--run_dir", tmp_path / "run")
    assert missing.code == 2 and "nope.sqlite" in missing.err and missing.err.count("\n") == 1


def test_no_ledger_anywhere_is_one_line_naming_both_places(cli, tmp_path):
    result = cli("annotate", "export", "--run_dir", tmp_path / "empty")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert "annotate/ledger.sqlite" in result.err and "align/ledger.sqlite" in result.err and "--ledger" in result.err
