"""The keyed pseudo-random function behind every green list: (secret key, context tokens, token) -> bit.

Construction (all arithmetic on unsigned 64-bit integers, vectorised with numpy):

* Secret tables. From the key's secret (>= 128 bits, 256 by default) SHAKE256 in keyed mode
  (`SHAKE256(domain || len || secret || label)`) expands one table of 64-bit words per role:
  `position[j][t]` for the j-th token to the left, `anchor[t]` for self-hash, `vocab[t]` for the
  token being scored. SHAKE's output is a prefix-stable XOF, so a larger vocabulary (a model
  whose logits are padded) extends the tables without changing the entries already used.
* Context seed. left-hash: `seed = mix(position[1][t-1] ^ ... ^ position[h][t-h])`;
  self-hash (KGW's anchored min-hash): `seed(v) = mix(min(anchor[t-h..t-1], anchor[v]) ^ position[0][v])`,
  so changing a context token that is not the minimum keeps the green list (robustness), while
  the list still depends on the candidate itself.
* Green bit: `mix(seed + vocab[v]) < gamma * 2**64`, where `mix` is the SplitMix64 finaliser
  (xor-shift / multiply, a full-avalanche bijection of 64-bit words).

Why this is strong enough, and why not a cryptographic hash per token:
* The secret enters only through SHAKE256, so nothing short of a 2**128+ search recovers it
  or the tables; transformers' KGW derives everything from one small integer `hashing_key`
  and `torch.manual_seed`, which anyone can enumerate.
* Every green bit is a threshold of a full-avalanche mix of a value that contains two secret,
  independent 64-bit table words. Without the tables an observer cannot predict the green
  list of a context they have not seen; learning one context's 64-bit seed from its green
  list is a 2**64 search per context, and yields nothing about other contexts' secret words
  beyond what counting tokens in watermarked text already reveals (the "watermark stealing"
  attack that no choice of PRF prevents).
* A keyed hash such as SipHash or BLAKE2 per (context, token) costs ~1 us per call from
  Python, or ~200 numpy passes per batch vectorised: too slow for >= 1M tokens/s detection
  and a <= 5% generation overhead over the whole vocabulary at every step. Table lookups plus
  one or two SplitMix64 passes are a few numpy operations per token.
* The null distribution is checked, not assumed: tests measure the false-positive rate on
  >= 1,000 human passages and the independence of bits that share contexts or tokens.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

DOMAIN = b"mintline/watermark/prf/v1"
_MASK64 = (1 << 64) - 1
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix64(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """SplitMix64's finaliser, elementwise on uint64 (wraps modulo 2**64 by design)."""
    z = np.array(x, dtype=np.uint64, copy=True) if out is None else out
    if out is not None and out is not x:
        np.copyto(z, x)
    z ^= z >> _S30
    z *= _M1
    z ^= z >> _S27
    z *= _M2
    z ^= z >> _S31
    return z


def expand_table(secret: bytes, label: str, size: int) -> np.ndarray:
    """`size` secret 64-bit words for one role, derived from the secret with keyed SHAKE256."""
    material = DOMAIN + struct.pack("<H", len(secret)) + secret + label.encode("ascii")
    raw = hashlib.shake_256(material).digest(8 * size)
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


def green_threshold(gamma: float) -> np.uint64:
    """The uint64 cut-off below which a mixed value is green; P(green) = gamma to within 2**-53."""
    return np.uint64(min(int(round(gamma * 2.0**64)), _MASK64))


