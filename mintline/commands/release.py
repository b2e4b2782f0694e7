"""`mintline release`: signing keys, signed MIT release bundles, and their verification.

    mintline release keygen --out keys/publisher [--algorithm ed25519|ecdsa-p256] [--passphrase_env VAR]
    mintline release build MODEL_DIR --out BUNDLE --key keys/publisher.key --name N --version V --holder "Jane Doe"
    mintline release verify BUNDLE --pubkey keys/publisher.pub [--base BASE_BUNDLE] [--json]

`verify` exits 0 only when the signature is valid for the key and every file matches; 1 with
every reason listed when not; 2 for usage errors (no such bundle, unusable key file).
A key's fingerprint is the SHA-256 of its DER-encoded SubjectPublicKeyInfo, in hex.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mintline.console import CommandResult, format_key_values
from release.bundle import ReleaseConfig

FINGERPRINT_NOTE = "fingerprint = SHA-256 of the DER-encoded SubjectPublicKeyInfo (hex)"


@dataclass
class KeygenArguments:
    out: str = field(default=None, metadata={"help": "key prefix: writes PREFIX.key (PEM, mode 0600) and PREFIX.pub"})
    algorithm: Literal["ed25519", "ecdsa-p256"] = field(
        default="ed25519",
        metadata={"help": "ed25519, or ecdsa-p256 for bundles the stock OpenSSF `model_signing` tool must verify"},
    )
    passphrase_env: str = field(
        default=None, metadata={"help": "name of an environment variable whose value encrypts the private key"}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace existing PREFIX.key / PREFIX.pub"})

    def __post_init__(self):
        if not self.out:
            raise ValueError("out: required (a key prefix such as keys/publisher)")


@dataclass
class VerifyArguments:
    pubkey: str = field(default=None, metadata={"help": "the publisher's public key (PREFIX.pub)"})
    base: str = field(default=None, metadata={"help": "for an adapter bundle: the base bundle, to check the chain"})
    base_pubkey: str = field(default=None, metadata={"help": "public key of the base bundle (default: --pubkey)"})
    allow_symlinks: bool = field(
        default=False, metadata={"help": "accept symlinks to files inside the bundle (never followed outside)"}
    )
    workers: int = field(default=None, metadata={"help": "hashing threads; one per available core when not given"})

    def __post_init__(self):
        if not self.pubkey:
            raise ValueError("pubkey: required (the publisher's PREFIX.pub)")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers: must be >= 1, got {self.workers}")


def make_parser(subparsers: argparse._SubParsersAction | None = None):
    from mintline.argparsing import MintlineParser

    description = "Build, sign and verify MIT release bundles (OpenSSF model-signing v1.0 signatures)."
    if subparsers is None:
        parser = MintlineParser(None, prog="mintline release", description=description)
    else:
        parser = subparsers.add_parser(
            "release", help="build, sign and verify MIT release bundles", description=description
        )
    verbs = parser.add_subparsers(parser_class=MintlineParser, title="verbs", metavar="{keygen,build,verify}")

    keygen = verbs.add_parser(
        "keygen",
        help="make a signing key pair",
        description=f"Write PREFIX.key (PEM PKCS#8, mode 0600) and PREFIX.pub; print the {FINGERPRINT_NOTE}.",
        dataclass_types=(KeygenArguments,),
    )
    keygen.set_defaults(handler=keygen_main)

    build = verbs.add_parser(
        "build",
        help="assemble and sign a bundle from a model directory",
        description="Copy the model (safetensors only), write LICENSE (MIT), README.md (model card), provenance.json, "
        "and sign every file into model.sig. Atomic: nothing appears at --out unless the bundle is complete.",
        dataclass_types=(ReleaseConfig,),
    )
    build.add_argument("model_dir", help="save_pretrained directory (model or PEFT adapter) with its tokenizer")
    build.set_defaults(handler=build_main)

    verify = verbs.add_parser(
        "verify",
        help="check a bundle's signature, files, licence and base chain",
        description="Exit 0 only if the signature is valid for --pubkey and every file matches; 1 listing every "
        f"reason otherwise; 2 for usage errors. The key {FINGERPRINT_NOTE}.",
        dataclass_types=(VerifyArguments,),
    )
    verify.add_argument("bundle", help="bundle directory, or the tar of one ('release build --tar')")
    verify.set_defaults(handler=verify_main)
    return parser


def keygen_main(args: KeygenArguments, options: argparse.Namespace) -> CommandResult:
    from release.bundle import passphrase_from_env
    from release.keys import generate_keypair, key_paths

    passphrase = passphrase_from_env(args.passphrase_env)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)  # `--out keys/publisher` on a fresh clone
    fingerprint = generate_keypair(args.out, args.algorithm, passphrase, overwrite=args.overwrite)
    private_path, public_path = key_paths(args.out)
    data = {
        "private_key": os.fspath(private_path),
        "public_key": os.fspath(public_path),
        "algorithm": args.algorithm,
        "encrypted": bool(passphrase),
        "fingerprint": fingerprint,
    }
    text = format_key_values(data) + f"\n({FINGERPRINT_NOTE}; publish {public_path}, keep {private_path} secret)"
    return CommandResult(data=data, text=text)


def build_main(config: ReleaseConfig, options: argparse.Namespace) -> CommandResult:
    from release.bundle import release_stage

    figures = release_stage(options.model_dir, config)
    shown = {k: v for k, v in figures.items() if v not in (None, [], "")}
    return CommandResult(data=figures, text="bundle built and signed\n" + format_key_values(shown))


def verify_main(args: VerifyArguments, options: argparse.Namespace) -> CommandResult:
    from release.archive import is_tar
    from release.errors import ReleaseError
    from release.verifying import verify_bundle

    if Path(options.bundle).is_file() and not is_tar(options.bundle):
        raise ReleaseError(
            f"{options.bundle}: is a file, not a bundle; give the bundle directory or its tar ('release build --tar')"
        )
    result = verify_bundle(
        options.bundle,
        args.pubkey,
        base=args.base,
        base_pubkey_path=args.base_pubkey,
        allow_symlinks=args.allow_symlinks,
        workers=args.workers,
    )
    figures = result.figures
    if result.ok:
        chain = " (base bundle chain checked)" if figures.get("base_checked") else ""
        text = (
            f"VERIFIED: {options.bundle}{chain}\n"
            f"  {figures.get('files_in_manifest', 0)} files, {figures.get('bytes_hashed', 0):,} bytes match the signed manifest\n"
            f"  key {figures.get('key_algorithm')} {figures.get('key_fingerprint')}\n"
            f"  manifest {figures.get('manifest_digest')}"
        )
    else:
        text = f"NOT VERIFIED: {options.bundle}\n" + "\n".join(f"  - {reason}" for reason in result.reasons)
    return CommandResult(data=result.to_dict(), text=text, exit_code=0 if result.ok else 1)


if __name__ == "__main__":
    from mintline.cli import main

    raise SystemExit(main(["release", *sys.argv[1:]]))
