"""An audit that cannot be forged or fooled: objects read as committed, key lifetimes anchored
outside the signer's own dates, and the local checkpoint (or a pinned anchor) as a guard against
rollback and freeze attacks.

Real repositories, real throwaway SSH keys, attacks built with plain git.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, git, make_registry
from modelctl.gitstore import GitStore
from signing import SshKey, make_ssh_key, set_signing, use_ssh_key
from test_verify import (
    GPT3,
    at,
    deploy,
    expired_line,
    git_bytes,
    head,
    letter,
    lifecycle,
    pairs,
    plain_route_edit,
    signed_registry,
    trust,
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
    if how == "GIT_SHALLOW_FILE":  # cuts `child` off from all its parents
        shallow = repo.parent / "shallow"
        shallow.write_text(f"{child}\n")
        return {"GIT_SHALLOW_FILE": str(shallow)}
    git(repo, "replace", "--graft", child, parent)
    return {}


@pytest.mark.parametrize(
    "how", ["grafts file", "GIT_GRAFT_FILE", "replace --graft", "GIT_SHALLOW_FILE"]
)
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


def test_no_module_reads_git_around_gitstore() -> None:
    """GitPython would run git with the process's own environment: replace refs honoured."""
    import ast

    import modelctl

    offenders = []
    for path in Path(modelctl.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n == "git" or n.startswith("git.") for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


# --- 6. rollback and freeze: the checkpoint and pinned anchors ---------------------------------


def findings_of(payload: dict[str, Any], check: str) -> list[dict[str, str]]:
    return [f for f in payload["findings"] if f["check"] == check]


def test_dropped_last_lifecycle_event_fails_against_the_checkpoint(repo: Path) -> None:
    deploy(repo)
    dropped = deploy(repo, model=GPT3)
    assert verify(repo)[0] == 0  # the checkpoint: dropped is the last verified commit
    # The freeze: the last event vanishes (branch reset, its tag deleted); what is left is a
    # perfectly consistent history.
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    git(repo, "tag", "-d", "modelctl/support-bot/dev/2")
    code, payload = verify(repo)
    assert code == 1
    assert pairs(findings_of(payload, "checkpoint")) == {
        ("checkpoint", dropped),
        ("checkpoint", "modelctl/support-bot/dev"),
    }
    [gone] = [f for f in payload["findings"] if f["where"] == dropped]
    assert "no longer contains" in gone["message"]
    assert f"--accept-rewrite {dropped[:12]}" in gone["message"]
    [back] = [f for f in payload["findings"] if f["where"] == "modelctl/support-bot/dev"]
    assert "went back from 2 to 1" in back["message"]
    # Still refused on the next run: the checkpoint is never dropped silently.
    assert verify(repo)[0] == 1
    wrong = cli("verify", "--accept-rewrite", head(repo), cwd=repo)
    assert wrong.exit_code == 2 and dropped[:12] in wrong.stderr
    code, payload = verify(repo, "--accept-rewrite", dropped[:12])
    assert code == 0
    assert ("checkpoint", dropped) in pairs(payload["notes"])
    assert verify(repo)[0] == 0  # the checkpoint moved to the rewritten branch


def test_rewriting_a_branch_without_lifecycle_events_is_ordinary_work(repo: Path) -> None:
    """A pull request's branch of new manifests gets rebased; that is not a rollback."""
    git(repo, "commit", "-q", "--allow-empty", "-m", "add a manifest")
    assert verify(repo)[0] == 0
    git(repo, "commit", "-q", "--amend", "--allow-empty", "-m", "add a manifest, reworded")
    assert verify(repo)[0] == 0


def test_unreadable_checkpoint_is_an_error_not_a_fresh_start(repo: Path) -> None:
    deploy(repo)
    assert verify(repo)[0] == 0
    anchor = repo / ".git" / "modelctl" / "verify-anchor.json"
    anchor.write_text("{not json")
    result = cli("verify", cwd=repo)
    assert result.exit_code == 4
    assert "verify-anchor.json cannot be read" in result.stderr and "delete it" in result.stderr
    anchor.unlink()  # deliberately: the next clean run starts a new checkpoint
    assert verify(repo)[0] == 0
    assert anchor.is_file()


def _attacker_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registry rebuilt from a new root: its allowed signers trust the attacker's key."""
    with monkeypatch.context() as mp:  # the same files, but not the same root commit
        for key, value in at("2026-01-01T00:00:00Z").items():
            mp.setenv(key, value)
        evil = make_registry(tmp_path / "evil", routes=False)
    signed_registry(evil, make_ssh_key(tmp_path / "keys", "mallory", "mallory@example"))
    deploy(evil)
    return evil


def test_history_rebuilt_from_a_new_root(
    repo: Path, ci: SshKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed_registry(repo, ci)
    trusted = deploy(repo)
    root = git(repo, "rev-list", "--max-parents=0", "HEAD")
    old = tmp_path / "old"
    git(tmp_path, "clone", "-q", str(repo), str(old))
    assert verify(old)[0] == 0
    evil = _attacker_registry(tmp_path, monkeypatch)
    assert verify(evil)[0] == 0  # self-consistent: its own signers vouch for it
    # An old clone follows the forced update.
    git(old, "fetch", "-q", "--force", "--tags", str(evil), "+main:refs/remotes/origin/main")
    git(old, "reset", "-q", "--hard", "origin/main")
    code, payload = verify(old)
    assert code == 1
    assert ("checkpoint", trusted) in pairs(payload["findings"])
    code, payload = verify(old, "--trust", trusted)  # still here, but not on the branch
    [pinned] = findings_of(payload, "anchor")
    assert pinned["where"] == trusted and "is not in the history of main" in pinned["message"]
    # A fresh clone has no checkpoint: it needs an anchor pinned from outside.
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(evil), str(fresh))
    assert verify(fresh)[0] == 0
    code, payload = verify(fresh, "--trust", trusted)
    assert code == 1
    [finding] = payload["findings"]
    assert finding["check"] == "anchor" and trusted[:12] in finding["message"]
    git(fresh, "config", "modelctl.trust", trusted)
    assert pairs(verify(fresh)[1]["findings"]) == {("anchor", trusted)}
    git(fresh, "config", "--unset", "modelctl.trust")
    git(fresh, "config", "modelctl.trustRoot", root)
    code, payload = verify(fresh)
    assert code == 1
    [finding] = payload["findings"]
    assert finding["check"] == "anchor" and "root" in finding["message"]
    # The genuine registry passes with the same pins.
    honest = tmp_path / "honest"
    git(tmp_path, "clone", "-q", str(repo), str(honest))
    git(honest, "config", "modelctl.trustRoot", root)
    assert verify(honest, "--trust", trusted)[0] == 0


# --- 5. expired keys: lifetimes checked at a time the signer did not choose -------------------


def test_expired_key_backdated_after_the_checkpoint(
    tmp_path: Path, ci: SshKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_ssh_key(tmp_path / "keys", "old", "old@example")
    with monkeypatch.context() as mp:  # a registry from 2020, when old's key was valid
        for key, value in at("2020-01-01T00:00:00Z").items():
            mp.setenv(key, value)
        repo = make_registry(tmp_path / "reg", routes=False)
        trust(repo, ci.allowed_line, expired_line(old))
        set_signing(repo, "required")
    use_ssh_key(repo, old)
    deploy(repo, env=at("2020-02-01T00:00:00Z"))
    assert verify(repo)[0] == 0  # honest: signed in 2020, inside the key's window
    # Years after the key expired, its holder signs an event dated inside the window, after
    # every earlier commit: git says G, and no date goes backwards.
    backdated = lifecycle(
        repo, "promote", "support-bot", "--to", "staging", env=at("2020-06-01T12:00:00Z")
    )
    assert letter(repo, backdated) == "G"
    use_ssh_key(repo, ci)
    honest = lifecycle(repo, "promote", "support-bot", "--to", "production")
    code, payload = verify(repo)
    assert code == 1
    [finding] = payload["findings"]
    assert (finding["check"], finding["where"]) == ("signature", backdated)
    assert "had expired" in finding["message"]
    assert honest not in {f["where"] for f in payload["findings"]}
    # Without the checkpoint the backdating cannot be told apart from an honest old event.
    shutil.rmtree(repo / ".git" / "modelctl")
    assert verify(repo)[0] == 0