class KeyedPRF:
    """Keyed 64-bit values for (context, token) under one secret; tables grow to cover the vocabulary.

    seeding: "lefthash" (the h tokens to the left pick the list) or "selfhash" (min-hash over
    the h tokens to the left and the candidate itself, anchored on the candidate). Subclasses
    turn the 64-bit values into a green bit (KGW) or into g-values (SynthID).
    """

    def __init__(self, secret: bytes, seeding: str, context_width: int, vocab_size: int, label: str = "kgw"):
        if seeding not in ("lefthash", "selfhash"):
            raise ValueError(f"seeding: must be lefthash or selfhash, got {seeding!r}")
        if context_width < 1:
            raise ValueError(f"context_width: must be >= 1, got {context_width}")
        self.secret = secret
        self.label = label  # domain separation between schemes sharing the code
        self.seeding = seeding
        self.context_width = context_width
        self.size = 0
        self._ensure(vocab_size)

    def _ensure(self, size: int) -> None:
        if size <= self.size:
            return
        h, label = self.context_width, self.label
        # position[0] is self-hash's candidate salt; position[1..h] are the left context slots.
        self.position = np.stack([expand_table(self.secret, f"{label}/position/{j}", size) for j in range(h + 1)])
        self.anchor = expand_table(self.secret, f"{label}/anchor", size)
        self.vocab = expand_table(self.secret, f"{label}/vocab", size)
        self.size = size

    # -- generation: every candidate token for a batch of contexts ----------------------------
    def left_seeds(self, contexts: np.ndarray) -> np.ndarray:
        """(batch,) uint64 seeds of left-hash contexts; contexts is (batch, h), oldest first."""
        contexts = np.asarray(contexts, dtype=np.int64)
        self._ensure(int(contexts.max(initial=0)) + 1)
        h = self.context_width
        combined = self.position[1][contexts[:, h - 1]]  # fancy indexing copies
        for j in range(2, h + 1):
            combined ^= self.position[j][contexts[:, h - j]]
        return mix64(combined, out=combined)

    def candidate_values(self, contexts: np.ndarray, vocab_size: int) -> np.ndarray:
        """(batch, vocab) uint64: the mixed value of every next token after each context row."""
        self._ensure(vocab_size)
        contexts = np.asarray(contexts, dtype=np.int64)
        if self.seeding == "lefthash":
            seed = self.left_seeds(contexts)[:, None]
        else:
            floor = self.anchor[contexts].min(axis=1)[:, None]
            seed = np.minimum(floor, self.anchor[None, :vocab_size])
            seed ^= self.position[0, None, :vocab_size]
            mix64(seed, out=seed)
        mixed = seed + self.vocab[None, :vocab_size]
        return mix64(mixed, out=mixed)

    # -- detection: one value per token of a sequence ----------------------------------------
    def sequence_values(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For tokens[h:], return (mixed values, n-gram identities), both of length len(tokens) - h.

        The identity is the pre-mix value, a 64-bit function of exactly the PRF input the value
        was drawn for; equal identities mean a repeated n-gram (same input, same bit).
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        h = self.context_width
        n = len(tokens) - h
        if n <= 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64)
        self._ensure(int(tokens.max()) + 1)
        target = tokens[h:]
        if self.seeding == "lefthash":
            combined = self.position[1][tokens[h - 1 : h - 1 + n]]
            for j in range(2, h + 1):
                combined ^= self.position[j][tokens[h - j : h - j + n]]
            seed = mix64(combined, out=combined)
        else:
            seed = self.anchor[target]
            for j in range(1, h + 1):
                np.minimum(seed, self.anchor[tokens[h - j : h - j + n]], out=seed)
            seed ^= self.position[0][target]
            mix64(seed, out=seed)
        identity = seed + self.vocab[target]
        return mix64(identity), identity


class GreenListPRF(KeyedPRF):
    """KGW green lists: a (context, token) pair is green when its mixed value is below gamma * 2**64."""

    def __init__(self, secret: bytes, gamma: float, seeding: str, context_width: int, vocab_size: int):
        super().__init__(secret, seeding, context_width, vocab_size, label="kgw")
        self.gamma = gamma
        self.threshold = green_threshold(gamma)

    def green_mask(self, contexts: np.ndarray, vocab_size: int) -> np.ndarray:
        """(batch, vocab) bool: which next tokens are green after each row of `contexts`."""
        return self.candidate_values(contexts, vocab_size) < self.threshold

    def score_sequence(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For tokens[h:]: (green bits, n-gram identities)."""
        values, identity = self.sequence_values(tokens)
        return values < self.threshold, identity
