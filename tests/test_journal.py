import json

import pytest

from mintline.journal import Journal, digest_path


def test_digest_of_directory_changes_with_any_byte(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("hello")
    first = digest_path(tmp_path / "a")
    (tmp_path / "a" / "x.txt").write_text("hellO")
    assert digest_path(tmp_path / "a") != first


def test_finished_stage_with_same_inputs_is_skipped(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("data")
    journal = Journal(tmp_path / "run")
    calls = []
    for _ in range(2):
        with journal.stage(
            "demo", config={"k": 1}, inputs={"data": source}, outputs=[tmp_path / "run" / "demo"]
        ) as stage:
            if not stage.skipped:
                calls.append(1)
                stage.directory.mkdir(parents=True, exist_ok=True)
                (stage.directory / "out.txt").write_text("result")
                stage.figures["rows"] = 3
    assert calls == [1]
    record = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["demo"]
    assert record["status"] == "finished" and record["figures"] == {"rows": 3}
    assert record["inputs"]["data"].startswith("sha256:")


@pytest.mark.parametrize("change", ["config", "input", "output"])
def test_stage_runs_again_when_anything_changed(tmp_path, change):
    source = tmp_path / "in.txt"
    source.write_text("data")
    journal = Journal(tmp_path / "run")
    out_dir = tmp_path / "run" / "demo"

    def run(config):
        with journal.stage("demo", config=config, inputs={"data": source}, outputs=[out_dir]) as stage:
            if stage.skipped:
                return False
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "out.txt").write_text("result")
            return True

    assert run({"k": 1})
    if change == "config":
        assert run({"k": 2})
    elif change == "input":
        source.write_text("other")
        assert run({"k": 1})
    else:
        (out_dir / "out.txt").write_text("tampered")
        assert run({"k": 1})


def test_crash_is_recorded_as_failed(tmp_path):
    journal = Journal(tmp_path / "run")
    with pytest.raises(RuntimeError):
        with journal.stage("demo", config={}):
            raise RuntimeError("boom")
    record = journal.stage_record("demo")
    assert record["status"] == "failed" and record["error"] == "boom"


def test_a_waiting_stage_is_recorded_with_its_time_and_runs_again(tmp_path):
    journal = Journal(tmp_path / "run")
    runs = []
    for attempt in range(2):
        with journal.stage("labels", config={"budget": 4}, outputs=[tmp_path / "run" / "labels"]) as stage:
            assert not stage.skipped  # waiting never counts as finished
            runs.append(attempt)
            stage.figures["received"] = attempt
            if attempt == 0:
                stage.status = "waiting"
        record = json.loads((tmp_path / "run" / "run.json").read_text())["stages"]["labels"]
        assert record["status"] == ("waiting" if attempt == 0 else "finished")
        assert record["wall_seconds"] >= 0 and record["figures"] == {"received": attempt}
    assert runs == [0, 1]
