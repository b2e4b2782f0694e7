"""From accuracy curves to the benchmark's figures: label ratios with intervals, flatness, a plot.

The label ratio of a strategy is the number of labels its mean curve needs to reach the
accuracy random sampling reaches at the full budget (the *target*), divided by the budget;
the first crossing is linearly interpolated between budget steps. Its 95% interval comes from
a bootstrap over seeds that resamples whole seeds — the same seeds for random and the
strategy, since they share splits — and recomputes target and crossing each time.

A ratio means nothing where random's curve is flat: if random at half the budget is not
significantly below random at the full budget (paired t-interval over seeds), *any* strategy
"needs half the labels". The report then refuses to give ratios and says why.
"""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP_DRAWS = 2000
# Two-sided 95% Student-t quantiles by degrees of freedom (scipy is not a dependency).
_T975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
}


def t975(df: int) -> float:
    if df < 1:
        return math.inf
    for key in sorted(_T975, reverse=True):
        if df >= key:
            return _T975[key] if df <= 30 else 1.96 + 2.4 / df
    return _T975[1]


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    values = np.asarray(values, float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, -math.inf, math.inf
    half = t975(len(values) - 1) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def labels_to_reach(labels: np.ndarray, accuracy: np.ndarray, target: float) -> float:
    """First budget at which a curve reaches the target (interpolated); inf if it never does."""
    hits = np.flatnonzero(accuracy >= target - 1e-9)  # the reference's own mean must reach its own end, rounding aside
    if not len(hits):
        return math.inf
    i = int(hits[0])
    if i == 0:
        return float(labels[0])
    a0, a1 = accuracy[i - 1], accuracy[i]
    return float(labels[i - 1] + (labels[i] - labels[i - 1]) * (target - a0) / max(a1 - a0, 1e-12))


def _matrix(curves) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(curves[0].labels, float), np.asarray([c.accuracy for c in curves], float)


def flatness(reference) -> dict:
    """Is the reference (random) curve still rising between half and full budget?"""
    labels, acc = _matrix(reference)
    half = int(np.argmin(np.abs(labels - labels[-1] / 2)))
    gain, low, high = mean_interval(acc[:, -1] - acc[:, half])
    return {
        "half_budget": int(labels[half]),
        "gain_half_to_full": round(gain, 4),
        "gain_ci": [round(low, 4), round(high, 4)],
        "flat": not low > 0,
    }


def label_ratio(reference, curves, seed: int = 0) -> dict:
    """Labels a strategy needs to reach the reference's full-budget accuracy, as a fraction of the budget."""
    labels, ref = _matrix(reference)
    _, acc = _matrix(curves)
    budget = labels[-1]
    target = float(ref[:, -1].mean())
    point = labels_to_reach(labels, acc.mean(0), target) / budget
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP_DRAWS if len(acc) > 1 else 0):
        pick = rng.integers(0, len(acc), len(acc))
        draws.append(labels_to_reach(labels, acc[pick].mean(0), float(ref[pick, -1].mean())) / budget)
    low, high = -math.inf, math.inf
    if draws:
        # "never reached" sorts above every finite ratio; percentile arithmetic needs a finite stand-in.
        finite = np.where(np.isfinite(draws), draws, 1e9)
        low, high = (v if v < 1e8 else math.inf for v in np.percentile(finite, [2.5, 97.5], method="lower"))
    return {
        "ratio": _finite(point),
        "ci": [_finite(low), _finite(high)],
        "target_accuracy": round(target, 4),
        "reached": math.isfinite(point),
    }


def ratio_bound_when_flat(reference, curves) -> float | None:
    """Where the reference's curve is flat a ratio would be noise, except in one case: when the other curve's first
    round is already above the reference's full-budget accuracy (95% intervals over seeds apart), it needs at most
    its first round's labels. That bound (first labels / budget) or None."""
    labels, ref = _matrix(reference)
    _, acc = _matrix(curves)
    if len(acc) < 2 or len(ref) < 2:
        return None
    _, first_low, _ = mean_interval(acc[:, 0])
    _, _, full_high = mean_interval(ref[:, -1])
    return round(float(labels[0] / labels[-1]), 4) if first_low > full_high else None


def _finite(value: float):
    """JSON has no infinity: a ratio that is never reached within the budget is null."""
    return round(float(value), 4) if math.isfinite(value) else None


