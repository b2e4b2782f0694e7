"""Simulated annotators: a gold scoring function seen through human-like noise.

Each simulated annotator compares the two responses as displayed (first = "A", second = "B"):

* Bradley–Terry choice noise: P(A) = sigmoid((gold(A) - gold(B)) / temperature + position_bias)
  (temperature 0 = always the better response; `position_bias` > 0 favours whatever is shown first);
* label flips: with probability `flip_rate` the decision is reversed (AlpacaFarm's simulated
  annotators flip 25% of labels);
* ties: when |gold(A) - gold(B)| < `tie_margin` the annotator says "tie" (off by default);
* several annotators, each with their own temperature, flip rate and position bias, drawn
  around the given values (log-normal spread `spread`), so they disagree the way people do.

Every draw comes from a generator keyed by (seed, pair_id, annotator), so the same pair gets the
same labels whatever batch or order it arrives in. Their annotations say kind="simulated".
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from annotation.ledger import Annotation, now_iso
from annotation.pairs import PreferencePair


@dataclass(frozen=True)
class AnnotatorProfile:
    name: str
    temperature: float
    flip_rate: float
    position_bias: float


def keyed_rng(*parts) -> random.Random:
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class SimulatedAnnotators:
    """Gold scoring function + Bradley–Terry choice noise, label flips (AlpacaFarm: 25%), position bias,
    several annotators with their own noise."""

    def __init__(
        self,
        gold_score: Callable[[str, str], float],
        n_annotators: int = 1,
        temperature: float = 1.0,
        flip_rate: float = 0.25,
        position_bias: float = 0.0,
        seed: int = 0,
        tie_margin: float = 0.0,
        spread: float = 0.25,
    ):
        if n_annotators < 1:
            raise ValueError(f"n_annotators: must be >= 1, got {n_annotators}")
        if temperature < 0:
            raise ValueError(f"temperature: must be >= 0, got {temperature}")
        if not 0.0 <= flip_rate <= 1.0:
            raise ValueError(f"flip_rate: must be in [0, 1], got {flip_rate}")
        if tie_margin < 0 or spread < 0:
            raise ValueError("tie_margin and spread: must be >= 0")
        self.gold_score = gold_score
        self.seed = seed
        self.tie_margin = tie_margin
        rng = keyed_rng("profiles", seed)
        self.profiles: list[AnnotatorProfile] = []
        for index in range(n_annotators):
            # the first annotator gets the given values exactly; the others scatter around them
            jitter = (lambda: 1.0) if index == 0 else (lambda: math.exp(rng.gauss(0.0, spread)))
            self.profiles.append(
                AnnotatorProfile(
                    name=f"sim-{index + 1}",
                    temperature=temperature * jitter(),
                    flip_rate=min(1.0, flip_rate * jitter()),
                    position_bias=position_bias * jitter(),
                )
            )

    @property
    def n_annotators(self) -> int:
        return len(self.profiles)

    def vote(self, prompt: str, shown_first: str, shown_second: str, annotator: int, key: str) -> str:
        """One annotator's verdict on a displayed pair: "first", "second" or "tie"."""
        profile = self.profiles[annotator]
        rng = keyed_rng("vote", self.seed, key, profile.name)
        margin = float(self.gold_score(prompt, shown_first)) - float(self.gold_score(prompt, shown_second))
        if abs(margin) < self.tie_margin:
            return "tie"
        if profile.temperature == 0:
            logit = math.copysign(math.inf, margin) if margin else profile.position_bias
        else:
            logit = margin / profile.temperature + profile.position_bias
        p_first = 0.5 if logit == 0 else 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))
        first = rng.random() < p_first
        if rng.random() < profile.flip_rate:
            first = not first
        return "first" if first else "second"

    def shown_order(self, pair_id: str, annotator: int) -> str:
        return "ab" if keyed_rng("order", self.seed, pair_id, annotator).random() < 0.5 else "ba"

    def annotators_for(self, pair_id: str, annotators_per_pair: int) -> list[int]:
        if not 1 <= annotators_per_pair <= self.n_annotators:
            raise ValueError(f"annotators_per_pair: must be in [1, {self.n_annotators}], got {annotators_per_pair}")
        chosen = keyed_rng("who", self.seed, pair_id).sample(range(self.n_annotators), annotators_per_pair)
        return sorted(chosen)

    def annotate(self, pairs: list[PreferencePair], annotators_per_pair: int = 1) -> list[Annotation]:
        annotations = []
        for pair in pairs:
            for index in self.annotators_for(pair.pair_id, annotators_per_pair):
                order = self.shown_order(pair.pair_id, index)
                first, second = (
                    (pair.response_a, pair.response_b) if order == "ab" else (pair.response_b, pair.response_a)
                )
                verdict = self.vote(pair.prompt, first, second, index, pair.pair_id)
                choice = "tie" if verdict == "tie" else _original_side(verdict, order)
                name = self.profiles[index].name
                annotations.append(
                    Annotation(
                        pair_id=pair.pair_id,
                        annotator=name,
                        choice=choice,
                        kind="simulated",
                        source="simulated",
                        external_id=f"simulated:{name}:{pair.pair_id}",
                        created_at=now_iso(),
                        shown_order=order,
                    )
                )
        return annotations


def _original_side(verdict: str, order: str) -> str:
    shown_first_is_a = order == "ab"
    return "a" if (verdict == "first") == shown_first_is_a else "b"
