from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from conftest import cli, make_registry
from fakekeys import fake_keys, near_misses
from modelctl.registry import secretscan

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


@pytest.mark.parametrize("name", sorted(set(KEYS) - {"deepseek"}))
@pytest.mark.parametrize("before", ["oops", "\x1b[1m", "token_", "0"])
def test_a_key_glued_to_the_text_before_it_is_found(name: str, before: str) -> None:
    """Free text (a reason, a description) need not put a space before a key: a word, a
    terminal style sequence pasted with it (`ESC[1m`), an underscore or a digit. (A bare `sk-`
    and 32 hex digits is found only at a word start: glued, it is the end of `task-<hex>`.)"""
    assert secretscan.classify(f"{before}{KEYS[name]}") is not None, name


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


def test_a_key_that_is_a_secret_is_never_printed(tmp_path: Path) -> None:
    """Found by where it sits; neither the finding nor a schema problem names the key."""
    key = KEYS["openai-project"]
    findings = secretscan.scan({"parameters": {key: "x"}, key: 1})
    assert [f.field for f in findings] == ["(top level) (a key)", "parameters (a key)"]
    registry = make_registry(tmp_path / "reg")
    committed = (registry / "models/support-gpt/2026-03.yaml").read_text()
    model = registry / "models/support-gpt/2099-01.yaml"
    model.write_text(
        committed.replace("version: 2026-03", "version: 2099-01")
        + f"{key}: 1\nextras:\n  {key}: x\n"
    )
    result = cli("validate", "--json", cwd=registry)
    assert result.exit_code == 1
    assert key not in result.stdout + result.stderr
    fields = {p["field"] for p in result.json["problems"]}
    assert {"(top level) (a key)", "extras (a key)"} <= fields


@pytest.mark.parametrize("name", sorted(near_misses()))
def test_near_misses_of_each_key_shape_stay_clean(name: str) -> None:
    text = near_misses()[name]
    assert secretscan.classify(text) is None, name
    assert secretscan.scan({"description": f"see {text} here", "id": text}) == []