def summarise(results: dict, budget: int) -> dict:
    curves = results["curves"]
    reference = curves["random"]
    flat = flatness(reference)
    summary: dict = {"label_ratio": {}, "label_ratio_ci": {}, "flat": flat["flat"], "flatness": flat}
    for name, runs in curves.items():
        ratio = label_ratio(reference, runs)
        summary["label_ratio"][name] = None if flat["flat"] else ratio["ratio"]
        summary["label_ratio_ci"][name] = None if flat["flat"] else ratio["ci"]
        summary["target_accuracy"] = ratio["target_accuracy"]
    if flat["flat"]:
        summary["refused"] = (
            f"random's curve is flat: at {flat['half_budget']} labels it is not significantly below its "
            f"{budget}-label accuracy (gain {flat['gain_half_to_full']:+.3f}, 95% CI {flat['gain_ci']}); "
            "a label ratio would be noise"
        )
    summary["curves"] = {}
    for name, runs in curves.items():
        labels, acc = _matrix(runs)
        intervals = [mean_interval(acc[:, j]) for j in range(acc.shape[1])]
        summary["curves"][name] = {
            "labels": labels.astype(int).tolist(),
            "accuracy_mean": [round(m, 4) for m, _, _ in intervals],
            "accuracy_ci": [[round(lo, 4), round(hi, 4)] for _, lo, hi in intervals] if len(acc) > 1 else None,
        }
    summary["seconds_per_label"] = {
        name: round(sum(c.seconds for c in runs) / sum(c.labels[-1] for c in runs), 5) for name, runs in curves.items()
    }
    pseudo = {
        name: int(np.mean([c.pseudo_labels for c in runs]))
        for name, runs in curves.items()
        if "pseudo" in name or name == "adpo"
    }
    if pseudo:
        summary["pseudo_labels_per_seed"] = pseudo
    summary["seconds_per_round"] = {
        name: round(float(np.mean([s for c in runs for s in c.fit_seconds])), 3) if runs[0].fit_seconds else None
        for name, runs in curves.items()
    }
    matched = {
        name: [c.matched_accuracy for c in runs if c.matched_accuracy is not None] for name, runs in curves.items()
    }
    summary["length_matched_accuracy"] = {name: round(float(np.mean(v)), 4) for name, v in matched.items() if v}
    if results.get("ceilings"):
        mean, low, high = mean_interval(np.asarray(results["ceilings"]))
        summary["ceiling"] = {
            "accuracy": round(mean, 4),
            "ci": [round(low, 4), round(high, 4)] if len(results["ceilings"]) > 1 else None,
            "full_budget_random": round(float(_matrix(reference)[1][:, -1].mean()), 4),
        }
    ratios = {name: r for name, r in summary["label_ratio"].items() if name != "random" and r is not None}
    summary["best_strategy"] = min(ratios, key=ratios.get) if ratios else None
    baseline = results.get("baseline_curves") or []
    if not baseline:
        return summary
    family_baseline = (results.get("baseline") or {}).get("reward_model") not in (None, results.get("reward_model"))
    # The whole stage against the standard recipe: its reward model and features with its best strategy (or random
    # when no strategy beats it) vs random sampling with the baseline family, or the plain features, on the same
    # encoder.
    best = summary["best_strategy"] or "random"
    base_flat = flatness(baseline)
    system = label_ratio(baseline, curves[best])
    summary["system_gain"] = {
        "strategy": best,
        "reward_model": results.get("reward_model"),
        "baseline": results["baseline"],
        "label_ratio": None if base_flat["flat"] else system["ratio"],
        "label_ratio_ci": None if base_flat["flat"] else system["ci"],
        "baseline_flat": base_flat["flat"],
        "label_ratio_at_most": ratio_bound_when_flat(baseline, curves[best]) if base_flat["flat"] else None,
        "baseline_full_budget_accuracy": system["target_accuracy"],
        "system_full_budget_accuracy": round(float(_matrix(curves[best])[1][:, -1].mean()), 4),
        "note": "the best strategy is chosen on the same seeds, so this ratio is optimistic by that choice",
    }
    name = "random (baseline)" if family_baseline else "random (baseline features)"
    summary["curves"][name] = {
        "labels": _matrix(baseline)[0].astype(int).tolist(),
        "accuracy_mean": [round(v, 4) for v in _matrix(baseline)[1].mean(0)],
        "accuracy_ci": None,
    }
    if not family_baseline:  # the features' share of the system gain, with random selection on both sides
        gain = label_ratio(baseline, reference)
        summary["feature_gain"] = {
            "random_label_ratio": None if base_flat["flat"] else gain["ratio"],
            "random_label_ratio_ci": None if base_flat["flat"] else gain["ci"],
            "random_label_ratio_at_most": ratio_bound_when_flat(baseline, reference) if base_flat["flat"] else None,
            "baseline_full_budget_accuracy": gain["target_accuracy"],
            "features_full_budget_accuracy": round(float(_matrix(reference)[1][:, -1].mean()), 4),
            "baseline_flat": base_flat["flat"],
        }
    return summary


def plot_curves(summary: dict, path: str, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, curve in summary["curves"].items():
        style = {"color": "black", "linewidth": 2.2} if name == "random" else {"linewidth": 1.3}
        if "baseline" in name:
            style = {"color": "grey", "linestyle": "--"}
        axes.plot(curve["labels"], curve["accuracy_mean"], label=name, **style)
        if name == "random" and curve.get("accuracy_ci"):  # one band, the baseline's: more would hide the lines
            low, high = zip(*curve["accuracy_ci"])
            axes.fill_between(curve["labels"], low, high, alpha=0.12, color=style.get("color"))
    axes.axhline(summary["target_accuracy"], color="black", linestyle=":", linewidth=1, label="random @ full budget")
    axes.set_xlabel("human labels")
    axes.set_ylabel("held-out preference accuracy")
    axes.set_title(title + (" — random flat: no ratio" if summary["flat"] else ""), fontsize=10)
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
