"""The run report: RUN_DIR/report/report.html (with PNG plots) and report.md, from run.json
and the files the stages wrote. Written after every `mintline run`, also when it stops to wait
for labels; `mintline run --report_only` rewrites it.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from mintline import layout
from mintline.console import format_value
from mintline.journal import Journal, atomic_write_text

STAGE_ORDER = ("prepare", "pretrain", "align", "watermark", "release")


def write_report(run_dir: str | Path) -> dict[str, str]:
    run_dir = Path(run_dir)
    out = layout.stage_dir(run_dir, layout.REPORT)
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(run_dir).load()
    stages = journal.get("stages", {})
    sections: list[tuple[str, list[str], list[str]]] = []  # (title, markdown/plain paragraphs, images)

    sections.append(("Stages", [_stage_table(stages)], []))
    sections.append(_prepare_section(run_dir, stages.get("prepare"), out))
    sections.append(_pretrain_section(run_dir, stages.get("pretrain"), out))
    sections.append(_align_section(run_dir, stages.get("align"), out))
    sections.append(_watermark_section(run_dir, stages.get("watermark"), out))
    sections.append(_release_section(stages.get("release")))

    markdown = _markdown(run_dir, journal, sections)
    atomic_write_text(out / "report.md", markdown)
    atomic_write_text(out / "report.html", _html(run_dir, journal, sections))
    return {"html": str(out / "report.html"), "markdown": str(out / "report.md")}


# -- sections -----------------------------------------------------------------------------------
def _stage_table(stages: dict) -> str:
    rows = ["| stage | status | wall time | finished |", "|---|---|---|---|"]
    for name in STAGE_ORDER:
        record = stages.get(name)
        if record is None:
            rows.append(f"| {name} | not run | | |")
            continue
        seconds = record.get("wall_seconds")
        rows.append(
            f"| {name} | {record.get('status')} | {f'{seconds:.0f} s' if seconds is not None else ''} | "
            f"{record.get('finished_at') or ''} |"
        )
    return "\n".join(rows)


def _prepare_section(run_dir: Path, record: dict | None, out: Path):
    title = "Data: filtering and deduplication"
    report_path = layout.filter_report(run_dir)
    if not record or not report_path.is_file():
        return title, ["Not run yet."], []
    report = json.loads(report_path.read_text())
    kept = report.get("kept", {})
    text = [
        f"Profile `{report.get('profile')}`: read {report.get('docs_read', 0):,} documents "
        f"({report.get('bytes_read', 0) / 1e6:.2f} MB), kept {kept.get('docs', 0):,} "
        f"({kept.get('bytes', 0) / 1e6:.2f} MB). Split: "
        + ", ".join(f"{name} {part.get('docs', 0):,} documents" for name, part in report.get("split", {}).items())
        + ".",
    ]
    removed = report.get("removed_by_rule", {})
    if removed:
        rows = ["| rule | documents removed | bytes removed |", "|---|---|---|"]
        for rule, value in sorted(removed.items(), key=lambda item: -_docs(item[1])):
            rows.append(f"| {rule} | {_docs(value):,} | {_bytes(value):,} |")
        text.append("\n".join(rows))
    dedup = report.get("dedup", {})
    if dedup:
        text.append(
            f"Deduplication: {dedup.get('exact_duplicates', {}).get('docs', 0)} exact and "
            f"{dedup.get('near_duplicates', {}).get('docs', 0)} near duplicates removed."
        )
    images = []
    if removed:
        by_count = dict(sorted(((k, _docs(v)) for k, v in removed.items()), key=lambda item: -item[1]))
        images.append(_save(_bar_figure(by_count, "documents removed per rule"), out / "filters.png"))
    return title, text, [i for i in images if i]


def _pretrain_section(run_dir: Path, record: dict | None, out: Path):
    title = "Pretraining"
    if not record:
        return title, ["Not run yet."], []
    f = record.get("figures", {})
    text = [
        f"Model `{f.get('model')}` with {_parameters(f)} parameters trained {f.get('steps')} steps "
        f"({f.get('tokens_trained', 0):,} tokens, {format_value(f.get('epochs'))} epochs) in {f.get('precision')} "
        f"({f.get('precision_reason')}). Validation loss {format_value(f.get('initial_eval_loss'))} → "
        f"{format_value(f.get('eval_loss'))} (perplexity {format_value(f.get('eval_perplexity'))}); "
        f"{format_value(f.get('tokens_per_second'))} tokens/s on {f.get('world_size')} process(es)"
        + (f", MFU {f['mfu']:.1%}" if f.get("mfu") else "")
        + "."
    ]
    if f.get("time_to_target"):
        from mintline.commands.pretrain import describe_time_to_target

        text.append(f"Recipe `{f.get('recipe')}`: {describe_time_to_target(f['time_to_target'])}.")
    sparsity = f.get("sparsity")
    if sparsity:
        text.append(_sparsity_text(sparsity))
    images = []
    history_path = layout.pretrain_log_history(run_dir)
    if history_path.is_file():
        history = json.loads(history_path.read_text())
        train = [(e["step"], e["loss"]) for e in history if "loss" in e]
        val = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
        marks = (sparsity or {}).get("pruning_steps") or []
        images.append(
            _save(
                _line_figure({"train": train, "validation": val}, "step", "loss (nats/token)", marks=marks),
                out / "loss.png",
            )
        )
    return title, text, [i for i in images if i]


def _parameters(f: dict) -> str:
    before, after = f.get("parameters", 0), f.get("parameters_final")
    return f"{before:,} → {after:,} (pruned)" if after is not None and after != before else f"{before:,}"


def _sparsity_text(s: dict) -> str:
    """What dynamic pruning / sparse training did and saved, from the pretrain stage's figures."""
    parts = []
    if s.get("pruning_steps"):
        parts.append(
            f"Structured pruning at steps {', '.join(str(step) for step in s['pruning_steps'])}: attention heads per layer "
            f"{s.get('heads_per_layer_before')} → {s.get('heads_per_layer_after')}, MLP neurons per layer "
            f"{s.get('intermediate_size_before')} → {s.get('intermediate_size_after')}, parameters "
            f"{s.get('parameters_before', 0):,} → {s.get('parameters_after', 0):,}."
        )
    if s.get("sparsity_method"):
        parts.append(
            f"Sparse training ({s['sparsity_method']}, {s.get('sparsity_updates')} mask updates): "
            f"{format_value(s.get('decoder_sparsity'))} of the decoder weights are zero."
        )
    if s.get("train_flops_per_token_reduction") is not None:
        parts.append(
            f"Training FLOPs per token {format_value(s.get('train_flops_per_token_before'))} → "
            f"{format_value(s.get('train_flops_per_token_after'))} ({s['train_flops_per_token_reduction']:.1%} fewer); "
            f"over the run {s.get('train_flops_saved_fraction', 0):.1%} of the dense run's compute saved "
            f"({format_value(s.get('train_flops_saved'))} FLOPs)."
        )
    speeds = [
        s.get(f"{kind}_tokens_per_second_{when}") for kind in ("train", "inference") for when in ("before", "after")
    ]
    if any(speeds):
        parts.append(
            f"Measured tokens/s before → after pruning: training {format_value(speeds[0])} → {format_value(speeds[1])}, "
            f"inference {format_value(speeds[2])} → {format_value(speeds[3])}."
        )
    if s.get("eval_loss_after") is not None:
        before = (
            f"{format_value(s['eval_loss_before'])} at step {s.get('eval_loss_before_step')} (the last evaluation "
            "before the first pruning event), "
            if s.get("eval_loss_before") is not None
            else ""
        )
        parts.append(f"Validation loss {before}{format_value(s['eval_loss_after'])} at the end.")
    energy = s.get("energy_source")
    if energy:
        joules = s.get("energy_joules")
        parts.append(f"Energy: {energy}" + (f", {joules:,.0f} J measured." if joules else "."))
    return " ".join(parts)


