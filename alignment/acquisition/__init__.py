"""Acquisition strategies: which preference pairs are worth a human label next.

A strategy is named `BASE[+kcenter][+pseudo]`:
  BASE      random | uncertainty | bald | disagreement | epig | fisher | thompson | certainty
  +kcenter  batch diversity (k-center over the strategy's shortlist)
  +pseudo   ADPO-style pseudo-labels for confident pairs (counted separately)
`adpo` is short for `uncertainty+pseudo`.
"""

from __future__ import annotations

from dataclasses import dataclass

from alignment.acquisition.bald import BaldStrategy, DisagreementStrategy
from alignment.acquisition.base import SelectionContext, Strategy
from alignment.acquisition.certainty import CertaintyStrategy
from alignment.acquisition.diversity import KCenterDiversity
from alignment.acquisition.epig import EpigStrategy
from alignment.acquisition.fisher import FisherStrategy
from alignment.acquisition.pseudo import PseudoLabels, pseudo_label
from alignment.acquisition.random import RandomStrategy
from alignment.acquisition.thompson import ThompsonStrategy
from alignment.acquisition.uncertainty import UncertaintyStrategy
from alignment.errors import UnknownStrategyError

BASE_STRATEGIES: dict[str, type[Strategy]] = {
    "random": RandomStrategy,
    "uncertainty": UncertaintyStrategy,
    "bald": BaldStrategy,
    "disagreement": DisagreementStrategy,
    "epig": EpigStrategy,
    "fisher": FisherStrategy,
    "thompson": ThompsonStrategy,
    "certainty": CertaintyStrategy,  # for DPO's data, not the reward model's accuracy
}
MODIFIERS = ("kcenter", "pseudo")
ALIASES = {"adpo": "uncertainty+pseudo"}


@dataclass(frozen=True)
class StrategySpec:
    name: str  # as the user wrote it (normalised)
    base: str
    kcenter: bool = False
    pseudo: bool = False

    def build(self) -> Strategy:
        strategy = BASE_STRATEGIES[self.base]()
        return KCenterDiversity(strategy) if self.kcenter else strategy


def parse_strategy(text: str) -> StrategySpec:
    name = text.strip().lower()
    parts = ALIASES.get(name, name).split("+")
    base, modifiers = parts[0], parts[1:]
    known = ", ".join([*BASE_STRATEGIES, *ALIASES])
    if base not in BASE_STRATEGIES:
        raise UnknownStrategyError(
            f"strategies: unknown strategy {text.strip()!r} (choose from {known}; add +kcenter or +pseudo)"
        )
    for modifier in modifiers:
        if modifier not in MODIFIERS:
            raise UnknownStrategyError(
                f"strategies: unknown modifier {modifier!r} in {text.strip()!r} (choose from {', '.join(MODIFIERS)})"
            )
    return StrategySpec(name=name, base=base, kcenter="kcenter" in modifiers, pseudo="pseudo" in modifiers)


def parse_strategies(text: str | list[str]) -> list[StrategySpec]:
    items = text.split(",") if isinstance(text, str) else [s for t in text for s in t.split(",")]
    specs = [parse_strategy(item) for item in items if item.strip()]
    if not specs:
        raise UnknownStrategyError("strategies: name at least one strategy")
    return list({spec.name: spec for spec in specs}.values())


__all__ = [
    "BASE_STRATEGIES",
    "PseudoLabels",
    "SelectionContext",
    "Strategy",
    "StrategySpec",
    "parse_strategies",
    "parse_strategy",
    "pseudo_label",
]
