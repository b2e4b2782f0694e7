"""`provenance.json`: an in-toto Statement v1 with an SLSA Provenance v1-style predicate.

* subject: the released model files (weights, config, tokenizer, adapters) with their SHA-256;
* buildDefinition.externalParameters: the release options and each stage's config from
  `run.json` (secrets redacted);
* buildDefinition.internalParameters: Python, platform and the versions of the packages that
  shaped the model;
* buildDefinition.resolvedDependencies: digests of everything the run consumed and produced
  (corpus shards, tokenizer, base model, label-ledger export...), the input model directory
  (digest over its files as read, and the licence it declared), the base bundle's manifest
  digest and licence for an adapter, and the code version (mintline version + git commit);
* runDetails: builder id, start/finish times, and each stage's status, times and metrics.

It is a statement, not a separately signed attestation: it is covered by the bundle's
signature like every other file.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import re
import subprocess
from pathlib import Path

from release.run_record import RunRecord

PROVENANCE_NAME = "provenance.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:mintline:release:v1"
BUILDER_ID = "urn:mintline:builder:release"
BASE_BUNDLE_DEPENDENCY = "base_bundle"
INPUT_MODEL_DEPENDENCY = "input_model"
PACKAGES = (
    "mintline",
    "torch",
    "transformers",
    "trl",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "safetensors",
    "cryptography",
)
_SHA256 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


def build_provenance(
    *,
    subject_digests: dict[str, str],
    release_parameters: dict,
    run: RunRecord,
    started_at: str,
    finished_at: str,
    base_bundle: dict | None = None,
    input_model: dict | None = None,
) -> dict:
    """`input_model`: the released model directory as it was read ('digest' over its files, its
    declared licence); `base_bundle`: for an adapter, the base bundle ('manifest_digest', name, licence)."""
    dependencies = _run_dependencies(run)
    if input_model:
        dependencies.append(
            {
                "name": INPUT_MODEL_DEPENDENCY,
                "digest": {"sha256": input_model["digest"].removeprefix("sha256:")},
                "annotations": {k: v for k, v in input_model.items() if k != "digest"},
            }
        )
    if base_bundle:
        dependencies.append(
            {
                "name": BASE_BUNDLE_DEPENDENCY,
                "digest": {"sha256": base_bundle["manifest_digest"].removeprefix("sha256:")},
                "annotations": {k: v for k, v in base_bundle.items() if k != "manifest_digest"},
            }
        )
    dependencies.append(code_version())
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subject_digests.items()],
        "predicateType": SLSA_PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "release": release_parameters,  # written by the release stage itself: nothing secret
                    "run": {name: stage.config for name, stage in run.stages.items()},
                },
                "internalParameters": {
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "packages": package_versions(),
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"mintline": _version("mintline") or "unknown"}},
                "metadata": {
                    "invocationId": run.header.get("created_at") or started_at,
                    "startedOn": run.started_at() or started_at,
                    "finishedOn": finished_at,
                },
                "byproducts": [
                    {
                        "name": f"stage/{name}",
                        "annotations": {
                            "status": stage.status,
                            "started_at": stage.started_at,
                            "finished_at": stage.finished_at,
                            "metrics": stage.figures,
                        },
                    }
                    for name, stage in run.stages.items()
                ],
            },
        },
    }


def recorded_base_digest(provenance_text: str) -> str | None:
    """'sha256:…' of the base bundle an adapter bundle records, or None."""
    try:
        document = json.loads(provenance_text)
        dependencies = document["predicate"]["buildDefinition"]["resolvedDependencies"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    for dependency in dependencies if isinstance(dependencies, list) else []:
        if isinstance(dependency, dict) and dependency.get("name") == BASE_BUNDLE_DEPENDENCY:
            digest = (dependency.get("digest") or {}).get("sha256")
            if isinstance(digest, str) and _SHA256.match(digest):
                return "sha256:" + digest
    return None


def package_versions() -> dict[str, str]:
    return {name: version for name in PACKAGES if (version := _version(name))}


def code_version() -> dict:
    dependency = {"name": "mintline", "annotations": {"version": _version("mintline") or "unknown"}}
    commit, dirty = _git_commit(Path(__file__).resolve().parent.parent)
    if commit:
        dependency["digest"] = {"gitCommit": commit}
        dependency["annotations"]["uncommitted_changes"] = dirty
    return dependency


def _run_dependencies(run: RunRecord) -> list[dict]:
    dependencies, seen = [], set()
    for stage_name, stage in run.stages.items():
        for kind, mapping in (("input", stage.inputs), ("output", stage.outputs)):
            for label, digest in mapping.items():
                match = _SHA256.match(digest) if isinstance(digest, str) else None
                if not match or (label, match.group(1)) in seen:
                    continue
                seen.add((label, match.group(1)))
                # Output labels are paths: keep the last two parts, not the publisher's home directory.
                label = "/".join(Path(label).parts[-2:]) if "/" in label else label
                dependencies.append(
                    {
                        "name": f"{stage_name}/{kind}/{label}",
                        "digest": {"sha256": match.group(1)},
                        "annotations": {"stage": stage_name, "role": kind},
                    }
                )
    return dependencies


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit(directory: Path) -> tuple[str | None, bool]:
    """The source tree's commit, if it is a git checkout; never fails the release."""
    try:
        head = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None, False
        status = subprocess.run(
            ["git", "-C", str(directory), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return head.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, False
