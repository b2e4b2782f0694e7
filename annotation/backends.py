"""How the alignment loop and `mintline run` ask for labels: one protocol, two backends.

backend.request(pairs, round=k)   # record in the ledger; push (Label Studio) or label now (simulated)
backend.collect()                 # bring whatever arrived into the ledger; returns new annotations
backend.ledger.labels()           # aggregated labels, whichever backend produced them
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from annotation.config import LabelStudioSettings, Secret
from annotation.ledger import Ledger
from annotation.pairs import PreferencePair
from annotation.simulated import SimulatedAnnotators


@runtime_checkable
class LabelBackend(Protocol):
    ledger: Ledger

    def request(self, pairs: list[PreferencePair], round: int | None = None) -> None: ...

    def collect(self) -> int: ...


class SimulatedBackend:
    """Labels at once through SimulatedAnnotators; pairs and their labels land in one transaction."""

    def __init__(self, ledger: Ledger, annotators: SimulatedAnnotators, annotators_per_pair: int = 1):
        if not 1 <= annotators_per_pair <= annotators.n_annotators:
            raise ValueError(
                f"annotators_per_pair: must be in [1, {annotators.n_annotators}], got {annotators_per_pair}"
            )
        self.ledger = ledger
        self.annotators = annotators
        self.annotators_per_pair = annotators_per_pair
        self._uncollected = 0

    def request(self, pairs: list[PreferencePair], round: int | None = None) -> None:
        annotations = self.annotators.annotate(list(pairs), self.annotators_per_pair)
        with self.ledger.transaction() as db:
            self.ledger.record_pairs(db, pairs, round)
            self._uncollected += self.ledger.record_annotations(annotations, db)

    def collect(self) -> int:
        """Simulated labels are recorded by request(); this reports how many arrived since the last call."""
        arrived, self._uncollected = self._uncollected, 0
        return arrived


class LabelStudioBackend:
    """request() pushes tasks with predictions; collect() is an incremental pull."""

    def __init__(
        self,
        ledger: Ledger,
        url: str | None = None,
        api_key: str | None = None,
        project_title: str = "mintline preferences",
        *,
        settings: LabelStudioSettings | None = None,
        seed: int = 0,
        model_version: str = "mintline-reward-model",
        overlap: int = 1,
    ):
        self.ledger = ledger
        self.settings = settings or LabelStudioSettings(url=url, project_title=project_title)
        if url:
            self.settings.url = url
        self._api_key = Secret(api_key) if api_key else None
        self.seed, self.model_version, self.overlap = seed, model_version, overlap
        self._client = None
        self.project_id: int | None = None
        self.last_figures: dict = {}

    def _connect(self):
        if self._client is None:
            from annotation.labelstudio import connect
            from annotation.project import bind_project

            self._client = connect(self.settings, self._api_key)
            self.project_id, _ = bind_project(
                self._client, self.ledger, self.settings, self.model_version, self.overlap
            )
        return self._client

    def request(self, pairs: list[PreferencePair], round: int | None = None) -> None:
        from annotation.push import push_pairs

        client = self._connect()
        self.last_figures = push_pairs(
            client,
            self.ledger,
            self.project_id,
            list(pairs),
            seed=self.seed,
            model_version=self.model_version,
            round=round,
        )

    def collect(self) -> int:
        from annotation.pull import pull_annotations

        client = self._connect()
        self.last_figures = pull_annotations(client, self.ledger, self.project_id)
        return self.last_figures["new"] + self.last_figures["edited"]
