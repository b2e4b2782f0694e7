"""The Ray executor's pieces that need no cluster: its dedup and id decisions match the local
executor's, its parts are committed atomically and skipped once committed, and without Ray
`--executor ray` says how to install it. The cluster run itself: tests/integration/test_prepare_ray.py."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from prepare_helpers import small_corpus_records, write_jsonl

from pretrain.corpus.config import PrepareConfig
from pretrain.dedup import DedupConfig, DuplicateIndex, Fingerprint, Fingerprinter
from pretrain.prepare import UniqueIds
from pretrain.ray_clusters import Clusters, involved_from_rows, unique_ids
from pretrain.ray_parts import (
    WorkDir,
    dedup_keys,
    filter_part,
    filtered_marker,
    filtered_name,
    id_key,
    involved_documents,
    position_of,
)


def shuffle_like_ray(documents: list[tuple[int, str, Fingerprint | None]]) -> list[dict]:
    """What the Ray job's groupby and map hand the driver, computed in plain Python."""
    rows = {"position": [], "id": [], "source": [], "size": [], "passed": [], "signature": [], "keys": []}
    holders: dict[bytes, list[int]] = {}
    for position, doc_id, fingerprint in documents:
        keys = [id_key(doc_id)] + (dedup_keys(fingerprint) if fingerprint else [])
        for key in keys:
            holders.setdefault(key, []).append(position)
        for name, value in (
            ("position", position),
            ("id", doc_id),
            ("source", "s"),
            ("size", 10),
            ("passed", fingerprint is not None),
            ("signature", fingerprint.signature if fingerprint else None),
            ("keys", keys),
        ):
            rows[name].append(value)
    shared = {key: min(held) for key, held in holders.items() if len(held) > 1}
    batch = pa.table(rows)
    found = involved_documents(batch, shared)
    return [dict(zip(found, values)) for values in zip(*found.values())]


def synthetic_fingerprint(
    rng: random.Random, bands: list[int], config: DedupConfig, exact: bytes | None = None
) -> Fingerprint:
    signature = np.array([rng.randrange(2**32) for _ in range(config.num_perm)], dtype=np.uint32)
    return Fingerprint(exact or rng.randbytes(16), signature.tobytes(), tuple(bands))


