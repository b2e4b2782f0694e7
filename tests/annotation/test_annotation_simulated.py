import pytest

from annotation.backends import LabelBackend, LabelStudioBackend, SimulatedBackend
from annotation.errors import CredentialsError
from annotation.pairs import PreferencePair
from annotation.simulated import SimulatedAnnotators


def gold(prompt, response):
    return float(response.count("+"))


def make_pairs(n, margin=1):
    # response_a is better by `margin` pluses in every pair
    return [PreferencePair(f"q{i}", "+" * (margin + i % 3) + f" a{i}", "+" * (i % 3) + f" b{i}") for i in range(n)]


def agreement_with_gold(annotations):
    decisive = [a for a in annotations if a.choice in ("a", "b")]
    return sum(a.choice == "a" for a in decisive) / len(decisive)


def test_noise_free_annotators_follow_gold():
    sim = SimulatedAnnotators(gold, temperature=0.0, flip_rate=0.0)
    annotations = sim.annotate(make_pairs(50))
    assert {a.choice for a in annotations} == {"a"}
    assert all(a.kind == "simulated" and a.source == "simulated" for a in annotations)
    assert {a.shown_order for a in annotations} == {"ab", "ba"}  # display order is randomised


def test_flip_rate_and_temperature():
    pairs = make_pairs(2000)
    flipped = SimulatedAnnotators(gold, temperature=0.0, flip_rate=0.25, seed=1).annotate(pairs)
    assert agreement_with_gold(flipped) == pytest.approx(0.75, abs=0.03)  # AlpacaFarm's 25% flips
    always_wrong = SimulatedAnnotators(gold, temperature=0.0, flip_rate=1.0).annotate(pairs[:50])
    assert agreement_with_gold(always_wrong) == 0.0
    # Bradley-Terry: margin 1 at temperature 1 -> P(better) = sigmoid(1) = 0.731
    noisy = SimulatedAnnotators(gold, temperature=1.0, flip_rate=0.0, seed=2).annotate(pairs)
    assert agreement_with_gold(noisy) == pytest.approx(0.731, abs=0.03)


def test_position_bias_favours_what_is_shown_first():
    equal = [PreferencePair(f"q{i}", f"a{i}", f"b{i}") for i in range(2000)]
    sim = SimulatedAnnotators(lambda p, r: 0.0, temperature=1.0, flip_rate=0.0, position_bias=1.0, seed=3)
    annotations = sim.annotate(equal)
    shown_first = sum((a.choice == "a") == (a.shown_order == "ab") for a in annotations) / len(annotations)
    assert shown_first == pytest.approx(0.731, abs=0.03)


def test_several_annotators_deterministic_and_distinct():
    pairs = make_pairs(30)
    sim = SimulatedAnnotators(gold, n_annotators=4, temperature=1.0, flip_rate=0.25, seed=5)
    first = sim.annotate(pairs, annotators_per_pair=3)
    again = SimulatedAnnotators(gold, n_annotators=4, temperature=1.0, flip_rate=0.25, seed=5).annotate(pairs, 3)
    assert [(a.annotator, a.choice) for a in first] == [(a.annotator, a.choice) for a in again]
    per_pair = {}
    for a in first:
        per_pair.setdefault(a.pair_id, set()).add(a.annotator)
    assert all(len(names) == 3 for names in per_pair.values())
    assert len({(p.temperature, p.flip_rate) for p in sim.profiles}) == 4  # each has their own noise
    with pytest.raises(ValueError, match="annotators_per_pair"):
        sim.annotate(pairs, annotators_per_pair=5)


def test_ties_below_margin():
    sim = SimulatedAnnotators(gold, temperature=0.0, flip_rate=0.0, tie_margin=0.5)
    same = PreferencePair("q", "+ a", "+ b")
    assert sim.annotate([same])[0].choice == "tie"


def test_simulated_backend_writes_through_the_ledger(ledger):
    sim = SimulatedAnnotators(gold, n_annotators=3, temperature=0.5, flip_rate=0.1, seed=7)
    backend = SimulatedBackend(ledger, sim, annotators_per_pair=3)
    assert isinstance(backend, LabelBackend)
    pairs = make_pairs(10)
    backend.request(pairs, round=0)
    assert backend.collect() == 30 and backend.collect() == 0
    backend.request(pairs, round=1)  # asking again adds no second vote per annotator
    assert backend.collect() == 0
    counts = ledger.counts()
    assert counts["simulated"] == 30 and counts["human"] == 0 and counts["pending"] == 0
    assert all(label.kind == "simulated" for label in ledger.labels())
    assert ledger.agreement()["annotators"] == 3


def test_label_studio_backend_needs_credentials(ledger, monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    backend = LabelStudioBackend(ledger)
    assert isinstance(backend, LabelBackend)
    with pytest.raises(CredentialsError, match="LABEL_STUDIO_URL"):
        backend.request(make_pairs(1))
    assert ledger.counts()["requested"] == 0  # nothing recorded when nothing was pushed