def _align_section(run_dir: Path, record: dict | None, out: Path):
    title = "Alignment: labels and DPO"
    if not record:
        return title, ["Not run yet."], []
    f = record.get("figures", {})
    counts = f.get("ledger_counts", {})
    kinds = {k: v for k, v in counts.items() if k in ("human", "simulated")} if counts else {}
    text = [
        f"State: {f.get('state')}. Strategy `{f.get('strategy')}`, budget {f.get('budget')}: "
        f"{f.get('labels_requested')} labels requested, {f.get('labels_received')} received "
        f"({', '.join(f'{k} {v}' for k, v in kinds.items()) or 'see ledger'}), {f.get('labels_skipped', 0)} skipped, "
        f"{f.get('pseudo_labels', 0)} pseudo-labels (model-labelled, counted apart)."
    ]
    if f.get("backend", "simulated") == "simulated" or kinds.get("simulated"):
        text.append("**The labels of this run come from simulated annotators**, not people.")
    dpo = f.get("dpo") or {}
    if dpo:
        text.append(
            "DPO: "
            + ", ".join(f"{k} {format_value(v)}" for k, v in _flat(dpo).items() if not isinstance(v, (list, dict)))
            + (
                f" (heldout: implicit-reward accuracy on the {f['exported_pairs'] - dpo['train_pairs']} labelled pairs held out of DPO)"
                if dpo.get("heldout_implicit_reward_accuracy") is not None
                and f.get("exported_pairs")
                and dpo.get("train_pairs")
                else ""
            )
            + (
                f" (gold: on the {dpo['gold_eval_pairs']} pairs the gold judge decided, which neither the reward model "
                "nor DPO saw; 0.5 is the policy before DPO)"
                if dpo.get("gold_implicit_reward_accuracy") is not None
                else ""
            )
        )
        verdict = dpo.get("verdict") or {}
        if verdict.get("text"):  # said plainly, in bold, whichever way it went
            text.append(f"**{verdict['text']}.**")
        terms = (dpo.get("gold_win_rate") or {}).get("mean_gold_terms")
        if terms:  # a DPO can trade one term of the rubric for another with no change in the total
            text.append(
                "The gold rubric's terms, mean per answer, pre-DPO → DPO: "
                + ", ".join(
                    f"{k} {format_value(terms['pre_dpo'][k])} → {format_value(v)}" for k, v in terms["dpo"].items()
                )
                + "."
            )
    images = []
    curve = f.get("curve") or f.get("label_efficiency")
    points = [(p["labels"], p["accuracy"]) for p in curve or [] if p.get("accuracy") is not None]
    if points:
        text.append(
            f"Label efficiency: the reward model's accuracy on {f.get('gold_eval_pairs')} held-out pairs judged by the "
            f"gold annotator, after each round: {format_value(points[0][1])} at {points[0][0]} labels → "
            f"{format_value(points[-1][1])} at {points[-1][0]}."
        )
        images.append(_save(labels_figure(f), out / "labels.png"))
    # no chart of the label counts: three bars, two of them usually 0, said less than the sentence above
    return title, text, [i for i in images if i]


