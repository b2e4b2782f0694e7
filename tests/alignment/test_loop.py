"""The active-labelling loop over the real ledger: simulated annotators, slow annotators, resumption."""

from __future__ import annotations

import pytest

from alignment.bradley_terry import RewardModelConfig
from alignment.errors import ConfigError
from alignment.features import FeatureConfig
from alignment.gold import gold_score
from alignment.loop import ActiveLoopConfig, pair_feature_matrix, run_active_loop
from annotation.backends import SimulatedBackend
from annotation.ledger import Ledger
from annotation.simulated import SimulatedAnnotators


@pytest.fixture(scope="module")
def pair_features(policy_pairs, trained_model_dir):
    return pair_feature_matrix(
        policy_pairs, FeatureConfig(encoder="policy+stats", policy_model=str(trained_model_dir)), dim=16
    )


def test_loop_with_simulated_annotators_spends_the_budget_and_counts_everything(policy_pairs, pair_features, tmp_path):
    assert len(policy_pairs) >= 60
    config = ActiveLoopConfig(
        budget=30, batch_size=10, strategy="fisher+kcenter+pseudo", pseudo_threshold=0.6, pseudo_cap=8
    )
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        backend = SimulatedBackend(ledger, SimulatedAnnotators(gold_score, flip_rate=0.25, temperature=0.0, seed=1))
        # a fixed, weak prior: with 30 noisy labels evidence maximisation (rightly) keeps the model unsure,
        # and this test is about how pseudo-labels are counted, not about when they are earned
        confident = RewardModelConfig(prior_precision=1.0, feature_dim=16)
        figures = run_active_loop(policy_pairs, pair_features, backend, config, confident)
        assert figures["state"] == "done" and figures["waiting_for"] == 0
        assert figures["rounds_this_call"] == 3
        assert figures["labels_requested"] == 30 and figures["labels_received"] == 30
        assert 0 < figures["pseudo_labels"] <= 8
        assert figures["pseudo_labels"] == figures["ledger_counts"]["pseudo"] == ledger.counts()["pseudo"]
        assert figures["ledger_counts"]["simulated"] == 30 and figures["ledger_counts"]["human"] == 0
        requested = set(ledger.pending()) | {label.pair_id for label in ledger.labels()}
        assert len(requested) == 30 and requested <= {p.pair_id for p in policy_pairs}
        # pseudo-labels never land on pairs a person was asked about, and are exported only on request
        pseudo = {label.pair_id for label in ledger.labels(include_pseudo=True) if label.kind == "pseudo"}
        assert pseudo and not pseudo & requested
        assert ledger.export_trl(tmp_path / "human.jsonl") == 30 - sum(1 for l in ledger.labels() if l.choice == "tie")
        # ... and then with their text (the loop stores the pseudo-labelled pairs, which no one was asked about)
        assert ledger.export_trl(tmp_path / "all.jsonl", include_pseudo=True) == ledger.export_trl(
            tmp_path / "human.jsonl"
        ) + len(pseudo)
        # running again asks for nothing more: the state is in the ledger
        again = run_active_loop(policy_pairs, pair_features, backend, config, confident)
        assert again["rounds_this_call"] == 0 and again["labels_requested"] == 30


class LateAnnotators:
    """People who answer between two runs of the loop: requests are recorded, labels arrive only when `answer()` is called."""

    def __init__(self, ledger):
        self.ledger = ledger
        self.people = SimulatedAnnotators(gold_score, flip_rate=0.25, seed=2)
        self.queue = []

    def request(self, pairs, round=None):
        self.ledger.add_pairs(pairs, round=round)
        self.queue.extend(pairs)

    def collect(self):
        return 0

    def answer(self, skip_first: bool = False):
        annotations = self.people.annotate(self.queue)
        if skip_first:
            annotations[0].choice = "skip"
        recorded = self.ledger.record_annotations(annotations)
        self.queue = []
        return recorded


def test_loop_returns_waiting_instead_of_blocking_and_resumes(policy_pairs, pair_features, tmp_path):
    config = ActiveLoopConfig(budget=20, batch_size=10, strategy="uncertainty")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        backend = LateAnnotators(ledger)
        first = run_active_loop(policy_pairs, pair_features, backend, config)
        assert first["state"] == "waiting" and first["waiting_for"] == 10 and first["labels_requested"] == 10
        assert run_active_loop(policy_pairs, pair_features, backend, config)["rounds_this_call"] == 0  # still waiting
        backend.answer(skip_first=True)  # a skipped pair is answered: nothing to wait for
        second = run_active_loop(policy_pairs, pair_features, backend, config)
        assert second["state"] == "waiting" and second["labels_requested"] == 20 and second["labels_skipped"] == 1
        backend.answer()
        done = run_active_loop(policy_pairs, pair_features, backend, config)
        assert done["state"] == "done" and done["labels_received"] == 19 and done["labels_skipped"] == 1


def test_loop_refuses_a_budget_beyond_the_candidates(policy_pairs, pair_features, tmp_path):
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        backend = SimulatedBackend(ledger, SimulatedAnnotators(gold_score))
        with pytest.raises(ConfigError, match="budget"):
            run_active_loop(policy_pairs, pair_features, backend, ActiveLoopConfig(budget=len(policy_pairs) + 1))
