from __future__ import annotations

import hashlib
import uuid

import pytest

from fakekeys import fake_keys
from modelctl import secretscan

KEYS = fake_keys()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_every_provider_key_is_found(name: str) -> None:
    findings = secretscan.scan({"parameters": {"api_key": KEYS[name]}})
    assert [f.field for f in findings] == ["parameters.api_key"]
    assert KEYS[name] not in findings[0].message


@pytest.mark.parametrize("name", sorted(KEYS))
def test_keys_inside_text_and_lists_are_found(name: str) -> None:
    findings = secretscan.scan(
        {"description": f"use {KEYS[name]} here", "aliases": ["x", KEYS[name]]}
    )
    assert {f.field for f in findings} == {"description", "aliases[1]"}


def test_digests_commits_and_uuids_are_never_flagged() -> None:
    data = {
        "sha256": hashlib.sha256(b"x").hexdigest(),
        "commit": hashlib.sha1(b"y").hexdigest(),
        "artifact": {"sha256": hashlib.sha256(b"z").hexdigest().upper()},
        "id": str(uuid.uuid4()),
        "provider_key": "env:OPENAI_API_KEY",
        "other": "aws-sm:prod/openai",
        "many": [hashlib.sha512(str(i).encode()).hexdigest() for i in range(200)],
    }
    assert secretscan.scan(data) == []


def test_secret_reference_pattern() -> None:
    for good in [
        "env:OPENAI_API_KEY",
        "vault:secret/data/openai#key",
        "aws-sm:prod/openai",
        "gcp-sm:projects/p/secrets/s",
    ]:
        assert secretscan.SECRET_REF_RE.match(good)
    for bad in ["env:", "env:1X", "OPENAI_API_KEY", "vault:", "file:/etc/passwd"]:
        assert not secretscan.SECRET_REF_RE.match(bad)