def _watermark_section(run_dir: Path, record: dict | None, out: Path):
    title = "Watermark"
    if not record:
        return title, ["Not run yet."], []
    f = record.get("figures", {})
    text = [
        f"Public key id `{f.get('key_id')}` (scheme {f.get('scheme')}, {json.dumps(f.get('params', {}))}); the secret "
        f"stays in the run directory (mode 0600). At FPR {f.get('fpr')}: "
        + "; ".join(
            f"{name} {f.get(name, {}).get('flagged')}/{f.get(name, {}).get('texts')} flagged "
            f"(median z {format_value(f.get(name, {}).get('median_z'))})"
            for name in ("marked", "unmarked", "human")
        )
        + "."
    ]
    images = []
    detection_path = layout.watermark_detection(run_dir)
    if detection_path.is_file():
        detection = json.loads(detection_path.read_text())
        fpr = f.get("fpr")
        text.append(
            "The histogram shows each text's evidence, −log10 of its p-value (the verdict is p ≤ FPR); "
            f"texts right of the dashed line at FPR {fpr} are flagged as watermarked."
        )
        images.append(_save(watermark_figure(detection, fpr), out / "watermark.png"))
    return title, text, [i for i in images if i]


def _release_section(record: dict | None):
    title = "Release"
    if not record:
        return title, ["Not run yet."], []
    f = record.get("figures", {})
    bundle = f.get("bundle", {})
    text = [
        f"Signing key fingerprint `{f.get('fingerprint')}` ({f.get('algorithm')}). Bundle `{bundle.get('path')}`: "
        f"{bundle.get('files')} files, {format_value(bundle.get('bytes'))} bytes, manifest {bundle.get('manifest_digest')}."
        + (f" Adapter bundle on base `{f.get('base_bundle', {}).get('path')}`." if f.get("adapter") else ""),
        f"Verification: **{'verified' if f.get('verified') else 'NOT verified'}**"
        + (f" ({'; '.join(f.get('verification', {}).get('reasons', []))})" if not f.get("verified") else "")
        + f". Check it yourself: `mintline release verify {bundle.get('path')} --pubkey "
        f"{Path(str(bundle.get('path', 'release/bundle'))).parent / 'keys' / 'publisher.pub'}"
        + (f" --base {f.get('base_bundle', {}).get('path')}" if f.get("adapter") else "")
        + "`.",
    ]
    return title, text, []


