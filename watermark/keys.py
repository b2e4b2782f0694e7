"""Watermark key files: a secret, the scheme and its parameters, and the tokenizer they belong to.

A key file is JSON, written atomically with mode 0600:

    {"format": "mintline-watermark-key", "version": 1, "key_id": "wmk1-…",
     "scheme": "kgw", "params": {"gamma": 0.25, "delta": 2.0, …},
     "tokenizer": {"digest": "sha256:…", "vocab_size": 4096},
     "secret": "<64 hex digits>", "created_at": "…"}

The key id is a public fingerprint: SHA-256 over the secret, scheme, parameters and tokenizer
digest. It may be published (it reveals nothing about the secret, a 256-bit value behind a
preimage-resistant hash), names exactly one configuration, and is re-computed on load, so a
hand-edited parameter or a corrupted secret is caught instead of silently detecting nothing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watermark.errors import ConfigError, KeyFileError, TokenizerError, TokenizerMismatchError

KEY_FORMAT = "mintline-watermark-key"
KEY_VERSION = 1
SECRET_BYTES = 32  # 256 bits; load accepts >= 16 bytes (128 bits), the stated minimum
MIN_SECRET_BYTES = 16

SCHEMES = ("kgw", "synthid", "gumbel")
# The scheme of a key made without naming one (keygen, the pipeline, generate_key): SynthID's tournament
# is distortion-free in expectation and meets the detection target at 200 tokens without KGW's
# perplexity cost (README "The text mark's price"; benchmarks/watermark_tradeoff.py). KGW parameters
# given without a scheme still make a KGW key (`scheme_for`), as they always did.
DEFAULT_SCHEME = "synthid"
# KGW defaults, chosen for robustness first (measured on the nano model, 200 tokens, N=200):
# left-hash over one token survives editing best (a token keeps its evidence when it and its
# predecessor survive); gamma 0.25 beats 0.5 at equal delta; delta 2.5 keeps TPR at 1% FPR at
# 0.975 after 50% word substitution, where delta 2.0 gives 0.93 at a lower quality cost
# (perplexity x1.64 instead of x2.06 under the model itself). Keys record their parameters, so
# `keygen --delta 2.0` is a one-flag choice for quality-first releases.
KGW_DEFAULTS: dict[str, Any] = {"gamma": 0.25, "delta": 2.5, "seeding": "lefthash", "context_width": 1}
SYNTHID_DEFAULTS: dict[str, Any] = {"ngram_len": 5, "depth": 30, "context_history_size": 1024}
# Gumbel/EXP sampling (watermark/gumbel.py): distortion-free; the context width trades robustness
# to edits (short) against repeated contexts, which carry no mark (long).
GUMBEL_DEFAULTS: dict[str, Any] = {"context_width": 4}


def default_params(scheme: str) -> dict[str, Any]:
    if scheme == "kgw":
        return dict(KGW_DEFAULTS)
    if scheme == "synthid":
        return dict(SYNTHID_DEFAULTS)
    if scheme == "gumbel":
        return dict(GUMBEL_DEFAULTS)
    raise ConfigError(f"scheme: must be one of {', '.join(SCHEMES)}, got {scheme!r}")


def scheme_for(params: dict[str, Any]) -> str:
    """The scheme a parameter set names when no scheme is given: `--delta 2` made a KGW key before
    the default changed and still does; no parameters at all give DEFAULT_SCHEME."""
    given = {name for name, value in params.items() if value is not None}
    if not given:
        return DEFAULT_SCHEME
    # first match in SCHEMES order: context_width alone (kgw and gumbel) meant kgw before gumbel existed
    matching = [scheme for scheme in SCHEMES if given <= set(default_params(scheme))]
    return matching[0] if matching else DEFAULT_SCHEME


def validate_params(scheme: str, params: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, reject unknown keys and bad values; returns the complete parameter dict."""
    full = default_params(scheme)
    unknown = sorted(set(params) - set(full))
    if unknown:
        raise ConfigError(f"{scheme}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(full)}")
    full.update({k: v for k, v in params.items() if v is not None})
    if scheme == "kgw":
        full["gamma"], full["delta"] = float(full["gamma"]), float(full["delta"])
        full["context_width"] = int(full["context_width"])
        if not 0.0 < full["gamma"] < 1.0:
            raise ConfigError(f"gamma: must be in (0, 1), got {full['gamma']}")
        if not 0.0 < full["delta"] <= 20.0:
            raise ConfigError(f"delta: must be in (0, 20], got {full['delta']}")
        if full["seeding"] not in ("lefthash", "selfhash"):
            raise ConfigError(f"seeding: must be lefthash or selfhash, got {full['seeding']!r}")
        if not 1 <= full["context_width"] <= 8:
            raise ConfigError(f"context_width: must be in 1..8, got {full['context_width']}")
    elif scheme == "gumbel":
        full["context_width"] = int(full["context_width"])
        if not 1 <= full["context_width"] <= 8:
            raise ConfigError(f"context_width: must be in 1..8, got {full['context_width']}")
    else:
        for name, low, high in (("ngram_len", 2, 16), ("depth", 1, 64), ("context_history_size", 1, 1 << 16)):
            full[name] = int(full[name])
            if not low <= full[name] <= high:
                raise ConfigError(f"{name}: must be in {low}..{high}, got {full[name]}")
    return full


