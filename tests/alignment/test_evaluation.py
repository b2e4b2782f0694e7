"""The gold win rate between two policies, and its interval."""

from __future__ import annotations

from alignment.evaluation import win_rate


def test_win_rate_counts_ties_half_and_gives_an_interval_around_it():
    result = win_rate([3, 2, 1, 1] * 25, [1, 2, 3, 0] * 25)  # wins, ties, losses, wins
    assert result["win_rate"] == 0.625 and result["margin"] == 0.125 and result["n"] == 100
    low, high = result["margin_ci"]
    assert low < 0.125 < high and high - low < 0.25


def test_grouped_interval_carries_the_spread_between_training_runs():
    # two training seeds that disagree: one wins every prompt, the other loses every prompt
    first = [1.0] * 50 + [0.0] * 50
    second = [0.0] * 50 + [1.0] * 50
    plain = win_rate(first, second)
    grouped = win_rate(first, second, groups=[0] * 50 + [1] * 50)
    assert plain["win_rate"] == grouped["win_rate"] == 0.5
    assert grouped["win_rate_by_group"] == {"0": 1.0, "1": 0.0}
    # prompts alone look like a tight interval; resampling the seeds shows how little two runs say
    width = lambda r: r["margin_ci"][1] - r["margin_ci"][0]
    assert width(grouped) > 2 * width(plain)
    assert grouped["margin_ci"][0] <= -0.4 and grouped["margin_ci"][1] >= 0.4
