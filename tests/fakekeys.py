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
        "groq": "gs" + "k_" + _chars(52),
        "openrouter": "sk-" + "or-" + "v1-" + _chars(64, string.hexdigits[:16]),
        "xai": "xa" + "i-" + _chars(80),
        "replicate": "r" + "8_" + _chars(37),
        "stripe-secret": "sk" + "_live_" + _chars(24),
        "stripe-restricted": "rk" + "_live_" + _chars(24),
        "perplexity": "pp" + "lx-" + _chars(48),
        "fireworks": "f" + "w_" + _chars(24),
        "together": "tg" + "p_v1_" + _chars(43, string.ascii_letters + string.digits + "_-"),
        "anyscale": "es" + "ecret_" + _chars(26),
        "langfuse": "sk-"
        + "lf-"
        + "-".join(_chars(n, "0123456789abcdef") for n in (8, 4, 4, 4, 12)),
        "langsmith-pt": "lsv2"
        + "_pt_"
        + _chars(32, "0123456789abcdef")
        + "_"
        + _chars(10, "0123456789abcdef"),
        "langsmith-sk": "lsv2"
        + "_sk_"
        + _chars(32, "0123456789abcdef")
        + "_"
        + _chars(10, "0123456789abcdef"),
        "deepseek": "sk-" + _chars(32, "0123456789abcdef"),
        "azure-ad": _chars(3)
        + "8"
        + "Q~"
        + _chars(34, string.ascii_letters + string.digits + "_~.-"),
    }


def near_misses() -> dict[str, str]:
    """For each key shape: a string one step away from it, which must stay clean."""
    keys = fake_keys()
    return {
        "groq": keys["groq"][:40],  # too short
        "openrouter": keys["openrouter"].replace("-v1-", "-v2-"),
        "xai": keys["xai"][:40],
        "replicate": keys["replicate"][:-1],
        "stripe-secret": "sk" + "_live",
        "stripe-restricted": "rk" + "_live_" + "short",
        "perplexity": keys["perplexity"][:-2],
        "fireworks": "f" + "w_" + "update_firmware_2026_05_rollout",
        "together": "tg" + "p_v1_" + "x",
        "anyscale": "es" + "ecret_" + "name",
        "langfuse": "pk-" + "lf-" + keys["langfuse"].removeprefix("sk-lf-"),  # a public key
        "langsmith-pt": keys["langsmith-pt"][:-1],
        "langsmith-sk": keys["langsmith-sk"].upper(),
        "deepseek": "sk-" + "0123456789abcdef" * 2 + "0",
        "azure-ad": "v1" + "Q~" + "short",
    }