# -- tokenizer identity -------------------------------------------------------------------------
def tokenizer_file(tokenizer_dir: str | os.PathLike) -> Path:
    path = Path(tokenizer_dir)
    candidate = path if path.is_file() else path / "tokenizer.json"
    if not candidate.is_file():
        if not path.exists():
            raise TokenizerError(f"tokenizer: no such directory: {path}")
        raise TokenizerError(f"tokenizer: {path} has no tokenizer.json (a fast tokenizer saved with save_pretrained)")
    return candidate


def tokenizer_digest(tokenizer_dir: str | os.PathLike) -> tuple[str, int]:
    """(digest, vocab size) of everything that maps text to token ids, from tokenizer.json.

    Runtime settings (truncation, padding) are left out, so the same tokenizer saved beside
    a model or on its own has one digest.
    """
    path = tokenizer_file(tokenizer_dir)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TokenizerError(f"tokenizer: cannot read {path} ({type(exc).__name__}: {exc})") from None
    if not isinstance(spec, dict) or "model" not in spec:
        raise TokenizerError(f"tokenizer: {path} is not a tokenizers JSON file (no 'model')")
    identity = {k: v for k, v in spec.items() if k not in ("truncation", "padding", "version")}
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    vocab = spec["model"].get("vocab") or {}
    ids = list((vocab.values() if isinstance(vocab, dict) else range(len(vocab))))
    ids += [t.get("id", 0) for t in spec.get("added_tokens") or []]
    vocab_size = (max(ids) + 1) if ids else 0
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest(), int(vocab_size)


# -- the key ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WatermarkKey:
    secret: bytes = field(repr=False)
    scheme: str
    params: dict[str, Any]
    tokenizer_digest: str
    vocab_size: int
    created_at: str = ""
    path: str | None = None
    weight_mark: dict[str, Any] | None = None  # set by `watermark embed` (watermark/weights.py)

    @property
    def key_id(self) -> str:
        return fingerprint(self.secret, self.scheme, self.params, self.tokenizer_digest)

    def check_tokenizer(self, digest: str, where: str = "tokenizer") -> None:
        if digest != self.tokenizer_digest:
            raise TokenizerMismatchError(
                f"{self.path or 'key'}: made for another tokenizer ({self.tokenizer_digest[:19]}…) "
                f"than {where} ({digest[:19]}…); detection with it would be meaningless"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "key_id": self.key_id,
            "scheme": self.scheme,
            "params": self.params,
            "tokenizer": {"digest": self.tokenizer_digest, "vocab_size": self.vocab_size},
            "secret": self.secret.hex(),
            "created_at": self.created_at,
            **({"weight_mark": self.weight_mark} if self.weight_mark else {}),
        }

    def public_info(self) -> dict[str, Any]:
        """Everything but the secret: safe to print, publish, or put in a model card."""
        data = self.to_json()
        data.pop("secret")
        return data


