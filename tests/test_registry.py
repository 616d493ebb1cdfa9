"""Snapshots: constant git processes per revision, cache by tree id, reuse by blob id."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from conftest import git, make_registry
from modelctl.registry import snapshot as registry


@pytest.fixture
def git_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a `git` on PATH that records each invocation, then runs the real git."""
    real = shutil.which("git")
    assert real
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "git-calls.log"
    (shim / "git").write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{real}" "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    return log


def add_models(repo: Path, count: int) -> None:
    for i in range(count):
        folder = repo / "models" / f"bulk-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "1.yaml").write_text(
            f"apiVersion: modelctl/v1\nkind: Model\nname: bulk-{i}\nversion: '1'\n"
            f"provider: openai\nprovider_model: m-{i}\n"
        )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"{count} models")


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("count", [5, 200])
def test_cold_read_uses_constant_processes(tmp_path: Path, git_log: Path, count: int) -> None:
    repo = make_registry(tmp_path / "r")
    add_models(repo, count)
    git_log.unlink(missing_ok=True)
    loc = registry.locate(repo)
    snap = registry.snapshot_at(loc)
    assert len(list(snap.artifacts("models"))) == count + 4
    used = calls(git_log)
    assert used.count("cat-file") == 1 and used.count("ls-tree") == 1
    assert len(used) == 4, used  # discover, commit+tree, ls-tree, cat-file


def test_warm_read_is_one_rev_parse_and_cache_is_keyed_by_tree(
    tmp_path: Path, git_log: Path
) -> None:
    repo = make_registry(tmp_path / "r")
    loc = registry.locate(repo)
    cold = registry.snapshot_at(loc)
    git_log.unlink(missing_ok=True)
    warm = registry.snapshot_at(loc)
    assert calls(git_log) == ["rev-parse"]
    assert warm.entries.keys() == cold.entries.keys()
    assert (loc.store.state_dir / "snapshots" / f"{cold.tree}.json").is_file()


def test_cache_is_safe_to_delete_and_ignores_garbage(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "r")
    loc = registry.locate(repo)
    first = registry.snapshot_at(loc)
    cache = loc.store.state_dir / "snapshots" / f"{first.tree}.json"
    cache.write_text("{not json")
    assert registry.snapshot_at(loc).entries.keys() == first.entries.keys()
    shutil.rmtree(loc.store.state_dir)
    assert registry.snapshot_at(loc).entries.keys() == first.entries.keys()


def test_new_commit_reparses_only_changed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_registry(tmp_path / "r")
    add_models(repo, 20)
    loc = registry.locate(repo)
    registry.snapshot_at(loc)
    parsed: list[str] = []
    original = registry.parse_entry

    def counting(path: str, raw: bytes, oid: str | None, category: str) -> registry.Entry:
        parsed.append(path)
        return original(path, raw, oid, category)

    monkeypatch.setattr(registry, "parse_entry", counting)
    (repo / "models/bulk-0/2.yaml").write_text(
        "apiVersion: modelctl/v1\nkind: Model\nname: bulk-0\nversion: '2'\n"
        "provider: openai\nprovider_model: m-0b\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one more")
    snap = registry.snapshot_at(loc)
    assert parsed == ["models/bulk-0/2.yaml"]
    assert "models/bulk-0/2.yaml" in snap.entries


def test_registry_in_a_subfolder(tmp_path: Path) -> None:
    repo = tmp_path / "mono"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("app\n")
    make_registry(repo / "ml" / "registry")  # nested repo would be wrong: use the outer one
    shutil.rmtree(repo / "ml" / "registry" / ".git")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "registry in a folder")
    loc = registry.locate(repo / "ml" / "registry" / "models")
    assert loc.prefix == "ml/registry/"
    snap = registry.snapshot_at(loc)
    assert "routes/support-bot.yaml" in snap.entries


def test_no_commits_yet(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "modelctl.yaml").write_text("x: 1\n")
    snap = registry.snapshot_at(registry.locate(repo))
    assert snap.entries == {} and "no commits" in snap.label


def test_files_at_reads_single_files_and_caches_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_registry(tmp_path / "r")
    add_models(repo, 50)
    loc = registry.locate(repo)
    head = git(repo, "rev-parse", "HEAD")
    wanted = {
        "routes/support-bot.yaml": "routes",
        "modelctl.yaml": "settings",
        "routes/nope.yaml": "routes",
    }
    first = registry.files_at(loc, head, wanted)
    assert first["routes/nope.yaml"] is None
    route = first["routes/support-bot.yaml"]
    assert route is not None and route.data is not None and route.data["name"] == "support-bot"
    parsed: list[str] = []
    original = registry.parse_entry

    def counting(path: str, raw: bytes, oid: str | None, category: str) -> registry.Entry:
        parsed.append(path)
        return original(path, raw, oid, category)

    monkeypatch.setattr(registry, "parse_entry", counting)
    again = registry.files_at(loc, head, wanted)
    assert parsed == []  # warm: from the per-file cache, not the whole snapshot
    assert again["routes/support-bot.yaml"] == route