def test_clusters_decide_exactly_like_the_local_duplicate_index(tmp_path):
    config = DedupConfig(minhash_bands=4, minhash_rows=2)
    rng = random.Random(5)
    fingerprints = []
    for index in range(300):  # bands drawn from a small pool: many chains, merges through later documents
        bands = [rng.randrange(40) * 10 + band if rng.random() < 0.15 else rng.randrange(2**62) for band in range(4)]
        exact = bytes(16) if index % 37 == 0 else None
        fingerprints.append(synthetic_fingerprint(rng, bands, config, exact))
    # the case DuplicateIndex handles apart: document 1 is first in all its buckets, joined to 0 only through 2
    fingerprints[:3] = [
        synthetic_fingerprint(rng, [11, 12, 13, 14], config),
        synthetic_fingerprint(rng, [21, 22, 23, 24], config),
        synthetic_fingerprint(rng, [11, 99, 23, 98], config),
    ]
    index = DuplicateIndex(config, tmp_path / "signatures.bin")
    for fingerprint in fingerprints:
        index.add(fingerprint)
    index.finish()
    positions = [position_of(i // 100, i % 100) for i in range(len(fingerprints))]  # as several sources give them
    involved = involved_from_rows(
        shuffle_like_ray([(p, f"d{i}", f) for i, (p, f) in enumerate(zip(positions, fingerprints))])
    )
    clusters = Clusters(involved, config.num_perm)
    removed = clusters.removed()
    back = {p: i for i, p in enumerate(positions)}
    expected = {i: index.verdict(i) for i in range(len(fingerprints)) if not index.verdict(i).kept}
    assert expected[1].matched == 0 and len(expected) > 40
    assert {back[p] for p in removed} == set(expected)
    for position, verdict in removed.items():
        want = expected[back[position]]
        assert (verdict.reason, back[verdict.matched], back[verdict.kept_instead]) == (
            want.reason,
            want.matched,
            want.kept_instead,
        )
        assert verdict.similarity == pytest.approx(want.similarity)
    assert clusters.count() == index.clusters()
    index.close()


def test_clusters_on_real_fingerprints_of_exact_and_near_copies(tmp_path):
    config = DedupConfig()
    fingerprint = Fingerprinter(config)
    records = small_corpus_records()
    index = DuplicateIndex(config, tmp_path / "signatures.bin")
    prints = [fingerprint(r["text"]) for r in records]
    for item in prints:
        index.add(item)
    index.finish()
    involved = involved_from_rows(shuffle_like_ray([(i, r["id"], f) for i, (r, f) in enumerate(zip(records, prints))]))
    removed = Clusters(involved, config.num_perm).removed()
    assert {records[i]["id"]: v.reason for i, v in removed.items()} == {
        "exact-copy": "exact_duplicate",
        "near-copy": "near_duplicate",
    }
    near = [r["id"] for r in records].index("near-copy")
    assert removed[near].similarity == pytest.approx(index.verdict(near).similarity)
    index.close()


def test_unique_ids_rename_like_the_local_executor():
    ids = ["a", "a", "a#2", "b", "a#2", "a", "c#2", "c", "c"]
    local = UniqueIds()
    expected = [local(doc_id) for doc_id in ids]
    involved = involved_from_rows(shuffle_like_ray([(10 * i, doc_id, None) for i, doc_id in enumerate(ids)]))
    renames = unique_ids(involved)
    assert [renames.get(10 * i, doc_id) for i, doc_id in enumerate(ids)] == expected
    assert expected == ["a", "a#2", "a#2#2", "b", "a#2#3", "a#3", "c#2", "c", "c#3"]


def test_a_part_is_committed_whole_and_skipped_once_committed(tmp_path):
    import pyarrow.parquet as pq

    corpus = write_jsonl(tmp_path / "docs.jsonl", small_corpus_records())
    config = PrepareConfig.from_profile("datatrove", inputs=[str(corpus)], train_tokenizer=False)
    work = WorkDir(str(tmp_path / "work"))
    spec = {"part": 3, "source_index": 0, "kind": "jsonl", "path": str(corpus), "slice": 0, "slices": 1}
    summary = filter_part(spec, config, work.uri)
    table = pq.read_table(work.path(filtered_name(3)))
    assert summary["docs"] == table.num_rows == len(small_corpus_records()) and summary["passed"] == sum(
        table["passed"].to_pylist()
    )
    assert summary["counts"]["filters"]["gopher_quality"]["dropped"]
    marker = work.path(filtered_marker(3))
    before = os.stat(marker).st_mtime_ns, os.stat(work.path(filtered_name(3))).st_mtime_ns
    assert filter_part(spec, config, work.uri) == summary  # committed: read back, not redone
    assert (os.stat(marker).st_mtime_ns, os.stat(work.path(filtered_name(3))).st_mtime_ns) == before

    def dies_half_way(path, filesystem):
        with filesystem.open_output_stream(path) as handle:
            handle.write(b'{"half": ')
            raise OSError("worker lost")

    with pytest.raises(OSError, match="worker lost"):
        work.commit("written/part-00000/train-00000.jsonl", dies_half_way)
    assert not work.exists("written/part-00000/train-00000.jsonl")
    assert [p.name for p in (tmp_path / "work" / "written" / "part-00000").iterdir()] == []


def test_slices_of_a_source_share_its_documents_out_exactly_once(tmp_path):
    records = [{"id": f"d{i}", "text": f"document number {i} with a few words"} for i in range(700)]
    corpus = write_jsonl(tmp_path / "docs.jsonl", records)
    config = PrepareConfig.from_profile(
        "datatrove", inputs=[str(corpus)], filters=["none"], exact_dedup=False, near_dedup=False
    )
    work = WorkDir(str(tmp_path / "work"))
    seen = []
    for piece in range(3):
        filter_part(
            {"part": piece, "source_index": 2, "kind": "jsonl", "path": str(corpus), "slice": piece, "slices": 3},
            config,
            work.uri,
        )
        seen += work.read_table(filtered_name(piece), columns=["position", "id"]).to_pylist()
    assert sorted(r["position"] for r in seen) == [position_of(2, n) for n in range(700)]
    assert {r["id"] for r in seen} == {r["id"] for r in records}


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path):
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    corpus = write_jsonl(tmp_path / "docs.jsonl", small_corpus_records())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mintline",
            "prepare",
            "--inputs",
            str(corpus),
            "--run_dir",
            str(tmp_path / "run"),
            "--executor",
            "ray",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "mintline prepare: error: --executor ray needs Ray Data, which is not installed: "
        "pip install -e '.[ray]' (ray[data]==2.60.0)"
    ]
    assert not (tmp_path / "run" / "prepare").exists()


