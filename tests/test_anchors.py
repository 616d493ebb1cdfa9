"""An audit that cannot be forged or fooled: objects read as committed, key lifetimes anchored
outside the signer's own dates, and the local checkpoint (or a pinned anchor) as a guard against
rollback and freeze attacks.

Real repositories, real throwaway SSH keys, attacks built with plain git.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import cli, git, make_registry
from modelctl.gitstore import GitStore
from signing import SshKey, make_ssh_key
from test_verify import (
    GPT3,
    deploy,
    git_bytes,
    pairs,
    plain_route_edit,
    verify,
)

MODEL = "models/support-gpt/2026-05.yaml"
PROVIDER_MODEL = "gpt-4.1-mini-2025-04-14"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "reg", routes=False)


@pytest.fixture
def ci(tmp_path: Path) -> SshKey:
    return make_ssh_key(tmp_path / "keys", "ci", "ci-bot@example")


def served(repo: Path, env: dict[str, str] | None = None) -> str:
    """What `export json` and `show` serve for dev, as one text."""
    export = cli("export", "json", "--stage", "dev", "--json", cwd=repo, env=env)
    shown = cli("show", "support-gpt@2026-05", "--json", cwd=repo, env=env)
    assert export.exit_code == 0, export.stderr
    assert shown.exit_code == 0, shown.stderr
    return export.stdout + shown.stdout


# --- 4. objects as committed: no replace objects, no grafts ------------------------------------


def test_replaced_manifest_blob_is_never_served_nor_cached(repo: Path) -> None:
    deploy(repo)
    blob = git(repo, "rev-parse", f"HEAD:{MODEL}")
    forged = (repo / MODEL).read_bytes().replace(PROVIDER_MODEL.encode(), b"attacker-model")
    fake = git_bytes(repo, "hash-object", "-w", "--stdin", stdin=forged).decode().strip()
    git(repo, "replace", blob, fake)
    assert "attacker-model" in git(repo, "cat-file", "-p", blob)  # plain git serves it
    shutil.rmtree(repo / ".git" / "modelctl")  # as in a fresh clone: nothing cached yet
    with_replace = served(repo)
    assert "attacker-model" not in with_replace and PROVIDER_MODEL in with_replace
    git(repo, "replace", "-d", blob)
    assert served(repo) == with_replace  # nothing cached from the replacement either


def _hide_with_graft(repo: Path, how: str, child: str, parent: str) -> dict[str, str]:
    """Make `child`'s parent look like `parent`, the way `how` says; the env a command needs."""
    if how == "grafts file":
        (repo / ".git" / "info" / "grafts").write_text(f"{child} {parent}\n")
        return {}
    if how == "GIT_GRAFT_FILE":
        graft = repo.parent / "grafts"
        graft.write_text(f"{child} {parent}\n")
        return {"GIT_GRAFT_FILE": str(graft)}
    git(repo, "replace", "--graft", child, parent)
    return {}


@pytest.mark.parametrize("how", ["grafts file", "GIT_GRAFT_FILE", "replace --graft"])
def test_graft_cannot_hide_a_commit_from_verify(repo: Path, how: str) -> None:
    first = deploy(repo)
    hidden = plain_route_edit(repo, "an unattested change")
    last = deploy(repo, model=GPT3)
    count = int(git(repo, "rev-list", "--count", "HEAD"))
    env = _hide_with_graft(repo, how, last, first)
    assert hidden not in git(repo, "rev-list", "HEAD", env=env)  # plain git is fooled
    code, payload = verify(repo, env=env)
    assert code == 1
    assert ("unattested", hidden) in pairs(payload["findings"])
    assert payload["commits"] == count


def test_caller_environment_cannot_redirect_git_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook's GIT_DIR must not make `init` create (or reuse) another repository."""
    other = tmp_path / "other.git"
    monkeypatch.setenv("GIT_DIR", str(other))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path))
    store = GitStore.init(tmp_path / "new")
    assert store.toplevel == (tmp_path / "new").resolve()
    assert (tmp_path / "new" / ".git" / "HEAD").is_file()
    assert not other.exists()
