"""Key files: private, well-formed, bound to one tokenizer; every problem is one clear error."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from watermark.errors import KeyFileError, TokenizerError, TokenizerMismatchError
from watermark.keys import generate_key, load_key, load_keys, tokenizer_digest


@pytest.fixture
def other_tokenizer_dir(tmp_path, tokenizer_dir):
    """The shared tokenizer with two vocabulary entries swapped: same size, different ids."""
    out = tmp_path / "other-tokenizer"
    shutil.copytree(tokenizer_dir, out)
    spec = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    a, b = list(vocab)[300], list(vocab)[301]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    (out / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    return out


def test_generate_writes_a_private_key_with_a_public_id(tmp_path, tokenizer_dir):
    path = tmp_path / "k" / "key.json"
    key_id = generate_key(tokenizer_dir, path, gamma=0.5, delta=2.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path)
    assert key.key_id == key_id and key_id.startswith("wmk1-")
    assert len(key.secret) * 8 >= 128
    assert key.params["gamma"] == 0.5 and key.params["seeding"] == "lefthash"
    assert key.secret.hex() not in json.dumps(key.public_info())
    assert generate_key(tokenizer_dir, tmp_path / "second.json") != key_id  # fresh secret each time
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key(tokenizer_dir, path)


def test_tokenizer_digest_is_the_same_beside_a_model(tokenizer_dir, trained_model_dir):
    assert tokenizer_digest(tokenizer_dir)[0] == tokenizer_digest(trained_model_dir)[0]
    assert tokenizer_digest(tokenizer_dir)[1] == 4096


def test_wrong_permissions_are_refused(tmp_path, tokenizer_dir):
    path = tmp_path / "key.json"
    generate_key(tokenizer_dir, path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: "{not json", "malformed key file"),
        (lambda d: json.dumps([1, 2]), "malformed key file"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "secret"}), "missing secret"),
        (lambda d: json.dumps(d | {"secret": "zz"}), "not hexadecimal"),
        (lambda d: json.dumps(d | {"secret": "ab" * 16}), "key id does not match"),
        (lambda d: json.dumps(d | {"secret": "ab" * 4}), "at least 128"),
        (lambda d: json.dumps(d | {"params": d["params"] | {"delta": 9.0}}), "key id does not match"),
        (lambda d: json.dumps(d | {"params": d["params"] | {"gamma": 1.5}}), "gamma"),
        (lambda d: json.dumps(d | {"version": 7}), "version 7"),
    ],
)
def test_malformed_or_edited_key_files_are_refused(tmp_path, tokenizer_dir, mutate, message):
    path = tmp_path / "key.json"
    generate_key(tokenizer_dir, path, scheme="kgw")  # the edits above are to KGW's parameters
    path.write_text(mutate(json.loads(path.read_text())))
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match=message):
        load_key(path)


def test_key_for_another_tokenizer_is_refused(tmp_path, tokenizer_dir, other_tokenizer_dir):
    path = tmp_path / "key.json"
    generate_key(other_tokenizer_dir, path)
    with pytest.raises(TokenizerMismatchError, match="another tokenizer"):
        load_keys([path], tokenizer_dir)
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        tokenizer_digest(tmp_path)


def test_same_key_twice_is_refused(kgw_key, tokenizer_dir):
    with pytest.raises(KeyFileError, match="twice"):
        load_keys([kgw_key, kgw_key], tokenizer_dir)
