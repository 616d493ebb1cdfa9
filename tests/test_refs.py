from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelctl.errors import UsageError
from modelctl.registry import refs

HOSTILE = [
    "../x",
    "/abs",
    "a\x00b",
    "C:\\x",
    ".",
    "..",
    ".git",
    "-rf",
    "--output=/tmp/pwned",
    "M1",
    "ｍ１",
    "con",
    "con.yaml",
    "x.lock",
    "a b",
    "a\nb",
    "",
    "a/b",
    "a..b",
    "a.",
    "x" * 65,
    "a\u202eb",
    "HEAD",
    "@",
    "a@b",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[",
    "a\\b",
    "é",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name: str) -> None:
    assert refs.name_problem(name) is not None
    with pytest.raises(UsageError):
        refs.check_name(name)


@pytest.mark.parametrize("name", ["support-llm", "2026-04", "1.10", "v1.2.0-rc1", "a", "x_y", "0"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert refs.check_name(name) == name


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("support-llm@2026-04", None),
        ("models/support-llm@2026-04", refs.Kind.MODEL),
        ("prompts/system@3", refs.Kind.PROMPT),
        ("judges/groundedness@1", refs.Kind.JUDGE),
        ("datasets/golden@2026-04", refs.Kind.DATASET),
    ],
)
def test_ref_round_trip(text: str, kind: refs.Kind | None) -> None:
    ref = refs.parse_ref(text)
    assert ref.kind is kind
    assert refs.format_ref(ref) == text
    assert refs.parse_ref(refs.format_ref(ref)) == ref


def test_ref_kind_from_context_and_mismatch() -> None:
    assert refs.parse_ref("m@1", refs.Kind.MODEL).path == PurePosixPath("models/m/1.yaml")
    assert refs.parse_ref("model/m@1").kind is refs.Kind.MODEL  # singular accepted
    with pytest.raises(UsageError, match="where a model is expected"):
        refs.parse_ref("prompts/p@1", refs.Kind.MODEL)
    with pytest.raises(UsageError, match="has no version"):
        refs.parse_ref("support-llm")
    with pytest.raises(UsageError, match="unknown kind"):
        refs.parse_ref("widgets/w@1")


def test_lifecycle_tag_round_trip() -> None:
    tag = refs.lifecycle_tag("support-bot", "production", 12)
    assert str(tag) == "modelctl/support-bot/production/12"
    assert tag.ref == "refs/tags/modelctl/support-bot/production/12"
    assert refs.parse_lifecycle_tag(tag.ref) == tag
    assert refs.parse_lifecycle_tag(str(tag)) == tag
    for bad in [
        "modelctl/a/b/0",
        "modelctl/a/b/01",
        "modelctl/a/b/c/1",
        "other/a/b/1",
        "modelctl/A/b/1",
    ]:
        with pytest.raises(UsageError):
            refs.parse_lifecycle_tag(bad)


def test_classify_path() -> None:
    assert refs.classify_path("models/m/1.yaml") == refs.RegistryPath("models", "m", "1")
    assert refs.classify_path("routes/r.yaml") == refs.RegistryPath("routes", "r")
    assert refs.classify_path("evals/r/run-1.yaml") == refs.RegistryPath("evals", "r", "run-1")
    assert refs.classify_path("modelctl.yaml") == refs.RegistryPath("settings", "modelctl.yaml")
    assert refs.classify_path("datasets/d/1.jsonl") is None
    assert refs.classify_path("README.md") is None


names = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=70)
plausible = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)


@settings(max_examples=10_000, deadline=None)
@given(st.one_of(names, plausible))
def test_accepted_names_stay_inside_and_never_look_like_options(name: str) -> None:
    if refs.name_problem(name) is not None:
        return
    root = Path("/registry")
    path = root / refs.manifest_path(refs.Kind.MODEL, name, name)
    assert path.resolve().is_relative_to(root / "models")
    assert path.parent.name == name and path.name == f"{name}.yaml"
    assert not name.startswith(("-", "."))
    assert name == name.lower() and name.isascii()
    tag = str(refs.lifecycle_tag(name, name, 1))
    assert refs.parse_lifecycle_tag(tag) == refs.LifecycleTag(name, name, 1)
    assert refs.parse_ref(f"{name}@{name}") == refs.Ref(name, name)


@settings(max_examples=300, deadline=None)
@given(plausible)
def test_accepted_names_make_valid_git_tag_names(name: str) -> None:
    if refs.name_problem(name) is not None:
        return
    tag = refs.lifecycle_tag(name, "production", 7).ref
    proc = subprocess.run(["git", "check-ref-format", tag], capture_output=True, check=False)
    assert proc.returncode == 0, tag
