"""`modelctl init`."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli, git


def test_init_creates_repo_settings_and_commit(tmp_path: Path) -> None:
    target = tmp_path / "My Registry"
    result = cli("init", str(target), "--json", cwd=tmp_path)
    assert result.exit_code == 0, result.stderr
    payload = result.json
    assert isinstance(payload, dict) and payload["created_repo"] and payload["committed"]
    assert (target / "modelctl.yaml").is_file()
    assert git(target, "status", "--porcelain") == ""
    assert "name: my-registry" in (target / "modelctl.yaml").read_text()
    assert cli("validate", cwd=target).exit_code == 0
    for kind in ("model", "prompt", "judge", "dataset", "route", "evalrun", "registry"):
        assert (target / ".modelctl/schemas" / f"{kind}.json").is_file()


def test_init_refuses_an_existing_registry(registry: Path) -> None:
    before = (registry / "modelctl.yaml").read_text()
    result = cli("init", str(registry))
    assert result.exit_code == 3
    assert "already holds a registry (modelctl.yaml, models/" in result.stderr
    assert (registry / "modelctl.yaml").read_text() == before


def test_init_inside_an_existing_repository(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "app.py").write_text("print()\n")
    git(tmp_path, "add", "app.py")
    git(tmp_path, "commit", "-qm", "app")
    result = cli("init", "registry", "--json", cwd=tmp_path)
    assert result.exit_code == 0
    assert not (tmp_path / "registry" / ".git").exists()
    assert cli("list", cwd=tmp_path / "registry").exit_code == 0


def test_init_without_identity_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("[user]\n\tuseConfigOnly = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    result = cli("init", str(tmp_path / "reg"))
    assert result.exit_code == 4
    assert "no identity" in result.stderr and "git config --global user.name" in result.stderr
    assert not (tmp_path / "reg").exists()
    assert cli("init", str(tmp_path / "reg"), "--no-commit").exit_code == 0


def test_init_whose_commit_fails_leaves_nothing_to_block_a_retry(tmp_path: Path) -> None:
    """The branch is locked by another process: no commit, no registry files, and the same
    command works once the lock is gone."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "app.py").write_text("print()\n")
    git(tmp_path, "add", "app.py")
    git(tmp_path, "commit", "-qm", "app")
    lock = tmp_path / ".git/refs/heads/main.lock"
    lock.write_text("")
    failed = cli("init", "registry", cwd=tmp_path)
    assert failed.exit_code != 0 and "lock" in failed.stderr.lower()
    assert not (tmp_path / "registry" / "modelctl.yaml").exists()
    assert git(tmp_path, "rev-list", "--count", "HEAD") == "1"
    lock.unlink()
    assert cli("init", "registry", cwd=tmp_path).exit_code == 0
    assert (tmp_path / "registry" / "modelctl.yaml").is_file()
    assert git(tmp_path, "status", "--porcelain") == ""
