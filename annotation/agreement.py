"""Aggregation of several annotators' votes and inter-annotator agreement.

Hand-written because the formulas are a dozen lines each and the common libraries that have
them (statsmodels, nltk, sklearn) would be a heavy dependency for this alone. Categories are
"a", "b" and "tie"; skips are not votes and never reach these functions.

Fleiss' kappa is the usual generalisation to a varying number of raters per item (each item's
observed agreement uses its own n_i; the chance term pools all ratings), which reduces to the
textbook formula when every item has the same number of raters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations

CATEGORIES = ("a", "b", "tie")


def count_votes(choices: Iterable[str]) -> dict[str, int]:
    counts = Counter(choices)
    unknown = set(counts) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"votes must be one of {CATEGORIES}, got {sorted(unknown)}")
    return {category: counts.get(category, 0) for category in CATEGORIES}


def majority(votes: Mapping[str, int]) -> str:
    """The category with the most votes; a draw for first place is an explicit "tie"."""
    top = max(votes.values(), default=0)
    if top <= 0:
        raise ValueError("majority of no votes")
    leaders = [category for category in CATEGORIES if votes.get(category, 0) == top]
    return leaders[0] if len(leaders) == 1 else "tie"


def percent_agreement(items: Sequence[Sequence[str]]) -> float | None:
    """Mean, over items with >= 2 votes, of the share of rater pairs that agree."""
    shares = []
    for votes in items:
        if len(votes) < 2:
            continue
        pairs = list(combinations(votes, 2))
        shares.append(sum(x == y for x, y in pairs) / len(pairs))
    return sum(shares) / len(shares) if shares else None


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    items = [votes for votes in items if len(votes) >= 2]
    if not items:
        return None
    observed, totals, n_ratings = 0.0, Counter(), 0
    for votes in items:
        counts = Counter(votes)
        n = len(votes)
        observed += (sum(c * c for c in counts.values()) - n) / (n * (n - 1))
        totals.update(counts)
        n_ratings += n
    p_observed = observed / len(items)
    p_chance = sum((count / n_ratings) ** 2 for count in totals.values())
    if p_chance >= 1.0:  # everyone always chose the same category: kappa is undefined
        return None
    return (p_observed - p_chance) / (1 - p_chance)


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two annotators over the items both labelled (same order)."""
    if len(first) != len(second):
        raise ValueError("cohen_kappa needs two equally long label lists")
    n = len(first)
    if n == 0:
        return None
    p_observed = sum(x == y for x, y in zip(first, second)) / n
    first_counts, second_counts = Counter(first), Counter(second)
    p_chance = sum(first_counts[c] * second_counts[c] for c in set(first_counts) | set(second_counts)) / (n * n)
    if p_chance >= 1.0:
        return None
    return (p_observed - p_chance) / (1 - p_chance)


def agreement_report(ratings: Mapping[str, Mapping[str, str]]) -> dict:
    """Agreement figures from {item: {annotator: choice}} (latest, non-skip votes only).

    Cohen's kappa when exactly two annotators rated the shared items; Fleiss' kappa otherwise
    (and always, as the many-rater figure); plus the mean pairwise Cohen's kappa over
    annotator pairs that share at least two items.
    """
    multi = {item: votes for item, votes in ratings.items() if len(votes) >= 2}
    annotators = sorted({a for votes in multi.values() for a in votes})
    items = [list(votes.values()) for votes in multi.values()]
    report: dict = {
        "items": len(multi),
        "annotators": len(annotators),
        "ratings": sum(len(v) for v in items),
        "percent_agreement": _round(percent_agreement(items)),
        "fleiss_kappa": _round(fleiss_kappa(items)),
        "cohen_kappa": None,
        "mean_pairwise_cohen_kappa": None,
    }
    pairwise = []
    for one, two in combinations(annotators, 2):
        shared = [votes for votes in multi.values() if one in votes and two in votes]
        if len(shared) < 2:
            continue
        kappa = cohen_kappa([v[one] for v in shared], [v[two] for v in shared])
        if kappa is not None:
            pairwise.append(kappa)
    if pairwise:
        report["mean_pairwise_cohen_kappa"] = _round(sum(pairwise) / len(pairwise))
    if len(annotators) == 2:
        report["cohen_kappa"] = report["mean_pairwise_cohen_kappa"]
    report["method"] = "cohen" if len(annotators) == 2 else "fleiss"
    return report


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