def fingerprint(secret: bytes, scheme: str, params: dict[str, Any], digest: str) -> str:
    material = json.dumps({"scheme": scheme, "params": params, "tokenizer": digest}, sort_keys=True).encode()
    h = hashlib.sha256(b"mintline/watermark/key-id/v1\x00" + secret + b"\x00" + material)
    return "wmk1-" + h.hexdigest()[:32]


WEIGHT_MARK_SCHEME = "gaussmark"


def weight_mark_id(secret: bytes, body: dict[str, Any]) -> str:
    """Integrity id of a key's weight-mark record: a hand-edited sigma or digest is caught on load.

    Separate from the key id, so embedding a mark leaves the already published key id unchanged
    and readers that predate weight marks still load the key (they ignore the section).
    """
    material = json.dumps({k: v for k, v in body.items() if k != "mark_id"}, sort_keys=True).encode()
    return (
        "wmm1-"
        + hashlib.sha256(b"mintline/watermark/weight-mark/v1\x00" + secret + b"\x00" + material).hexdigest()[:32]
    )


def generate_key(
    tokenizer_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    scheme: str | None = None,
    overwrite: bool = False,
    **params: Any,
) -> str:
    """Write a new key file (mode 0600) for this tokenizer; returns its public key id.

    Without `scheme`, the parameters pick it (`scheme_for`): KGW's own make a KGW key, none the default.
    """
    scheme = scheme or scheme_for(params)
    digest, vocab_size = tokenizer_digest(tokenizer_dir)
    key = WatermarkKey(
        secret=secrets.token_bytes(SECRET_BYTES),
        scheme=scheme,
        params=validate_params(scheme, params),
        tokenizer_digest=digest,
        vocab_size=vocab_size,
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )
    write_key(key, out_path, overwrite=overwrite)
    return key.key_id


