"""The run report's plots say what they show: chance and the baseline on the labels plot, the
decision threshold on the watermark histogram, and no near-empty label-count chart."""

from __future__ import annotations

import json

import matplotlib.image
import pytest

from mintline.journal import Journal
from mintline.pipeline.report import labels_figure, watermark_figure, write_report

CURVE = [{"labels": 12, "accuracy": 0.55}, {"labels": 24, "accuracy": 0.61}, {"labels": 36, "accuracy": 0.58}]
ALIGN = {
    "state": "done",
    "strategy": "uncertainty+kcenter",
    "budget": 36,
    "labels_requested": 36,
    "labels_received": 34,
    "labels_skipped": 2,
    "pseudo_labels": 0,
    "backend": "simulated",
    "gold_eval_pairs": 40,
    "curve": CURVE,
    "ledger_counts": {"requested": 36, "labelled": 34, "skipped": 2, "simulated": 34},
}


def detection_rows(p_values):
    return [{"z_score": 1.0, "p_value": p, "watermarked": p <= 1e-4} for p in p_values]


@pytest.fixture
def finished_run(tmp_path):
    run_dir = tmp_path / "run"
    journal = Journal(run_dir)
    journal.update_stage("align", status="finished", wall_seconds=60.0, figures=ALIGN)
    journal.update_stage(
        "watermark",
        status="finished",
        wall_seconds=30.0,
        figures={"key_id": "abc", "scheme": "kgw", "params": {}, "fpr": 1e-4, "marked": {"flagged": 3, "texts": 4}},
    )
    (run_dir / "watermark").mkdir(parents=True)
    detection = {"marked": detection_rows([1e-9, 1e-12, 2e-6, 0.0]), "unmarked": detection_rows([0.4, 0.07, 0.9])}
    (run_dir / "watermark" / "detection.json").write_text(json.dumps(detection))
    return run_dir


def test_report_draws_labels_and_watermark_plots_and_no_label_count_chart(finished_run):
    paths = write_report(finished_run)
    report = finished_run / "report"
    for name in ("labels.png", "watermark.png"):
        image = matplotlib.image.imread(report / name)
        assert image.shape[0] > 200 and image.shape[1] > 400
    assert not (report / "label_counts.png").exists()
    markdown = open(paths["markdown"]).read()
    assert "34 received (simulated 34), 2 skipped" in markdown  # the counts are said, not charted
    assert "dashed line at FPR 0.0001" in markdown


def test_labels_plot_has_chance_and_a_fixed_scale():
    figure = labels_figure(ALIGN)
    axis = figure.axes[0]
    assert axis.get_ylim() == (0.4, 1.0)  # noise of ±0.03 looks like noise, not a trend
    lines = {line.get_label(): line for line in axis.get_lines()}
    assert list(lines["chance (0.5)"].get_ydata()) == [0.5, 0.5]
    assert "reward model (uncertainty+kcenter)" in lines and "random selection" not in lines

    random_curve = [{"labels": 12, "accuracy": 0.52}, {"labels": 36, "accuracy": 0.3}]
    with_random = labels_figure({**ALIGN, "random_curve": random_curve})
    axis = with_random.axes[0]
    assert "random selection" in {line.get_label() for line in axis.get_lines()}
    assert axis.get_ylim()[0] < 0.3  # a curve below 0.4 widens the range instead of leaving the plot


def test_watermark_histogram_marks_the_decision_threshold():
    figure = watermark_figure({"marked": detection_rows([1e-9, 0.0]), "human": detection_rows([0.5, 0.02])}, 1e-4)
    axis = figure.axes[0]
    threshold = [line for line in axis.get_lines() if "decision threshold" in line.get_label()]
    assert len(threshold) == 1 and list(threshold[0].get_xdata()) == [4.0, 4.0]  # -log10(1e-4)
    assert "p = 0.0001" in threshold[0].get_label()
    # far past the threshold the axis is capped, so the texts near it keep their own bins
    low, high = axis.get_xlim()
    assert low < 1 and 20 <= high < 25
    assert "beyond 20 drawn at 20" in axis.get_xlabel()
