"""Assemble a release bundle atomically: model files, LICENSE, model card, provenance, signature.

    out/                       (appears only when complete)
      config.json, model.safetensors, tokenizer*.json, generation_config.json, [adapter files]
                               (an adapter built on a base bundle: its adapter_config.json names the
                               base by its location relative to this bundle, e.g. "../base")
      LICENSE                  exact MIT text, year, holder
      README.md                Hugging Face model card
      provenance.json          in-toto statement, SLSA v1-style predicate
      model.sig                OpenSSF model-signing v1.0 signature (Sigstore bundle, DSSE)

Everything is written into a temporary directory beside the destination and renamed into place
in one step, so a crash leaves nothing at the destination (only a `.NAME.tmp-*` directory
beside it, removed on the way out when possible). Model files are copied and hashed in the
same pass, so each byte is read once. The private key is only read, never copied.

A bundle is MIT: a model directory that declares another licence (or another holder's MIT
licence) is refused unless `allow_relicense` says the publisher holds the rights; the input's
licence and digest are recorded in provenance either way (see `release.input_license`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from release import archive, keys, license, provenance, signing
from release.card import CARD_NAME, CardFacts, render_card
from release.errors import BundleExistsError, LicenseConflictError, ModelDirectoryError, ReleaseError
from release.hashing import HashJob, hash_bytes, hash_files
from release.input_license import read_declared_license, relicense_conflict
from release.manifest import Manifest, parse_statement
from release.model_files import select_model_files
from release.run_record import load_run_record
from release.serialization import SIGNATURE_NAME
from release.verifying import read_envelope, verify_bundle

RELEASE_FILES = ("LICENSE", CARD_NAME, provenance.PROVENANCE_NAME, SIGNATURE_NAME)
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class ReleaseConfig:
    """The release stage's config (the `mintline release build` options; the pipeline fills it too)."""

    out: str = field(default=None, metadata={"help": "bundle directory to create (must not exist unless --overwrite)"})
    key: str = field(
        default=None, metadata={"help": "private signing key (PREFIX.key from `mintline release keygen`)"}
    )
    name: str = field(
        default="mintline-model", metadata={"help": "model name, used in the card and the signature subject"}
    )
    version: str = field(default="0.1.0", metadata={"help": "release version"})
    holder: str = field(default="mintline contributors", metadata={"help": "copyright holder written into LICENSE"})
    year: int = field(default=None, metadata={"help": "copyright year; the current year when not given"})
    run_json: str = field(
        default=None, metadata={"help": "the pipeline's run.json (or run directory): fills the card and provenance"}
    )
    base_bundle: str = field(
        default=None, metadata={"help": "for an adapter: the base model's bundle, recorded by its manifest digest"}
    )
    base_pubkey: str = field(
        default=None, metadata={"help": "public key to verify --base_bundle with before recording it"}
    )
    passphrase_env: str = field(
        default=None, metadata={"help": "environment variable holding the private key's passphrase"}
    )
    tags: list[str] = field(default_factory=list, metadata={"help": "extra model-card tags"})
    tar: bool = field(
        default=False, metadata={"help": "also write OUT.tar (deterministic) beside the bundle directory"}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace an existing bundle (atomically)"})
    allow_relicense: bool = field(
        default=False,
        metadata={
            "help": "publish under MIT a model that declares another licence or holder (only if you hold the "
            "rights); recorded in provenance.json and the card"
        },
    )
    allow_symlinks: bool = field(
        default=False, metadata={"help": "copy the targets of symlinks in the model directory"}
    )
    workers: int = field(default=None, metadata={"help": "hashing threads; one per available core when not given"})

    def __post_init__(self):
        if not self.out:
            raise ValueError("out: required (the bundle directory to create)")
        if not self.key:
            raise ValueError("key: required (a private key from `mintline release keygen`)")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers: must be >= 1, got {self.workers}")
        if self.year is not None and not 1970 <= self.year <= 9999:
            raise ValueError(f"year: must be a four-digit year, got {self.year}")


def passphrase_from_env(variable: str | None) -> str | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise ReleaseError(f"passphrase_env: environment variable {variable} is not set or empty")
    return value


def release_stage(model_dir: str | os.PathLike, config: ReleaseConfig) -> dict:
    """The pipeline's entry point: build the bundle `config` describes; return its figures."""
    return build_bundle(
        model_dir,
        config.out,
        config.key,
        name=config.name,
        version=config.version,
        holder=config.holder,
        run_json=config.run_json,
        base_bundle=config.base_bundle,
        base_pubkey=config.base_pubkey,
        passphrase=passphrase_from_env(config.passphrase_env),
        year=config.year,
        tags=config.tags,
        overwrite=config.overwrite,
        allow_symlinks=config.allow_symlinks,
        workers=config.workers,
        tar=config.tar,
        allow_relicense=config.allow_relicense,
    )


def _missing_parent_message(out: Path) -> str:
    """Why `out` cannot be created: its nearest existing ancestor is a file, or a directory is missing."""
    for ancestor in out.parents:
        if ancestor.exists() and not ancestor.is_dir():
            return f"{ancestor}: is a file, not a directory (--out {out})"
    return f"{out.parent}: no such directory for the bundle"


def build_bundle(
    model_dir: str | os.PathLike,
    out: str | os.PathLike,
    key_path: str | os.PathLike,
    *,
    name: str = "mintline-model",
    version: str = "0.1.0",
    holder: str = "mintline contributors",
    run_json: str | os.PathLike | None = None,
    base_bundle: str | os.PathLike | None = None,
    base_pubkey: str | os.PathLike | None = None,
    passphrase: str | bytes | None = None,
    year: int | None = None,
    tags: list[str] | None = None,
    overwrite: bool = False,
    allow_symlinks: bool = False,
    workers: int | None = None,
    tar: bool = False,
    allow_relicense: bool = False,
) -> dict:
    """Build and sign a bundle at `out`; return its figures (files, bytes, digests, key id, seconds)."""
    started = time.perf_counter()
    started_at = _now()
    out = Path(out)
    tar_path = out.with_name(out.name + ".tar") if tar else None
    for target in (out, tar_path):
        if target is not None and (target.exists() or target.is_symlink()) and not overwrite:
            raise BundleExistsError(f"{target} already exists; choose another --out or pass --overwrite")
    if not out.parent.is_dir():
        raise ReleaseError(_missing_parent_message(out))
    if not name.strip() or "/" in name:
        raise ReleaseError(f"name: {name!r} must be a non-empty name without '/'")
    private_key = keys.load_private_key(key_path, passphrase)  # bad key or passphrase: fail before any copying
    public_key = private_key.public_key()
    model = select_model_files(model_dir, allow_symlinks=allow_symlinks)
    taken = [n for n, _, _ in model.files if n in RELEASE_FILES]
    if taken:
        raise ModelDirectoryError(f"{model_dir}: {', '.join(taken)} would clash with the release's own files")
    run = load_run_record(run_json)
    base = describe_base_bundle(base_bundle, base_pubkey) if base_bundle is not None else None
    year = year or _dt.date.today().year
    license_text = license.mit_license(holder, year)  # validates the holder before any work
    declared = read_declared_license(model_dir)
    conflict = relicense_conflict(declared, holder)
    if conflict and not allow_relicense:
        raise LicenseConflictError(
            f"{model_dir}: {conflict}; only its rights holders may relicense it: pass --allow_relicense if you "
            "are one (it is recorded in provenance.json), or publish it under its own licence"
        )
    # An adapter names its base where a copy of the release will find it: relative to this bundle.
    base_location = None
    if base is not None and model.is_adapter:
        base_location = Path(os.path.relpath(os.path.abspath(base_bundle), os.path.abspath(out))).as_posix()

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        jobs = []
        for relative, source, size in model.files:
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            jobs.append(HashJob(relative, source, size, copy_to=target))
        report = hash_files(jobs, workers=workers, follow_symlinks=allow_symlinks, progress="copying")
        if report.errors:
            relative, why = next(iter(report.errors.items()))
            raise ModelDirectoryError(f"{model_dir}: cannot read {relative}: {why}")
        digests = dict(report.digests)
        input_digest = "sha256:" + Manifest.from_digests("input", digests).root_digest  # before any rewrite
        if model.is_adapter and base_location is not None:
            data = _adapter_config_for_release(model.adapter_config, base_location)
            (staging / ADAPTER_CONFIG).unlink()
            _write_file(staging / ADAPTER_CONFIG, data)
            digests[ADAPTER_CONFIG] = hash_bytes(data)
        input_model = {
            "digest": input_digest,
            "files": len(model.files),
            **declared.to_dict(),
            "relicensed_to_mit": bool(conflict),
        }

        fingerprint = keys.fingerprint(public_key)
        facts = CardFacts(
            name=name,
            version=version,
            holder=" ".join(holder.split()),
            year=str(year),
            key_fingerprint=fingerprint,
            key_algorithm=keys.algorithm_name(public_key),
            base_model=None if base else _adapter_base_name(model.adapter_config),
            base_bundle_name=(base or {}).get("name"),
            base_location=base_location,
            base_manifest_digest=(base or {}).get("manifest_digest"),
            extra_tags=list(tags or []),
            input_license=declared.license,
            relicensed_from=_relicensed_from(declared) if conflict else None,
        )
        statement = provenance.build_provenance(
            subject_digests=dict(sorted(digests.items())),
            release_parameters={
                "name": name,
                "version": version,
                "holder": facts.holder,
                "year": year,
                "key_fingerprint": fingerprint,
                "key_algorithm": facts.key_algorithm,
                "allow_relicense": allow_relicense,
                "base_bundle_location": base_location,
            },
            run=run,
            started_at=started_at,
            finished_at=_now(),
            base_bundle=base,
            input_model=input_model,
        )
        written = {
            "LICENSE": license_text,
            CARD_NAME: render_card(facts, model, run),
            provenance.PROVENANCE_NAME: json.dumps(statement, indent=2) + "\n",
        }
        for relative, text in written.items():
            data = text.encode("utf-8")
            _write_file(staging / relative, data)
            digests[relative] = hash_bytes(data)

        sign_figures = signing.sign_directory(
            staging, key_path, private_key=private_key, model_name=name, workers=workers, known_digests=digests
        )
        _fsync_dir(staging)
        _move_into_place(staging, out, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if tar_path is not None:
        archive.write_tar(out, tar_path)
    return {
        "bundle": os.fspath(out),
        "name": name,
        "version": version,
        "adapter": model.is_adapter,
        "parameters": model.parameters,
        "files": sign_figures["files_signed"],
        "bytes": sign_figures["bytes_signed"],
        "model_files_copied": len(model.files),
        "skipped_files": model.skipped,
        "manifest_digest": sign_figures["manifest_digest"],
        "key_fingerprint": fingerprint,
        "key_algorithm": facts.key_algorithm,
        "base_manifest_digest": (base or {}).get("manifest_digest"),
        "base_bundle_location": base_location,
        "input_license": declared.license,
        "relicensed_to_mit": bool(conflict),
        "run_json": run.path,
        "stages_described": sorted(run.stages),
        "copy_hash_mb_per_s": report.figures()["hash_mb_per_s"],
        "tar": os.fspath(tar_path) if tar_path else None,
        "seconds": round(time.perf_counter() - started, 3),
    }


def describe_base_bundle(base_bundle: str | os.PathLike, base_pubkey: str | os.PathLike | None) -> dict:
    """The base bundle's name and manifest digest; verified first when its public key is given."""
    base_bundle = Path(base_bundle)
    if not base_bundle.is_dir():
        raise ReleaseError(f"base_bundle: {base_bundle} is not a bundle directory")
    if base_pubkey is not None:
        result = verify_bundle(base_bundle, base_pubkey)
        if not result.ok:
            raise ReleaseError(f"base_bundle: {base_bundle} does not verify: {result.reasons[0]}")
    payload, _, problems = read_envelope(base_bundle / SIGNATURE_NAME, None)
    manifest, manifest_problems = parse_statement(payload) if payload is not None else (None, [])
    if manifest is None or manifest_problems:
        reason = (problems + manifest_problems + ["unreadable signature"])[0]
        raise ReleaseError(f"base_bundle: {base_bundle}: {reason}")
    return {
        "manifest_digest": "sha256:" + manifest.root_digest,
        "name": manifest.model_name,
        "verified": base_pubkey is not None,
        "license": read_declared_license(base_bundle).license,
    }


def _relicensed_from(declared) -> str:
    if declared.license == "mit" and declared.mit_holder:
        return f"MIT (copyright {declared.mit_holder})"
    return str(declared.license)


def _adapter_config_for_release(adapter_config: dict, base_location: str) -> bytes:
    """adapter_config.json with `base_model_name_or_path` = the base bundle, relative to the adapter bundle."""
    config = {**adapter_config, "base_model_name_or_path": base_location}
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def _adapter_base_name(adapter_config: dict) -> str | None:
    value = adapter_config.get("base_model_name_or_path")
    # A hub id ("org/name") is worth publishing; a local path is not (and may leak a home directory).
    if (
        isinstance(value, str)
        and value
        and not value.startswith((".", "/", "~"))
        and value.count("/") <= 1
        and not os.path.exists(value)
    ):
        return value
    return None


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _move_into_place(staging: Path, out: Path, overwrite: bool) -> None:
    os.chmod(staging, 0o755)  # mkdtemp makes it 0700; a published bundle is world-readable
    if not (out.exists() or out.is_symlink()):
        os.rename(staging, out)
    elif overwrite:
        # Two renames: the old bundle stays intact until the new one is complete.
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, retired / "bundle")
        os.rename(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        raise BundleExistsError(f"{out} appeared while the bundle was being built; nothing was replaced")
    _fsync_dir(out.parent)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