def test_a_failed_job_is_one_line_and_a_typed_error_from_a_task_comes_back_as_itself():
    from pretrain.errors import CorpusError
    from pretrain.ray_executor import RayJobError, _job_error

    unreadable = CorpusError("x.parquet: not a readable Parquet file (bad magic)")
    try:
        try:
            raise unreadable
        except CorpusError as exc:
            raise RuntimeError("Map(_filter_row) failed") from exc  # how Ray Data hands back a task's exception
    except RuntimeError as failure:
        assert _job_error(failure, "/w") is unreadable
    lost = _job_error(RuntimeError("worker died unexpectedly\nTraceback ..."), "/runs/x/.prepare.ray-1")
    assert isinstance(lost, RayJobError) and lost.exit_code == 2
    assert str(lost).splitlines() == [str(lost)] and "/runs/x/.prepare.ray-1" in str(lost) and "resumes" in str(lost)


def test_parts_cover_every_source_and_at_least_min_parts(tmp_path):
    from pretrain.corpus.readers import resolve_inputs
    from pretrain.ray_executor import MIN_PARTS, plan_parts

    for index in range(3):
        write_jsonl(tmp_path / f"f{index}.jsonl", small_corpus_records())
    parts = plan_parts(resolve_inputs([str(tmp_path)]))
    assert len(parts) == 3 * -(-MIN_PARTS // 3) and [p["part"] for p in parts] == list(range(len(parts)))
    assert {(p["source_index"], p["slice"]) for p in parts} == {
        (s, k) for s in range(3) for k in range(parts[0]["slices"])
    }


def test_a_written_part_holds_its_range_in_input_order_in_parquet_shards(tmp_path):
    import pyarrow.parquet as pq

    from pretrain.ray_parts import write_part, written_marker

    records = small_corpus_records()
    corpus = write_jsonl(tmp_path / "docs.jsonl", records)
    config = PrepareConfig.from_profile("datatrove", inputs=[str(corpus)], exact_dedup=False, near_dedup=False)
    work = WorkDir(str(tmp_path / "work"))
    for piece in range(2):
        spec = {"part": piece, "source_index": 0, "kind": "jsonl", "path": str(corpus), "slice": piece, "slices": 2}
        filter_part(spec, config, work.uri)
    plan = {
        "renames": {str(position_of(0, 1)): "renamed"},
        "duplicates": [position_of(0, 2)],
        "threshold": None,
        "format": "parquet",
        "max_shard_bytes": 5000,
    }
    spec = {"part": 0, "filtered_parts": [0, 1], "start": position_of(0, 0), "stop": position_of(0, 20)}
    summary = write_part(spec, plan, work.uri)
    assert (
        work.exists(written_marker(0)) and len(summary["train"]["files"]) > 1 and summary["validation"]["files"] == []
    )
    rows = [row for name in summary["train"]["files"] for row in pq.read_table(work.path(name)).to_pylist()]
    assert [row["id"] for row in rows] == ["clean-0", "renamed"] + [f"clean-{i}" for i in range(3, 20)]
    assert rows[0]["text"] == records[0]["text"] and set(rows[0]) == {"id", "text", "source"}
    assert summary["train"]["docs"] == len(rows)
