"""Find raw credentials in manifests without ever echoing them.

Prefix-anchored rules adapted from gitleaks' default configuration: each provider's keys have a
fixed shape, so sha256 digests, git commit ids and UUIDs (plain hex) can never match. Entropy
heuristics are deliberately absent: they flag every digest in a normal manifest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# A credential reference: env:NAME, vault:PATH, aws-sm:ARN-or-name, gcp-sm:projects/...
SECRET_REF_PATTERN = r"^(env:[A-Za-z_][A-Za-z0-9_]*|(vault|aws-sm|gcp-sm|azure-kv):[^\s]+)$"  # noqa: S105
SECRET_REF_RE = re.compile(SECRET_REF_PATTERN)

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an Anthropic API key", re.compile(r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{20,}")),
    (
        "an OpenAI API key",
        re.compile(
            r"sk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_\-]{8,}T3BlbkFJ[A-Za-z0-9_\-]{8,}"
            r"|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}"
        ),
    ),
    ("an AWS access key id", re.compile(r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b")),
    ("a GitHub token", re.compile(r"(?:gh[pousr]_[0-9A-Za-z]{36}|github_pat_\w{82})\b")),
    ("a Hugging Face token", re.compile(r"(?:hf_|api_org_)[A-Za-z]{34}\b")),
    ("a Google API key", re.compile(r"AIza[\w\-]{35}\b")),
    ("a Groq API key", re.compile(r"gsk_[A-Za-z0-9]{48,56}\b")),
    ("an OpenRouter API key", re.compile(r"sk-or-v1-[a-f0-9]{64}\b")),
    ("an xAI API key", re.compile(r"xai-[A-Za-z0-9]{70,90}\b")),
    ("a Replicate API token", re.compile(r"r8_[A-Za-z0-9]{37}\b")),
    ("a Stripe API key", re.compile(r"(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{20,99}\b")),
    ("a Perplexity API key", re.compile(r"pplx-[A-Za-z0-9]{48}\b")),
    ("a Fireworks AI API key", re.compile(r"fw_[A-Za-z0-9]{24}\b")),
    ("a Together AI API key", re.compile(r"tgp_v1_[A-Za-z0-9_\-]{40,}")),
    ("an Anyscale API key", re.compile(r"esecret_[A-Za-z0-9]{24,64}\b")),
    (
        "a Langfuse secret key",
        re.compile(r"sk-lf-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),
    ),
    ("a LangSmith API key", re.compile(r"lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}\b")),
    # DeepSeek (and other OpenAI-compatible providers): `sk-` and exactly 32 hex digits. The
    # only rule anchored at a word start: the shape is generic enough to end an id such as
    # `task-<hex>`. Every other prefix is distinctive, so a key glued to the text before it
    # (a word, a terminal style sequence pasted along, `token_`) is still found.
    ("an API key (sk- and 32 hex digits)", re.compile(r"\bsk-[0-9a-f]{32}\b")),
    (
        "an Azure AD client secret",
        re.compile(r"[\w~.]{3}\dQ~[\w~.\-]{31,34}(?![\w~.\-])"),
    ),
    ("a private key", re.compile(r"-----BEGIN[ A-Z0-9_\-]{0,100}PRIVATE KEY(?: BLOCK)?-----")),
    ("a Slack token", re.compile(r"xox[baprs]-[0-9A-Za-z\-]{10,}")),
    ("a GitLab token", re.compile(r"glpat-[0-9A-Za-z_\-]{20}\b")),
    ("an npm token", re.compile(r"npm_[A-Za-z0-9]{36}\b")),
    ("a PyPI token", re.compile(r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}")),
    (
        "a JSON Web Token",
        re.compile(r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),
    ),
)


@dataclass(frozen=True)
class Finding:
    """A field that holds what looks like a credential. Never carries the value itself."""

    field: str
    what: str

    @property
    def message(self) -> str:
        return (
            f"holds what looks like {self.what}; secrets never live in the registry: remove it, "
            "rotate the key, and reference it instead "
            "(env:NAME, vault:PATH, aws-sm:NAME, gcp-sm:NAME)"
        )


# One alternation for a first pass (one regex search per string instead of one per rule).
_ANY = re.compile("|".join(f"(?:{pattern.pattern})" for _, pattern in _RULES))
_SHORTEST = 15  # no rule matches fewer characters (a Slack token prefix plus ten)


def classify(text: str) -> str | None:
    """The kind of credential `text` contains, or None."""
    if len(text) < _SHORTEST or not _ANY.search(text):
        return None
    for what, pattern in _RULES:
        if pattern.search(text):
            return what
    return None  # pragma: no cover - _ANY matched, so one rule does


def redact(text: str) -> str:
    """`text` with every credential-shaped part replaced by `<redacted>`: for messages that
    quote source text (a duplicate key, an anchor or tag name, a syntax error's context)."""
    if len(text) < _SHORTEST or not _ANY.search(text):
        return text
    return _ANY.sub("<redacted>", text)


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            yield where, node
        elif isinstance(node, dict):
            for key, child in node.items():
                key_text = str(key)
                if classify(key_text) is not None:
                    # The key is the secret: name where it sits, never the key itself.
                    yield f"{where or '(top level)'} (a key)", key_text
                    key_text = "<redacted key>"
                stack.append((child, f"{where}.{key_text}" if where else key_text))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(node))


def reveals(field: str) -> bool:
    """Whether a field path (as problems print it) holds a credential-shaped part."""
    return any(classify(part) for part in re.split(r"[.\[\]]", field) if part)


def scan(data: Any) -> list[Finding]:
    """Every string (keys included) in a loaded manifest that looks like a credential."""
    findings = []
    for where, text in _walk(data, ""):
        what = classify(text)
        if what is not None:
            findings.append(Finding(where, what))
    return sorted(findings, key=lambda f: f.field)
