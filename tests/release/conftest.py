"""Fixtures for the release tests: a real (untrained) nano Llama saved with save_pretrained, key
pairs, and one pristine signed bundle per key type that tests copy before tampering with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from release_helpers import key_file


@pytest.fixture(scope="session")
def nano_model_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """`AutoModelForCausalLM.from_config(build_config("nano"))` + the shared tokenizer; no training needed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.presets import build_config

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = build_config(
        "nano", len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    model = AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp("nano-model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def keypairs(tmp_path_factory) -> dict[str, Path]:
    """{'ed25519': prefix, 'ecdsa-p256': prefix, 'other': prefix (an unrelated Ed25519 key)}."""
    from release.keys import generate_keypair

    directory = tmp_path_factory.mktemp("keys")
    prefixes = {}
    for label, algorithm in (("ed25519", "ed25519"), ("ecdsa-p256", "ecdsa-p256"), ("other", "ed25519")):
        prefix = directory / label
        generate_keypair(prefix, algorithm)
        prefixes[label] = prefix
    return prefixes


@pytest.fixture(scope="session")
def run_json(tmp_path_factory) -> Path:
    """A run.json as the pipeline's journal writes it, with a secret that must never be published."""
    directory = tmp_path_factory.mktemp("run")
    document = {
        "run": {
            "created_at": "2026-01-01T00:00:00+00:00",
            "mintline_version": "0.1.0",
            "argv": ["mintline", "run", "--api_key", "SHOULD-NOT-LEAK-1"],
        },
        "stages": {
            "prepare": {
                "config": {"corpus": {"inputs": ["builtin"], "text_field": "text"}, "dedup": {"threshold": 0.8}},
                "inputs": {"corpus": "sha256:" + "1" * 64},
                "outputs": {
                    "/home/someone/runs/default/prepare/data": "sha256:" + "2" * 64,
                    "/home/someone/runs/default/prepare/tokenizer": "sha256:" + "3" * 64,
                },
                "figures": {"docs_read": 1000, "docs_kept": 870, "removed": {"too_short": 80, "near_duplicate": 50}},
                "started_at": "2026-01-01T00:00:01+00:00",
                "finished_at": "2026-01-01T00:01:00+00:00",
                "status": "finished",
            },
            "pretrain": {
                "config": {"model": "nano", "max_steps": 300, "learning_rate": 0.003},
                "inputs": {"data": "sha256:" + "2" * 64, "tokenizer": "sha256:" + "3" * 64},
                "outputs": {"/home/someone/runs/default/pretrain/model": "sha256:" + "4" * 64},
                "figures": {
                    "initial_eval_loss": 8.3,
                    "tokens_per_second": 2500.5,
                    "eval_loss": 4.51,
                    "eval_perplexity": 90.9,
                },
                "started_at": "2026-01-01T00:01:01+00:00",
                "finished_at": "2026-01-01T00:10:00+00:00",
                "status": "finished",
            },
            "align": {
                "config": {"backend": "simulated", "acquisition": "bald", "budget": 200},
                "inputs": {"preferences": "sha256:" + "5" * 64},
                "figures": {
                    "labels_requested": 200,
                    "labels_received": 188,
                    "pseudo_labels": 40,
                    "dpo": {"heldout_implicit_reward_accuracy": 0.61},
                },
                "status": "finished",
            },
            "watermark": {
                "config": {
                    "scheme": "kgw-selfhash",
                    "gamma": 0.25,
                    "secret": "SHOULD-NOT-LEAK-2",
                    "hashing_key": 987654321123,
                },
                "figures": {"key_id": "wmk-" + "ab" * 16, "z_score_mean": 9.5},
                "status": "finished",
            },
            "broken": "not a mapping",
        },
    }
    path = directory / "run.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="session")
def pristine_bundles(tmp_path_factory, nano_model_dir, keypairs, run_json) -> dict[str, Path]:
    """One signed bundle per key algorithm, built once; copy before modifying (see `bundle_copy`)."""
    from release.bundle import build_bundle

    directory = tmp_path_factory.mktemp("bundles")
    bundles = {}
    for algorithm in ("ed25519", "ecdsa-p256"):
        out = directory / algorithm
        build_bundle(
            nano_model_dir,
            out,
            key_file(keypairs[algorithm], ".key"),
            name="nano-test",
            version="1.0.0",
            holder="Test Holder",
            run_json=run_json,
            year=2026,
        )
        bundles[algorithm] = out
    return bundles


@pytest.fixture
def bundle_copy(tmp_path, pristine_bundles):
    def copy(algorithm: str = "ed25519") -> Path:
        target = tmp_path / f"bundle-{algorithm}"
        shutil.copytree(pristine_bundles[algorithm], target, symlinks=True)
        return target

    return copy
