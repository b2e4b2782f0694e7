import pytest

from annotation.agreement import agreement_report, cohen_kappa, count_votes, fleiss_kappa, majority, percent_agreement


def test_majority_with_explicit_ties():
    assert majority({"a": 2, "b": 1, "tie": 0}) == "a"
    assert majority({"a": 1, "b": 1, "tie": 0}) == "tie"
    assert majority({"a": 0, "b": 0, "tie": 1}) == "tie"
    with pytest.raises(ValueError):
        majority({"a": 0, "b": 0, "tie": 0})
    with pytest.raises(ValueError):
        count_votes(["a", "skip"])


def test_cohen_kappa_textbook_example():
    # Wikipedia's example: 20 yes/yes, 15 no/no, 5 yes/no, 10 no/yes -> kappa 0.4
    first = ["y"] * 20 + ["n"] * 15 + ["y"] * 5 + ["n"] * 10
    second = ["y"] * 20 + ["n"] * 15 + ["n"] * 5 + ["y"] * 10
    assert cohen_kappa(first, second) == pytest.approx(0.4)


def test_fleiss_kappa_textbook_example():
    # Wikipedia's example: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    items = [[str(c) for c, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(items) == pytest.approx(0.2099, abs=1e-4)


def test_percent_agreement_and_report():
    ratings = {
        "p1": {"x": "a", "y": "a"},
        "p2": {"x": "b", "y": "a"},
        "p3": {"x": "b", "y": "b"},
        "p4": {"x": "a"},  # one rater: not part of agreement
    }
    report = agreement_report(ratings)
    assert report["items"] == 3 and report["annotators"] == 2 and report["method"] == "cohen"
    assert report["percent_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["cohen_kappa"] == pytest.approx(cohen_kappa(["a", "b", "b"], ["a", "a", "b"]), abs=1e-4)
    assert percent_agreement([["a", "a", "b"]]) == pytest.approx(1 / 3)


def test_kappa_undefined_when_everyone_always_agrees_on_one_category():
    assert fleiss_kappa([["a", "a"], ["a", "a"]]) is None
    assert agreement_report({"p": {"x": "a", "y": "a", "z": "a"}})["percent_agreement"] == 1.0