# -- plots ----------------------------------------------------------------------------------------
def labels_figure(f: dict):
    """The reward model's held-out accuracy per labels used, against chance (and random selection
    where the run measured it), on a fixed 0.4–1 scale so round-to-round noise does not pass for a trend."""
    curve = f.get("curve") or f.get("label_efficiency")
    points = [(p["labels"], p["accuracy"]) for p in curve or [] if p.get("accuracy") is not None]
    if not points:
        return None
    series = {f"reward model ({f.get('strategy')})": points}
    random_curve = f.get("random_curve") or []
    random_points = [(p["labels"], p["accuracy"]) for p in random_curve if p.get("accuracy") is not None]
    if random_points:
        series["random selection"] = random_points
    lowest = min(y for values in series.values() for _, y in values)
    return _line_figure(
        series, "labels", "held-out accuracy", ylim=(min(0.4, lowest - 0.02), 1.0), hlines={0.5: "chance (0.5)"}
    )


def watermark_figure(detection: dict[str, list[dict]], fpr: float | None):
    """Histograms of each text's evidence (-log10 p) per source, with the decision threshold.

    The verdict is p-value <= FPR (exact binomial test, Bonferroni over keys), so on this axis
    the threshold is one vertical line whatever a text's length; on a z-score axis it is not.
    """
    evidence = {
        name: [_evidence(r["p_value"]) for r in rows if r.get("p_value") == r.get("p_value")]
        for name, rows in detection.items()
    }
    threshold = (_evidence(fpr), f"decision threshold (p = {fpr:g})") if fpr else None
    # Marked texts reach p = 1e-40 and beyond: on a linear axis up to there, every unmarked text
    # would share the first bin. Far past the threshold the verdict is the same, so cap the axis.
    cap = max(20.0, 5 * threshold[0]) if threshold else None
    xlabel = "evidence: −log10 p-value"
    if cap and any(v > cap for values in evidence.values() for v in values):
        evidence = {name: [min(v, cap) for v in values] for name, values in evidence.items()}
        xlabel += f" (texts beyond {cap:g} drawn at {cap:g})"
    return _histogram_figure(evidence, xlabel, threshold=threshold)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> str | None:
    if figure is None:
        return None
    figure.tight_layout()
    figure.savefig(path)
    _pyplot().close(figure)
    return path.name


def _line_figure(
    series: dict[str, list[tuple[float, float]]],
    xlabel: str,
    ylabel: str,
    marks: list[float] = (),
    ylim: tuple[float, float] | None = None,
    hlines: dict[float, str] | None = None,
):
    """A line per series; `marks` draws dotted vertical lines (e.g. the pruning steps), `hlines`
    labelled dashed horizontal ones (e.g. chance)."""
    if not any(series.values()):
        return None
    figure, axis = _pyplot().subplots(figsize=(6.4, 3.6), dpi=110)
    for index, x in enumerate(marks):
        axis.axvline(x, color="grey", linestyle=":", linewidth=1, label="pruning" if index == 0 else None)
    for y, label in (hlines or {}).items():
        axis.axhline(y, color="black", linestyle="--", linewidth=1, label=label)
    for label, points in series.items():
        if points:
            xs, ys = zip(*points)
            axis.plot(xs, ys, marker="o" if len(points) < 30 else None, markersize=3, label=label)
    if ylim:
        axis.set_ylim(*ylim)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend()
    return figure


