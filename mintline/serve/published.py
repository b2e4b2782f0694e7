"""What the service holds, and the two checks it runs with it.

* Watermark keys (a directory of key files, or one file) and the tokenizer they were made
  for: detection is `watermark.detect.Detector`, the code behind `mintline watermark detect`.
  The keys' secrets stay in this process; only key ids and schemes are ever shown.
* Release public keys (`*.pub`; private keys beside them are never read): verification is
  `release.verifying.verify_bundle` on a directory that `release.archive.extracted` made from
  the uploaded tar, so every upload passes the release package's own tar checks first.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mintline.errors import MintlineError


class ServeSetupError(MintlineError):
    """The keys, public keys or tokenizer given to `mintline serve` cannot be used."""


class BundleRejected(Exception):
    """An upload that is not a bundle tar the release package will open (unreadable, links, several tops)."""

    def __init__(self, problems: list[str]):
        super().__init__(problems[0] if problems else "not a bundle tar")
        self.problems = problems


@dataclass(frozen=True)
class Signer:
    path: Path
    fingerprint: str
    algorithm: str


def find_key_files(keys: str | os.PathLike) -> list[Path]:
    """Watermark key files in a directory (JSON files of the key format; others are skipped)."""
    from watermark.keys import KEY_FORMAT

    path = Path(keys)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ServeSetupError(f"keys: no such file or directory: {path}")
    found = []
    for candidate in sorted(path.glob("*.json")):
        try:
            with open(candidate, encoding="utf-8") as handle:
                head = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(head, dict) and head.get("format") == KEY_FORMAT:
            found.append(candidate)
    if not found:
        raise ServeSetupError(f"keys: {path} holds no watermark key file (made by 'mintline watermark keygen')")
    return found


def find_tokenizer(keys: str | os.PathLike, tokenizer: str | os.PathLike | None) -> Path:
    if tokenizer:
        return Path(tokenizer)
    base = Path(keys) if Path(keys).is_dir() else Path(keys).parent
    for candidate in (base / "tokenizer.json", base / "tokenizer" / "tokenizer.json"):
        if candidate.is_file():
            return candidate.parent
    raise ServeSetupError(f"tokenizer: not given and {base} holds no tokenizer.json or tokenizer/; pass --tokenizer")


def load_signers(pubkeys: str | os.PathLike) -> list[Signer]:
    from release.keys import algorithm_name, fingerprint, load_public_key

    path = Path(pubkeys)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.glob("*.pub"))
    else:
        raise ServeSetupError(f"pubkeys: no such file or directory: {path}")
    if not files:
        raise ServeSetupError(f"pubkeys: {path} holds no public key (*.pub, made by 'mintline release keygen')")
    signers = []
    for file in files:
        key = load_public_key(file)  # a private key given by mistake is refused here, never loaded
        signers.append(Signer(file, fingerprint(key), algorithm_name(key)))
    return signers


class TextChecker:
    """Detection with every published key: the CLI's Detector, so verdicts are the CLI's."""

    def __init__(self, keys: str | os.PathLike, tokenizer: str | os.PathLike | None, config):
        from watermark.detect import Detector
        from watermark.keys import load_keys

        self.tokenizer_dir = find_tokenizer(keys, tokenizer)
        self.keys, self.tokenizer_digest = load_keys(find_key_files(keys), self.tokenizer_dir)
        self.config = config
        self.detector = Detector(self.keys, self.tokenizer_dir, config)

    def public_keys(self) -> list[dict]:
        return [{"key_id": key.key_id, "scheme": key.scheme} for key in self.keys]

    def detect(self, text: str):
        (result,) = self.detector.detect_texts([text])
        return result


@dataclass
class BundleCheck:
    result: object  # release.verifying.VerificationResult
    signer: Signer | None
    card: dict | None


class BundleChecker:
    def __init__(self, pubkeys: str | os.PathLike):
        self.signers = load_signers(pubkeys)

    def public_keys(self) -> list[dict]:
        return [{"fingerprint": s.fingerprint, "algorithm": s.algorithm} for s in self.signers]

    def verify_tar(self, tar_path: Path) -> BundleCheck:
        """Verify an uploaded tar against every published key; raises BundleRejected if it cannot be opened."""
        from release import archive
        from release.verifying import verify_bundle

        with archive.extracted(tar_path) as (directory, problems):
            if directory is None:
                raise BundleRejected(problems)
            results = [(signer, verify_bundle(directory, signer.path)) for signer in self.signers]
            card = card_summary(directory / "README.md")
            scratch = str(directory.parent)
        good = [(s, r) for s, r in results if r.ok]
        if good:
            signer, result = good[0]
        else:
            # report against the key the signature names, when one of ours does
            named = [(s, r) for s, r in results if not any("signed with a different key" in x for x in r.reasons)]
            signer, result = None, (named or results)[0][1]
        result.reasons = [reason.replace(scratch, "<upload>") for reason in result.reasons]
        return BundleCheck(result, signer, card)


_FRONT_MATTER = re.compile(r"\A---\n(.*?\n)---\n", re.DOTALL)
CARD_FIELDS = ("license", "library_name", "pipeline_tag", "base_model", "tags", "datasets")


def card_summary(path: Path, limit: int = 1 << 20) -> dict | None:
    """Title, first paragraph and front-matter facts of a bundle's model card (README.md)."""
    import yaml

    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > limit:
            return None
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError):
        return None
    meta, body = {}, text
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            loaded = None
        meta = loaded if isinstance(loaded, dict) else {}
        body = text[match.end() :]
    paragraphs = [p.strip() for p in body.split("\n\n") if p.strip()]
    title = next((p[2:].strip() for p in paragraphs if p.startswith("# ")), None)
    summary = next((p for p in paragraphs if not p.startswith(("#", "|", "-", "```"))), None)
    facts = {k: meta[k] for k in CARD_FIELDS if k in meta and isinstance(meta[k], (str, int, float, list))}
    return {"title": _clip(title, 200), "summary": _clip(summary, 1000), **facts}


def _clip(text: str | None, limit: int) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
