"""The driver's decisions of `prepare --executor ray`, from the documents that share a key.

Ray groups every key (exact hash, LSH band, id base) and keeps those more than one document
holds, with the first (smallest) position holding each; the documents holding such a key come
back here with their hits. From them this module makes the same decisions as the local
executor's DuplicateIndex and UniqueIds, which see every document in input order:

* dedup: a document is joined to the first holder of each of its keys; clusters are the
  connected components (union-find over these candidate pairs only, as datatrove's clustering
  stage does in one task); the first document of a cluster is kept. "Matched" is the first
  holder of the exact key if there is one, else of the first band (in band order) shared with
  an earlier document, else the document kept for the cluster, exactly as DuplicateIndex
  records it, and the estimated similarity compares the same two signatures.
* ids: documents whose ids share a base ("a", "a", "a#2") go through UniqueIds in input order;
  no other id can collide with theirs, since UniqueIds only appends "#N".
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from pretrain.dedup import DuplicateVerdict
from pretrain.ray_parts import EXACT_TAG, ID_TAG


@dataclass
class Involved:
    position: int
    id: str
    source: str
    size: int
    passed: bool
    signature: bytes | None
    hits: list[tuple[int, int]]  # (key tag, first position holding that key)


def involved_from_rows(rows: list[dict]) -> list[Involved]:
    return sorted(
        (
            Involved(
                r["position"],
                r["id"],
                r["source"],
                r["size"],
                r["passed"],
                r["signature"],
                [tuple(h) for h in json.loads(r["hits"])],
            )
            for r in rows
        ),
        key=lambda item: item.position,
    )


def unique_ids(involved: list[Involved]) -> dict[int, str]:
    """position -> id, for the documents UniqueIds renames ("same" -> "same#2")."""
    from pretrain.prepare import UniqueIds

    groups: dict[int, list[Involved]] = {}
    for item in involved:
        for tag, first in item.hits:
            if tag == ID_TAG:
                groups.setdefault(first, []).append(item)
    renames = {}
    for members in groups.values():
        ids = UniqueIds()
        for item in sorted(members, key=lambda m: m.position):
            unique = ids(item.id)
            if unique != item.id:
                renames[item.position] = unique
    return renames


class Clusters:
    """Union-find over candidate pairs; the smallest position of a component is its root and is kept."""

    def __init__(self, involved: list[Involved], num_perm: int):
        self._parent: dict[int, int] = {}
        self._matched: dict[int, int] = {}
        self._exact: set[int] = set()
        self._signatures = {item.position: item.signature for item in involved}
        self.num_perm = num_perm
        for item in involved:  # in input order, as DuplicateIndex.add sees them
            hits = [(tag, first) for tag, first in item.hits if tag != ID_TAG and item.passed]
            exact = [first for tag, first in hits if tag == EXACT_TAG and first != item.position]
            bands = sorted((tag, first) for tag, first in hits if tag != EXACT_TAG and first != item.position)
            if exact:
                self._exact.add(item.position)
                self._matched[item.position] = exact[0]
            elif bands:
                self._matched[item.position] = bands[0][1]
            for first in exact + [first for _, first in bands]:
                self._union(item.position, first)

    def _find(self, index: int) -> int:
        parent = self._parent
        root = index
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(index, index) != root:
            parent[index], index = root, parent[index]
        return root

    def _union(self, a: int, b: int) -> None:
        root_a, root_b = self._find(a), self._find(b)
        if root_a != root_b:
            low, high = sorted((root_a, root_b))
            self._parent[high] = low

    def removed(self) -> dict[int, DuplicateVerdict]:
        """position -> verdict, for every document dedup removes."""
        verdicts = {}
        for position in sorted(self._parent):
            root = self._find(position)
            if root == position:
                continue
            matched = self._matched.get(position, root)
            if position in self._exact:
                verdicts[position] = DuplicateVerdict(False, "exact_duplicate", matched, root, 1.0)
            else:
                verdicts[position] = DuplicateVerdict(
                    False, "near_duplicate", matched, root, self._similarity(position, matched)
                )
        return verdicts

    def count(self) -> int:
        """Clusters holding more than one document."""
        return len({self._find(p) for p in self._parent if self._find(p) != p})

    def _similarity(self, a: int, b: int) -> float | None:
        first, second = self._signatures.get(a), self._signatures.get(b)
        if first is None or second is None:
            return None
        return float(np.mean(np.frombuffer(first, dtype=np.uint32) == np.frombuffer(second, dtype=np.uint32)))