def write_key(key: WatermarkKey, out_path: str | os.PathLike, overwrite: bool = False) -> None:
    """Atomic write; the temp file is created 0600, so the secret is never readable by others."""
    out = Path(out_path)
    if out.exists() and not overwrite:
        raise KeyFileError(
            f"{out}: already exists; a key that replaces another makes its marks undetectable "
            "(--overwrite replaces it)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(key.to_json(), handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_key(path: str | os.PathLike) -> WatermarkKey:
    """Read and check a key file; every problem is a KeyFileError naming the file."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path}: not a regular file")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not a key file (not UTF-8 text)") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read ({exc.strerror})") from None
    if raw.lstrip().startswith("-----BEGIN"):  # before the mode check: a .pub file is rightly world-readable
        raise KeyFileError(
            f"{path}: {_pem_kind(raw)}, not a watermark key (a JSON file from 'mintline watermark keygen')"
        )
    if info.st_mode & 0o077:
        raise KeyFileError(
            f"{path}: permissions {stat.S_IMODE(info.st_mode):04o} let others read the secret; "
            f"the key must be private to its owner (chmod 600 {path})"
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise KeyFileError(f"{path}: malformed key file (invalid JSON at line {exc.lineno}: {exc.msg})") from None
    return _parse_key(data, path)


def _pem_kind(text: str) -> str:
    """What a PEM file holds, in words: 'mintline release keygen' writes Ed25519 or ECDSA signing keys."""
    label = text.lstrip().splitlines()[0].strip("- ").removeprefix("BEGIN ").lower()  # e.g. "private key"
    if "public" in label:
        return "a PEM public key (Ed25519/ECDSA, verifies release bundles)"
    if "private" in label:
        return "a PEM private key (Ed25519/ECDSA, signs release bundles)"
    return f"a PEM file ({label})"


def _parse_key(data: Any, path: Path) -> WatermarkKey:
    if not isinstance(data, dict) or data.get("format") != KEY_FORMAT:
        raise KeyFileError(f"{path}: malformed key file (not a {KEY_FORMAT} JSON object)")
    if data.get("version") != KEY_VERSION:
        raise KeyFileError(
            f"{path}: key file version {data.get('version')!r} is not supported (expected {KEY_VERSION})"
        )
    missing = [k for k in ("key_id", "scheme", "params", "tokenizer", "secret") if k not in data]
    if missing:
        raise KeyFileError(f"{path}: malformed key file (missing {', '.join(missing)})")
    try:
        secret = bytes.fromhex(str(data["secret"]))
    except ValueError:
        raise KeyFileError(f"{path}: malformed key file (secret is not hexadecimal)") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyFileError(f"{path}: secret has {len(secret) * 8} bits; at least {MIN_SECRET_BYTES * 8} are required")
    tokenizer = data["tokenizer"]
    if not isinstance(tokenizer, dict) or not str(tokenizer.get("digest", "")).startswith("sha256:"):
        raise KeyFileError(f"{path}: malformed key file (tokenizer.digest missing)")
    if data["scheme"] not in SCHEMES or not isinstance(data["params"], dict):
        raise KeyFileError(f"{path}: malformed key file (scheme {data['scheme']!r} / params)")
    try:
        params = validate_params(data["scheme"], data["params"])
        vocab_size = int(tokenizer.get("vocab_size", 0))
    except (ConfigError, TypeError, ValueError) as exc:
        raise KeyFileError(f"{path}: malformed key file ({exc})") from None
    weight_mark = data.get("weight_mark")
    if weight_mark is not None:
        if (
            not isinstance(weight_mark, dict)
            or weight_mark.get("scheme") != WEIGHT_MARK_SCHEME
            or not isinstance(weight_mark.get("tensors"), dict)
        ):
            raise KeyFileError(f"{path}: malformed key file (weight_mark)")
        if weight_mark.get("mark_id") != weight_mark_id(secret, weight_mark):
            raise KeyFileError(f"{path}: weight mark does not match its id (edited or corrupted key file)")
    key = WatermarkKey(
        secret=secret,
        scheme=data["scheme"],
        params=params,
        tokenizer_digest=tokenizer["digest"],
        vocab_size=vocab_size,
        created_at=str(data.get("created_at", "")),
        path=str(path),
        weight_mark=weight_mark,
    )
    if key.key_id != data["key_id"]:
        raise KeyFileError(f"{path}: key id does not match its contents (edited or corrupted key file)")
    return key


def load_key_for(path: str | os.PathLike, tokenizer_dir: str | os.PathLike) -> WatermarkKey:
    """Load one key and refuse it unless it was made for the tokenizer in `tokenizer_dir`."""
    key = load_key(path)
    key.check_tokenizer(tokenizer_digest(tokenizer_dir)[0], where=f"the tokenizer in {tokenizer_dir}")
    return key


def load_keys(paths: list[str | os.PathLike], tokenizer_dir: str | os.PathLike) -> tuple[list[WatermarkKey], str]:
    """Load several keys and check each against the tokenizer; returns (keys, tokenizer digest)."""
    digest, _ = tokenizer_digest(tokenizer_dir)
    keys = [load_key(p) for p in paths]
    for key in keys:
        key.check_tokenizer(digest, where=str(tokenizer_dir))
    ids = [k.key_id for k in keys]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise KeyFileError(f"the same key is given twice ({duplicates[0]}); it would count twice in the correction")
    return keys, digest
