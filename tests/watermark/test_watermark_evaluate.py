"""`mintline watermark evaluate`: robustness table, human FPR, quality cost, plot, journal."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from watermark.evaluate import bootstrap_interval, distinct_n, roc_auc


def test_roc_auc_matches_pairwise_counting():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40).round(1), rng.normal(0, 1, 30).round(1)  # rounding makes ties
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    assert roc_auc(pos, neg) == pytest.approx(np.mean(pairs), abs=1e-12)
    interval = bootstrap_interval(roc_auc, [pos, neg], 200, 0.95, rng)
    assert interval[0] <= roc_auc(pos, neg) <= interval[1]
    assert distinct_n([[1, 2, 1, 2]], 2) == pytest.approx(2 / 3)


def test_evaluate_reports_every_attack_and_length(cli, single_thread, tmp_path, trained_model_dir, kgw_key):
    args = (
        "watermark",
        "evaluate",
        "--model",
        trained_model_dir,
        "--key",
        kgw_key,
        "--num_samples",
        "24",
        "--lengths",
        "32",
        "128",
        "--attacks",
        "none",
        "word_deletion:0.3",
        "word_substitution:0.5",
        "copy_paste:0.5",
        "--bootstrap",
        "50",
        "--human_passages",
        "300",
        "--batch_size",
        "24",
        "--run_dir",
        tmp_path,
        "-q",
    )
    run = cli(*args, "--json")
    assert run.code == 0, run
    report = run.json()
    table = {(row["attack"], row["length"]): row for row in report["table"]}
    assert len(table) == 8
    clean = table[("none", 128)]
    assert clean["tpr_at_0.01"] == 1.0 and clean["tpr_at_0.0001"] >= 0.9 and clean["auc"] >= 0.99
    for row in report["table"]:
        low, high = row["tpr_at_0.01_ci"]
        assert low <= row["tpr_at_0.01"] <= high and row["auc_ci"][0] <= row["auc"] <= row["auc_ci"][1]
        assert row["unmarked_fpr_at_0.0001"] == 0.0
    assert table[("word_substitution:0.5", 128)]["median_z_marked"] < clean["median_z_marked"]
    human = report["human"]
    assert human["passages"] == 300 and human["fpr_at_0.0001"]["false_positives"] <= 1
    quality = report["quality"]
    assert (
        quality["perplexity_marked"] > 0
        and quality["perplexity_unmarked"] > 0
        and 0 < quality["distinct_2_marked"] <= 1
    )
    png = (tmp_path / "watermark" / "evaluation" / "score_distributions.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    journal = json.loads((tmp_path / "run.json").read_text())
    assert journal["stages"]["watermark_evaluate"]["status"] == "finished"
    assert journal["stages"]["watermark_evaluate"]["figures"]["human_passages"] == 300
    again = cli(*args)
    assert again.code == 0 and "up to date" in again.out


def test_evaluate_rejects_a_bad_attack_before_any_work(cli, tmp_path, trained_model_dir, kgw_key):
    run = cli(
        "watermark",
        "evaluate",
        "--model",
        trained_model_dir,
        "--key",
        kgw_key,
        "--attacks",
        "paraphrase:0.3",
        "--run_dir",
        tmp_path,
    )
    assert run.code == 2 and "paraphrase" in run.err and "word_deletion" in run.err