def _bar_figure(values: dict[str, float], title: str):
    if not values:
        return None
    figure, axis = _pyplot().subplots(figsize=(6.4, 0.5 + 0.35 * len(values)), dpi=110)
    names = list(values)
    axis.barh(names, [values[n] for n in names], color="#4C72B0")
    axis.invert_yaxis()
    axis.set_title(title)
    for index, name in enumerate(names):
        axis.text(values[name], index, f" {values[name]:,}", va="center")
    return figure


def _histogram_figure(samples: dict[str, list[float]], xlabel: str, threshold: tuple[float, str] | None = None):
    """Overlaid histograms on shared bins; `threshold` = (x, label) draws the decision line."""
    values = [v for vs in samples.values() for v in vs]
    if not values:
        return None
    figure, axis = _pyplot().subplots(figsize=(6.4, 3.6), dpi=110)
    low, high = min(values), max(values)
    if threshold:
        low, high = min(low, threshold[0]), max(high, threshold[0])
    bins = [low + (high - low) * i / 30 for i in range(31)] if high > low else 10
    for label, vs in samples.items():
        if vs:
            axis.hist(vs, bins=bins, alpha=0.55, label=f"{label} ({len(vs)})")
    if threshold:
        axis.axvline(threshold[0], color="black", linestyle="--", linewidth=1.2, label=threshold[1])
    axis.set_xlabel(xlabel)
    axis.set_ylabel("texts")
    axis.legend()
    return figure


# -- rendering ------------------------------------------------------------------------------------
def _markdown(run_dir: Path, journal: dict, sections) -> str:
    lines = [
        f"# mintline run report: `{run_dir}`",
        "",
        f"Created {journal.get('run', {}).get('created_at')}, "
        f"mintline {journal.get('run', {}).get('mintline_version')}, Python {journal.get('run', {}).get('python')}.",
        "",
    ]
    for title, paragraphs, images in sections:
        lines += [f"## {title}", ""]
        for paragraph in paragraphs:
            lines += [paragraph, ""]
        for image in images:
            lines += [f"![{title}]({image})", ""]
    return "\n".join(lines)


def _html(run_dir: Path, journal: dict, sections) -> str:
    body = [f"<h1>mintline run report: <code>{html.escape(str(run_dir))}</code></h1>"]
    meta = journal.get("run", {})
    body.append(
        f"<p class='meta'>Created {html.escape(str(meta.get('created_at')))}, mintline {html.escape(str(meta.get('mintline_version')))}, "
        f"Python {html.escape(str(meta.get('python')))}</p>"
    )
    for title, paragraphs, images in sections:
        body.append(f"<h2>{html.escape(title)}</h2>")
        for paragraph in paragraphs:
            body.append(_markdown_block_to_html(paragraph))
        for image in images:
            body.append(f"<img src='{html.escape(image)}' alt='{html.escape(title)}'>")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:860px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
        "th{background:#f3f3f3}code{background:#f5f5f5;padding:0 .2em}img{max-width:100%;margin:.5em 0}.meta{color:#666}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>mintline report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"


def _markdown_block_to_html(block: str) -> str:
    """The small subset of Markdown the sections use: pipe tables, `code`, **bold**."""
    lines = block.splitlines()
    if lines and lines[0].startswith("|"):
        rows = [line.strip("|").split("|") for line in lines if not set(line) <= set("|-: ")]
        head, *rest = rows
        out = ["<table><tr>" + "".join(f"<th>{_inline(c.strip())}</th>" for c in head) + "</tr>"]
        out += ["<tr>" + "".join(f"<td>{_inline(c.strip())}</td>" for c in row) + "</tr>" for row in rest]
        return "".join(out) + "</table>"
    return f"<p>{_inline(block)}</p>"


def _inline(text: str) -> str:
    import re

    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _evidence(p_value: float) -> float:
    """-log10 p, with p floored at 1e-300 (an exact tail that underflowed to 0 stays on the plot)."""
    return -math.log10(max(float(p_value), 1e-300))


def _docs(value: Any) -> int:
    return int(value.get("docs", 0)) if isinstance(value, dict) else int(value or 0)


def _bytes(value: Any) -> int:
    return int(value.get("bytes", 0)) if isinstance(value, dict) else 0


def _flat(data: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif not (isinstance(value, float) and math.isnan(value)):
            flat[f"{prefix}{key}"] = value
    return flat
