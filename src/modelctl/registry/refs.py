"""Names, versions, references, registry paths and lifecycle tags: parsed and formatted here.

Every identifier a user types passes `check_name` before it becomes a path, a git argument or a
tag name. The rule is deliberately narrower than what git or a file system accepts, so that an
accepted name can never escape its folder, be read by git as an option, collide on a
case-insensitive file system, or make an ambiguous tag name (see docs/registry-format.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from modelctl.errors import UsageError

# Lowercase letters and digits first, then letters, digits, `.`, `_`, `-`; at most 64 characters.
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
# The same rule in ECMAScript syntax (JSON Schema): no `..`, no trailing `.`, no `.lock` suffix.
NAME_SCHEMA_PATTERN = r"^(?!.*\.\.)(?!.*\.$)(?!.*\.lock$)[a-z0-9][a-z0-9._-]{0,63}$"
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)
MAX_NAME_LENGTH = 64


class Kind(StrEnum):
    """A versioned artifact kind; the value is its folder in the registry."""

    MODEL = "models"
    PROMPT = "prompts"
    JUDGE = "judges"
    DATASET = "datasets"

    @property
    def singular(self) -> str:
        return self.value[:-1]

    @property
    def manifest_kind(self) -> str:
        """The `kind:` field of a manifest of this kind."""
        return self.singular.capitalize()

    @classmethod
    def parse(cls, text: str) -> Kind:
        """Accept `models`, `model` or `Model`."""
        lowered = text.lower()
        for kind in cls:
            if lowered in (kind.value, kind.singular):
                return kind
        choices = ", ".join(k.singular for k in cls)
        raise UsageError(f"unknown kind {text!r}", hint=f"use one of: {choices}")


def name_problem(text: str) -> str | None:
    """Why `text` is not an acceptable name or version, or None when it is."""
    if not isinstance(text, str):
        return f"must be a string, not {type(text).__name__}"
    if not text:
        return "must not be empty"
    if len(text) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if not _NAME_RE.match(text):
        if text[0] in "-.":
            return f"{text!r} must start with a lowercase letter or digit"
        return (
            f"{text!r} may contain only lowercase letters, digits, '.', '_' and '-' "
            "(no '/', spaces or uppercase)"
        )
    if ".." in text:
        return f"{text!r} must not contain '..'"
    if text.endswith("."):
        return f"{text!r} must not end with '.'"
    if text.endswith(".lock"):
        return f"{text!r} must not end with '.lock' (git reserves it)"
    if text.split(".", 1)[0] in _WINDOWS_RESERVED:
        return f"{text!r} is a reserved file name on Windows"
    return None


def check_name(text: str, what: str = "name") -> str:
    """Return `text` when it is a valid name or version, else raise UsageError naming `what`."""
    problem = name_problem(text)
    if problem is not None:
        raise UsageError(
            f"invalid {what}: {problem}", hint="names look like support-llm or 2026-04"
        )
    return text


@dataclass(frozen=True, order=True)
class Ref:
    """`name@version`, optionally qualified with a kind: `models/name@version`."""

    name: str
    version: str
    kind: Kind | None = None

    def __str__(self) -> str:
        return format_ref(self)

    def qualified(self, kind: Kind) -> Ref:
        if self.kind is not None and self.kind is not kind:
            raise UsageError(
                f"{self} is a {self.kind.singular} reference where a {kind.singular} is expected"
            )
        return Ref(self.name, self.version, kind)

    @property
    def path(self) -> PurePosixPath:
        if self.kind is None:
            raise ValueError(f"reference {self} has no kind, so it has no path")
        return manifest_path(self.kind, self.name, self.version)


def format_ref(ref: Ref, *, with_kind: bool = True) -> str:
    base = f"{ref.name}@{ref.version}"
    return f"{ref.kind.value}/{base}" if with_kind and ref.kind is not None else base


def parse_ref(text: str, kind: Kind | None = None) -> Ref:
    """Parse `name@version` or `kind/name@version`; `kind` is the kind the context expects."""
    if not isinstance(text, str) or not text:
        raise UsageError("empty reference", hint="write name@version, e.g. support-llm@2026-04")
    body = text
    found: Kind | None = None
    if "/" in text:
        prefix, _, body = text.partition("/")
        found = Kind.parse(prefix)
        if kind is not None and found is not kind:
            raise UsageError(
                f"reference {text!r} names a {found.singular} where a {kind.singular} is expected"
            )
    name, at, version = body.partition("@")
    if not at:
        raise UsageError(
            f"reference {text!r} has no version",
            hint=f"write {body or 'name'}@VERSION, e.g. support-llm@2026-04",
        )
    check_name(name, f"name in reference {text!r}")
    check_name(version, f"version in reference {text!r}")
    return Ref(name, version, found or kind)


def manifest_path(kind: Kind, name: str, version: str) -> PurePosixPath:
    """`models/<name>/<version>.yaml`, relative to the registry root."""
    check_name(name)
    check_name(version, "version")
    return PurePosixPath(kind.value, name, f"{version}.yaml")


def route_path(route: str) -> PurePosixPath:
    check_name(route, "route name")
    return PurePosixPath("routes", f"{route}.yaml")


def eval_path(route: str, run_id: str) -> PurePosixPath:
    check_name(route, "route name")
    check_name(run_id, "eval run id")
    return PurePosixPath("evals", route, f"{run_id}.yaml")


@dataclass(frozen=True)
class RegistryPath:
    """What a registry-relative path holds, from its shape alone."""

    category: str  # a Kind value, "routes", "evals" or "settings"
    name: str
    version: str | None = None  # the version, or the eval run id


SETTINGS_FILE = "modelctl.yaml"
_KIND_FOLDERS = frozenset(k.value for k in Kind)


def classify_path(path: str) -> RegistryPath | None:
    """Classify a registry-relative POSIX path; None for files modelctl does not own."""
    if path == SETTINGS_FILE:
        return RegistryPath("settings", SETTINGS_FILE)
    parts = path.split("/")
    if not parts[-1].endswith(".yaml"):
        return None
    stem = parts[-1][: -len(".yaml")]
    if len(parts) == 2 and parts[0] == "routes":
        return RegistryPath("routes", stem)
    if len(parts) == 3 and parts[0] == "evals":
        return RegistryPath("evals", parts[1], stem)
    if len(parts) == 3 and parts[0] in _KIND_FOLDERS:
        return RegistryPath(parts[0], parts[1], stem)
    return None


# Lifecycle tags: refs/tags/modelctl/<route>/<stage>/<seq>. Fixed depth, and names cannot hold
# '/', so one tag name can never be a prefix of another (no directory/file ref conflicts).
TAG_PREFIX = "modelctl"
_SEQ_RE = re.compile(r"^[1-9][0-9]{0,8}$")


@dataclass(frozen=True, order=True)
class LifecycleTag:
    route: str
    stage: str
    seq: int

    def __str__(self) -> str:
        return f"{TAG_PREFIX}/{self.route}/{self.stage}/{self.seq}"

    @property
    def ref(self) -> str:
        return f"refs/tags/{self}"


def lifecycle_tag(route: str, stage: str, seq: int) -> LifecycleTag:
    check_name(route, "route name")
    check_name(stage, "stage name")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 10**9:
        raise UsageError(f"invalid sequence number {seq!r}: must be a positive integer")
    return LifecycleTag(route, stage, seq)


def parse_lifecycle_tag(text: str) -> LifecycleTag:
    """Parse `modelctl/<route>/<stage>/<seq>` (with or without `refs/tags/`)."""
    body = text.removeprefix("refs/tags/")
    parts = body.split("/")
    if len(parts) != 4 or parts[0] != TAG_PREFIX or not _SEQ_RE.match(parts[3]):
        raise UsageError(
            f"{text!r} is not a lifecycle tag",
            hint="lifecycle tags look like modelctl/ROUTE/STAGE/SEQ",
        )
    return lifecycle_tag(parts[1], parts[2], int(parts[3]))
