"""Shared by the `mintline serve` tests: what a key holder publishes, and a real server to ask.

`serve_materials` makes, once per test session (cached under pytest's base temp directory, so
the API and browser test modules share it): two watermark keys for the shared tokenizer,
texts marked with one of them by the shared trained nano model, human passages, a mixed text,
a publisher key pair plus a second published signer, and signed bundle tars (intact, tampered,
signed by an unpublished key). `running_server` starts `python -m mintline serve` in a
subprocess on 127.0.0.1 and stops it with SIGTERM, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

PROMPTS = ["The return value", "If the argument is", "This module provides", "Raise an exception"]


def _generate_marked(model_dir: Path, key_path: Path, prompts: list[str], tokens: int) -> list[str]:
    import torch
    from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

    from pretrain.generation import GenerationArguments, generate_texts, load_model_and_tokenizer
    from watermark.keys import load_key
    from watermark.processor import logits_processor_for

    model, tokenizer = load_model_and_tokenizer(model_dir)
    processors = LogitsProcessorList(
        [
            SuppressTokensLogitsProcessor([tokenizer.eos_token_id]),  # every text gets its full length
            logits_processor_for(load_key(key_path), tokenizer, vocab_size=model.config.vocab_size),
        ]
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a ~1M model decodes latency-bound; a second thread only waits
    try:
        args = GenerationArguments(max_new_tokens=tokens, batch_size=len(prompts), seed=0)
        ids = generate_texts(model, tokenizer, prompts, args, logits_processor=processors, return_token_ids=True)
    finally:
        torch.set_num_threads(before)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in ids]


def build_materials(root: Path, tokenizer_dir: Path, model_dir: Path, documents) -> dict:
    from mintline.pipeline.corpus import human_passages
    from release import archive
    from release.bundle import build_bundle
    from release.keys import generate_keypair, key_paths
    from watermark.keys import generate_key

    keys = root / "keys"
    keys.mkdir(parents=True)
    generate_key(tokenizer_dir, keys / "marking.json")
    generate_key(tokenizer_dir, keys / "other.json")
    (keys / "notes.json").write_text(json.dumps({"not": "a key"}))  # skipped: not the key format

    pubkeys = root / "pubkeys"
    pubkeys.mkdir()
    generate_keypair(pubkeys / "publisher", "ed25519")  # publisher.key stays beside its .pub, as in a run
    generate_keypair(pubkeys / "second", "ecdsa-p256")
    os.unlink(key_paths(pubkeys / "second")[0])
    generate_keypair(root / "unpublished", "ed25519")

    texts = root / "texts"
    texts.mkdir()
    marked = _generate_marked(model_dir, keys / "marking.json", PROMPTS, 200)
    human = human_passages((d.text for d in documents), words=150, limit=40)
    files = {}

    def text_file(name: str, text: str) -> None:
        files[name] = texts / f"{name}.txt"
        files[name].write_text(text, encoding="utf-8")

    for i, text in enumerate(marked):
        text_file(f"marked{i}", text)
    for i, text in enumerate(human[:3]):
        text_file(f"human{i}", text)
    text_file("mixed", human[10] + " " + marked[1] + " " + human[11])
    text_file("short", marked[2][:60])

    bundles = root / "bundles"
    bundles.mkdir()
    common = dict(name="serve-test", version="1.0.0", holder="Test Holder", year=2026, tar=True)
    build_bundle(model_dir, bundles / "good", key_paths(pubkeys / "publisher")[0], **common)
    build_bundle(model_dir, bundles / "foreign", key_paths(root / "unpublished")[0], **common)
    tampered = bundles / "tampered"
    shutil.copytree(bundles / "good", tampered)
    config = tampered / "config.json"
    config.write_text(config.read_text().replace('"vocab_size"', '"vocab_size" ', 1))
    archive.write_tar(tampered)
    return {
        "keys": str(keys),
        "pubkeys": str(pubkeys),
        "tokenizer": str(tokenizer_dir),
        "texts": {name: str(path) for name, path in files.items()},
        "bundles": {name: str(bundles / f"{name}.tar") for name in ("good", "foreign", "tampered")},
        "publisher_pub": str(key_paths(pubkeys / "publisher")[1]),
        "publisher_key": str(key_paths(pubkeys / "publisher")[0]),
        "key_files": [str(keys / "marking.json"), str(keys / "other.json")],
    }


def serve_materials(request, tmp_path_factory) -> dict:
    """The materials above, built by the first test module that asks and reused by the others.

    MINTLINE_SERVE_MATERIALS=DIR reuses a DIR/materials.json that `build_materials` wrote
    earlier (for quick re-runs while working on the service; the trained model is then not needed).
    """
    prebuilt = os.environ.get("MINTLINE_SERVE_MATERIALS")
    if prebuilt:
        return json.loads((Path(prebuilt) / "materials.json").read_text())
    root = tmp_path_factory.getbasetemp() / "serve-materials"
    done = root / "materials.json"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        fixtures = [request.getfixturevalue(n) for n in ("tokenizer_dir", "trained_model_dir", "builtin_documents")]
        materials = build_materials(root, Path(fixtures[0]), Path(fixtures[1]), fixtures[2])
        done.write_text(json.dumps(materials))
    return json.loads(done.read_text())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(materials: dict, log_dir: Path, *options: str, startup_timeout: float = 120.0):
    """Yield the base URL of `mintline serve` with these options; stop it with SIGTERM afterwards."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mintline",
        "serve",
        "--keys",
        materials["keys"],
        "--pubkeys",
        materials["pubkeys"],
        "--tokenizer",
        materials["tokenizer"],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    log_path = log_dir / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + startup_timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"mintline serve exited ({process.returncode}): {log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            if time.time() > deadline:
                raise AssertionError(f"mintline serve did not answer /healthz: {log_path.read_text()[-2000:]}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
