"""Exact and near-duplicate removal: one document kept per cluster, the first one read.

Exact duplicates share the hash of their normalised text (lower case, whitespace collapsed).
Near duplicates share a MinHash LSH bucket: datasketch computes a MinHash of each document's
word 5-gram shingles (on datatrove-style simplified text); the signature is cut into 14
bands of 8 rows, and two documents that agree on all rows of any band are candidates, as in
datatrove's MinHash dedup (which, like this, does not re-check candidates).

Clusters are the connected components of "same hash or same bucket". Only the first member
of each bucket is remembered (every later member is joined to it, which yields the same
components), rather than datasketch's MinHashLSH, which keeps every key of every bucket:
this keeps the index at a few hundred bytes per document. Signatures are written to a file
on disk so that `--explain` can give the estimated Jaccard similarity without holding them.

Fingerprints are computed in the worker processes; the index runs in the parent in input
order, so the outcome does not depend on how many workers there were.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class DedupConfig:
    exact_dedup: bool = field(default=True, metadata={"help": "drop documents whose normalised text was seen before"})
    near_dedup: bool = field(default=True, metadata={"help": "drop near duplicates found by MinHash LSH"})
    minhash_bands: int = field(default=14, metadata={"help": "LSH bands"})
    minhash_rows: int = field(
        default=8, metadata={"help": "MinHash values per band (bands x rows permutations in all)"}
    )
    shingle_size: int = field(default=5, metadata={"help": "words per shingle"})
    minhash_seed: int = field(default=1, metadata={"help": "seed of the MinHash permutations"})

    def __post_init__(self):
        for name in ("minhash_bands", "minhash_rows", "shingle_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")

    @property
    def num_perm(self) -> int:
        return self.minhash_bands * self.minhash_rows

    @property
    def similarity_threshold(self) -> float:
        """Jaccard similarity at which a pair becomes a candidate with probability ~1/2."""
        return (1 / self.minhash_bands) ** (1 / self.minhash_rows)


_PUNCTUATION_OR_SPACE = re.compile(r"[\W_]+")
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def exact_key(text: str) -> bytes:
    return hashlib.blake2b(_SPACES.sub(" ", text.lower()).strip().encode(), digest_size=16).digest()


def simplify(text: str) -> str:
    """Lower case, digits to 0, punctuation to spaces, accents dropped: what MinHash compares."""
    text = _DIGITS.sub("0", text.lower())
    text = _PUNCTUATION_OR_SPACE.sub(" ", text).strip()
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return text


@dataclass
class Fingerprint:
    exact: bytes | None  # 16-byte hash of the normalised text
    signature: bytes | None  # num_perm uint32 MinHash values
    bands: tuple[int, ...] | None  # one 64-bit hash per band


class Fingerprinter:
    """Worker side: text -> Fingerprint."""

    def __init__(self, config: DedupConfig):
        from datasketch import MinHash

        self.config = config
        self._template = MinHash(num_perm=config.num_perm, seed=config.minhash_seed) if config.near_dedup else None

    def __call__(self, text: str) -> Fingerprint:
        c = self.config
        exact = exact_key(text) if c.exact_dedup else None
        if self._template is None:
            return Fingerprint(exact, None, None)
        words = simplify(text).split()
        n = c.shingle_size
        shingles = {" ".join(words[i : i + n]) for i in range(max(len(words) - n + 1, 1))} if words else {""}
        minhash = self._template.copy()
        minhash.update_batch([s.encode("utf-8") for s in shingles])  # order-free: a minimum
        values = minhash.hashvalues.astype(np.uint32)
        rows = c.minhash_rows
        bands = tuple(
            int.from_bytes(
                hashlib.blake2b(values[b * rows : (b + 1) * rows].tobytes(), digest_size=8).digest(), "little"
            )
            for b in range(c.minhash_bands)
        )
        return Fingerprint(exact, values.tobytes(), bands)


@dataclass
class DuplicateVerdict:
    kept: bool
    reason: str | None = None  # "exact_duplicate" | "near_duplicate"
    matched: int | None = None  # index of the earlier document it matched first
    kept_instead: int | None = None  # index of the document kept for its cluster
    similarity: float | None = None  # estimated Jaccard with `matched` (near duplicates)


class DuplicateIndex:
    """Parent side: fed fingerprints in input order, then tells which documents to keep."""

    def __init__(self, config: DedupConfig, signature_file: Path | None = None):
        self.config = config
        self._parent = array("q")
        self._matched = array("q")
        self._exact_hit = bytearray()
        self._exact_first: dict[bytes, int] = {}
        self._buckets: list[dict[int, int]] = [{} for _ in range(config.minhash_bands)]
        self._signature_file = signature_file
        self._signatures = open(signature_file, "wb") if signature_file and config.near_dedup else None
        self._signature_reader = None

    def __len__(self) -> int:
        return len(self._parent)

    def add(self, fingerprint: Fingerprint) -> int:
        index = len(self._parent)
        self._parent.append(index)
        self._matched.append(-1)
        self._exact_hit.append(0)
        if fingerprint.exact is not None:
            first = self._exact_first.setdefault(fingerprint.exact, index)
            if first != index:
                self._exact_hit[index] = 1
                self._matched[index] = first
                self._union(index, first)
        if fingerprint.bands is not None:
            if self._signatures is not None:
                self._signatures.write(fingerprint.signature)
            for bucket, band in zip(self._buckets, fingerprint.bands):
                first = bucket.setdefault(band, index)
                if first != index:
                    if self._matched[index] < 0:
                        self._matched[index] = first
                    self._union(index, first)
        return index

    def _find(self, index: int) -> int:
        parent = self._parent
        root = index
        while parent[root] != root:
            root = parent[root]
        while parent[index] != root:  # path compression
            parent[index], index = root, parent[index]
        return root

    def _union(self, a: int, b: int) -> None:
        root_a, root_b = self._find(a), self._find(b)
        if root_a != root_b:  # the smaller index (read first) is the root, and the one kept
            low, high = sorted((root_a, root_b))
            self._parent[high] = low

    def finish(self) -> None:
        if self._signatures is not None:
            self._signatures.close()
            self._signatures = None
        for index in range(len(self._parent)):
            self._find(index)

    def verdict(self, index: int) -> DuplicateVerdict:
        root = self._find(index)
        if root == index:
            return DuplicateVerdict(kept=True)
        matched = self._matched[index]
        if matched < 0:  # joined to its cluster only through a later document: compare with the one kept
            matched = root
        if self._exact_hit[index]:
            return DuplicateVerdict(False, "exact_duplicate", matched, root, 1.0)
        return DuplicateVerdict(False, "near_duplicate", matched, root, self._similarity(index, matched))

    def _similarity(self, a: int, b: int) -> float | None:
        if self._signature_file is None or not self.config.near_dedup:
            return None
        if self._signature_reader is None:
            self._signature_reader = open(self._signature_file, "rb")
        size = 4 * self.config.num_perm
        handle = self._signature_reader
        handle.seek(a * size)
        first = np.frombuffer(handle.read(size), dtype=np.uint32)
        handle.seek(b * size)
        second = np.frombuffer(handle.read(size), dtype=np.uint32)
        return float(np.mean(first == second))

    def close(self) -> None:
        for handle in (self._signatures, self._signature_reader):
            if handle is not None:
                handle.close()
        self._signatures = self._signature_reader = None

    def clusters(self) -> int:
        """Clusters holding more than one document."""
        return len({self._find(i) for i in range(len(self._parent)) if self._parent[i] != i})
