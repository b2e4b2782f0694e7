import os

import pytest

from annotation.config import LabelStudioSettings, Secret, resolve_api_key, resolve_url
from annotation.errors import CredentialsError


def test_url_and_key_from_the_sdk_variables(monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:8080/")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-key-123456")
    assert resolve_url() == "http://127.0.0.1:8080"
    assert resolve_url("http://other:1") == "http://other:1"  # explicit wins
    assert resolve_api_key().reveal() == "env-key-123456"


def test_key_file_must_be_private(monkeypatch, tmp_path):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "env-key-123456")
    key_file = tmp_path / "ls.key"
    key_file.write_text("file-key-abcdef\n")
    os.chmod(key_file, 0o644)
    with pytest.raises(CredentialsError, match="readable by others .*chmod 600"):
        resolve_api_key(api_key_file=key_file)
    os.chmod(key_file, 0o600)
    assert resolve_api_key(api_key_file=key_file).reveal() == "file-key-abcdef"  # the file beats the variable
    with pytest.raises(CredentialsError, match="no such file"):
        resolve_api_key(api_key_file=tmp_path / "missing.key")


def test_missing_or_bad_values(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(CredentialsError, match="no Label Studio URL"):
        resolve_url()
    with pytest.raises(CredentialsError, match="no Label Studio API key"):
        resolve_api_key()
    for bad in ("ftp://x", "http://127.0.0.1:99999", "http://:80", "localhost:8080"):
        with pytest.raises(CredentialsError, match="http://host:port"):
            resolve_url(bad)
    with pytest.raises(ValueError, match="retries"):
        LabelStudioSettings(retries=-1)


def test_secret_never_shows_itself():
    secret = Secret("s3cr3t-value")
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret) and "s3cr3t" not in f"{secret}"
    assert "s3cr3t" not in repr(LabelStudioSettings())  # the settings hold no key at all
