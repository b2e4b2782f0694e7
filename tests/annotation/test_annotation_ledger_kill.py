"""A process writing to the ledger, killed with SIGKILL mid-stream, loses no committed batch and
leaves no half batch; writing everything again then records each annotation exactly once."""

import signal
import subprocess
import sys
import textwrap
import time

from annotation.ledger import Ledger

WRITER = textwrap.dedent(
    """
    import sys
    from annotation.ledger import Annotation, Ledger
    from annotation.pairs import PreferencePair

    ledger = Ledger(sys.argv[1])
    pairs = [PreferencePair(f"p{i}", "x", "y") for i in range(40)]
    ledger.add_pairs(pairs)
    for round in range(30):
        batch = [Annotation(pair_id=p.pair_id, annotator=f"ann{round}", choice="ab"[i % 2], external_id=f"r{round}:{i}")
                 for i, p in enumerate(pairs)]
        ledger.record_annotations(batch)
        print(round, flush=True)
    """
)


def test_sigkill_mid_write_then_rerun_records_each_once(tmp_path):
    path = tmp_path / "ledger.sqlite"
    for delay in (0.0, 0.05, 0.2):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        writer.stdout.readline()  # at least one batch committed: now kill it somewhere in the stream
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        with Ledger(path) as ledger:
            assert ledger._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            recorded = ledger.counts()["annotations"]
            assert recorded % 40 == 0 and recorded >= 40  # whole batches only
    finished = subprocess.run([sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    with Ledger(path) as ledger:
        assert ledger.counts()["annotations"] == 30 * 40
        assert ledger._db.execute("SELECT COUNT(DISTINCT external_id) FROM annotations").fetchone()[0] == 30 * 40
