"""Rules across files, through `modelctl validate` on real repositories."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import cli, git
from fakekeys import fake_keys


def validate(repo: Path, *args: str) -> tuple[int, list[str]]:
    result = cli("validate", "--json", *args, cwd=repo)
    payload = result.json
    assert isinstance(payload, dict)
    return result.exit_code, [
        f"{p['path']}: {p['field']}: {p['message']}" for p in payload["problems"]
    ]


def edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text()
    assert old in text, old
    file.write_text(text.replace(old, new))


def test_example_is_valid(registry: Path) -> None:
    assert validate(registry) == (0, [])


def test_broken_reference(registry: Path) -> None:
    edit(registry, "routes/support-bot.yaml", "support-gpt@2026-03", "support-gpt@2025-01")
    code, problems = validate(registry)
    assert code == 1
    assert problems == [
        "routes/support-bot.yaml: stages.production.targets[0].model: model support-gpt@2025-01 "
        "does not exist in the registry; add it first (modelctl add model ...) or fix the reference"
    ]


def test_unknown_stage(registry: Path) -> None:
    edit(registry, "routes/support-bot.yaml", "  dev:", "  qa:")
    code, problems = validate(registry)
    assert code == 1
    assert any("stage 'qa' is not defined in modelctl.yaml" in p for p in problems)


def test_required_fallback(registry: Path) -> None:
    text = (registry / "routes/support-bot.yaml").read_text()
    head, _, tail = text.partition("  production:")
    tail = tail.split("    fallback:")[0]
    (registry / "routes/support-bot.yaml").write_text(head + "  production:" + tail)
    code, problems = validate(registry)
    assert code == 1
    assert any(
        "stages.production.fallback: this stage requires a fallback chain" in p for p in problems
    )


def test_fallback_cycle(registry: Path) -> None:
    edit(
        registry,
        "routes/support-bot.yaml",
        "    fallback:\n      - model: support-claude@2026-05\n        prompt: support-system@4\n  staging:",
        "    fallback:\n      - model: support-claude@2026-05\n        prompt: support-system@4\n"
        "      - model: support-claude@2026-05\n        prompt: support-system@4\n  staging:",
    )
    code, problems = validate(registry)
    assert code == 1
    assert any("stages.dev.fallback[1]: appears twice in the fallback chain" in p for p in problems)


def test_fallback_to_itself(registry: Path) -> None:
    edit(
        registry,
        "routes/support-bot.yaml",
        "    fallback:\n      - model: support-claude@2026-05\n        prompt: support-system@4\n  staging:",
        "    fallback:\n      - model: support-gpt@2026-05\n        prompt: support-system@4\n  staging:",
    )
    _, problems = validate(registry)
    assert any(
        "stages.dev.fallback[0]: falls back to the target it is the fallback for" in p
        for p in problems
    )


def test_modified_and_deleted_versions(registry: Path) -> None:
    edit(registry, "models/support-gpt/2026-03.yaml", "max_tokens: 800", "max_tokens: 900")
    (registry / "prompts/support-system/4.yaml").unlink()
    code, problems = validate(registry, "models/")  # a deletion is reported whatever the paths
    assert code == 1
    assert any(p.startswith("models/support-gpt/2026-03.yaml: : was modified") for p in problems)
    assert any(p.startswith("prompts/support-system/4.yaml: : was deleted") for p in problems)


def test_immutability_against_a_base(registry: Path) -> None:
    base = git(registry, "rev-parse", "HEAD")
    edit(registry, "models/support-gpt/2026-03.yaml", "max_tokens: 800", "max_tokens: 900")
    git(registry, "commit", "-qam", "sneaky edit")
    assert validate(registry)[0] == 0  # unchanged against HEAD
    code, problems = validate(registry, "--base", base)
    assert code == 1 and "was modified" in problems[0]


def test_raw_key_is_refused_and_not_printed(registry: Path) -> None:
    key = fake_keys()["anthropic"]
    edit(registry, "models/support-claude/2026-05.yaml", "env:ANTHROPIC_API_KEY", key)
    result = cli("validate", cwd=registry)
    assert result.exit_code == 1
    assert "provider_key: holds what looks like an Anthropic API key" in result.stdout
    assert key not in result.stdout + result.stderr


def test_template_file_digest(registry: Path) -> None:
    (registry / "prompts/t").mkdir()
    (registry / "prompts/t/1.txt").write_text("Hello {{name}}")
    (registry / "prompts/t/1.yaml").write_text(
        "apiVersion: modelctl/v1\nkind: Prompt\nname: t\nversion: '1'\n"
        "template_file:\n  path: prompts/t/1.txt\n  sha256: " + "0" * 64 + "\n"
    )
    code, problems = validate(registry)
    assert code == 1
    found = hashlib.sha256(b"Hello {{name}}").hexdigest()
    assert problems == [
        "prompts/t/1.yaml: template_file.sha256: does not match the content of prompts/t/1.txt "
        f"(sha256 {found}); a pinned file must not change (add a new version instead)"
    ]
    # the pre-commit hook passes only the changed file: its pinning manifest still reports
    assert validate(registry, "prompts/t/1.txt") == (1, problems)


DATA = "datasets/support-golden/2026-04.jsonl"
DATASET = "datasets/support-golden/2026-04.yaml"


def test_dataset_rows_edited_after_pinning(registry: Path) -> None:
    assert validate(registry) == (0, [])
    with (registry / DATA).open("a") as fh:
        fh.write('{"id": "extra", "input": "one more row"}\n')
    found = hashlib.sha256((registry / DATA).read_bytes()).hexdigest()
    expected = [
        f"{DATASET}: sha256: does not match the content of {DATA} (sha256 {found}); "
        "a pinned file must not change (add a new version instead)"
    ]
    assert validate(registry) == (1, expected)
    # what the pre-commit hook passes when only the rows were staged
    assert validate(registry, "modelctl.yaml", DATA) == (1, expected)
    # committed anyway (--no-verify): the commit is checked from git's objects
    git(registry, "commit", "-qam", "add a row")
    assert validate(registry, "--rev", "HEAD") == (1, expected)
    (registry / DATA).unlink()
    assert validate(registry)[1] == [f"{DATASET}: uri: file {DATA} does not exist in the registry"]


def test_dataset_kept_in_git_lfs_is_checked_through_its_pointer(registry: Path) -> None:
    """A Git LFS pointer records its content's sha256: compared without fetching the data."""
    content = (registry / DATA).read_bytes()
    pointer = (
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{hashlib.sha256(content).hexdigest()}\nsize {len(content)}\n"
    )
    (registry / DATA).write_text(pointer)
    git(registry, "commit", "-qam", "rows to LFS")
    assert validate(registry) == (0, [])
    assert validate(registry, "--rev", "HEAD") == (0, [])
    checked = cli("dataset", "verify", "--json", cwd=registry)  # digest and size, as recorded
    assert checked.exit_code == 0, checked.stdout
    assert checked.json["datasets"][0]["status"] == "ok"
    other = pointer.replace(hashlib.sha256(content).hexdigest(), "0" * 64)
    (registry / DATA).write_text(other)
    code, problems = validate(registry)
    assert code == 1 and f"(sha256 {'0' * 64})" in problems[0]


def test_paths_limit_what_is_reported(registry: Path) -> None:
    edit(registry, "routes/support-bot.yaml", "support-gpt@2026-03", "support-gpt@2025-01")
    assert validate(registry, "models")[0] == 0
    assert validate(registry, "routes/support-bot.yaml")[0] == 1


def test_symlinked_manifest_is_refused(registry: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("secret: stuff\n")
    (registry / "models/evil").mkdir()
    (registry / "models/evil/1.yaml").symlink_to(outside)
    code, problems = validate(registry)
    assert code == 1
    assert any("models/evil/1.yaml" in p and "symlink" in p for p in problems)
    git(registry, "add", "models/evil/1.yaml")
    git(registry, "commit", "-qm", "symlink")
    code, problems = validate(registry, "--rev", "HEAD")
    assert any("symlink or submodule" in p for p in problems)


def test_github_annotations(registry: Path) -> None:
    edit(registry, "routes/support-bot.yaml", "support-gpt@2026-03", "support-gpt@2025-01")
    result = cli("validate", cwd=registry, env={"GITHUB_ACTIONS": "true"})
    assert (
        "::error file=routes/support-bot.yaml,line=25,title=modelctl validate::"
        "stages.production.targets[0].model: model" in result.stdout
    )
