"""Credential-shaped strings built at run time, so no key-shaped literal lives in the repository."""

from __future__ import annotations

import random
import string

_rng = random.Random(1234)


def _chars(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def fake_keys() -> dict[str, str]:
    upper_b32 = string.ascii_uppercase + "234567"
    return {
        "anthropic": "sk-"
        + "ant-"
        + "api03-"
        + _chars(93, string.ascii_letters + string.digits + "_-")
        + "AA",
        "openai-legacy": "sk-" + _chars(20) + "T3Blbk" + "FJ" + _chars(20),
        "openai-project": "sk-" + "proj-" + _chars(58) + "T3Blbk" + "FJ" + _chars(58),
        "aws-akia": "AK" + "IA" + _chars(16, upper_b32),
        "aws-asia": "AS" + "IA" + _chars(16, upper_b32),
        "github": "gh" + "p_" + _chars(36),
        "huggingface": "h" + "f_" + _chars(34, string.ascii_letters),
        "google": "AI" + "za" + _chars(35, string.ascii_letters + string.digits + "-_"),
        "private-key": "-----BEGIN " + "OPENSSH PRIVATE" + " KEY-----",
    }
