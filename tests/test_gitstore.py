"""GitStore on real repositories: atomic commits, CAS, locks, the user's index, injection."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import git, make_registry, refs_snapshot
from modelctl.errors import GitError
from modelctl.gitstore import GitStore, RefMoved, TagSpec


@pytest.fixture
def store(tmp_path: Path) -> GitStore:
    repo = make_registry(tmp_path / "r")
    found = GitStore.discover(repo)
    assert found is not None
    return found


def test_commit_moves_branch_and_creates_tag_together(store: GitStore) -> None:
    old = git(store.toplevel, "rev-parse", "HEAD")
    result = store.commit(
        "refs/heads/main",
        old,
        {"routes/new.yaml": b"x: 1\n"},
        "msg\n\nModelctl-Action: test\n",
        sign=False,
        tags=[TagSpec("modelctl/new/dev/1", "tag message\n")],
    )
    assert git(store.toplevel, "rev-parse", "HEAD") == result.commit
    assert git(store.toplevel, "rev-parse", "modelctl/new/dev/1^{commit}") == result.commit
    assert git(store.toplevel, "cat-file", "-t", "modelctl/new/dev/1") == "tag"
    assert "tag modelctl/new/dev/1" in git(store.toplevel, "cat-file", "-p", "modelctl/new/dev/1")
    assert git(store.toplevel, "show", "--format=", "--name-only", "HEAD") == "routes/new.yaml"


def test_stale_branch_is_refused_and_nothing_changes(store: GitStore) -> None:
    old = git(store.toplevel, "rev-parse", "HEAD~0")
    git(store.toplevel, "commit", "-q", "--allow-empty", "-m", "someone else")
    before = refs_snapshot(store.toplevel)
    with pytest.raises(RefMoved):
        store.commit(
            "refs/heads/main",
            old,
            {"a.yaml": b"a"},
            "m\n",
            sign=False,
            tags=[TagSpec("modelctl/a/dev/1", "t\n")],
        )
    assert refs_snapshot(store.toplevel) == before


def test_existing_tag_aborts_the_whole_transaction(store: GitStore) -> None:
    head = git(store.toplevel, "rev-parse", "HEAD")
    git(store.toplevel, "tag", "modelctl/a/dev/1")
    before = refs_snapshot(store.toplevel)
    with pytest.raises(RefMoved):
        store.commit(
            "refs/heads/main",
            head,
            {"a.yaml": b"a"},
            "m\n",
            sign=False,
            tags=[TagSpec("modelctl/a/dev/1", "t\n")],
        )
    assert refs_snapshot(store.toplevel) == before


def test_works_with_a_stale_index_lock_and_keeps_staged_changes(store: GitStore) -> None:
    repo = store.toplevel
    (repo / "notes.txt").write_text("staged by the user\n")
    git(repo, "add", "notes.txt")
    (repo / ".git" / "index.lock").write_text("")
    head = git(repo, "rev-parse", "HEAD")
    result = store.commit("refs/heads/main", head, {"routes/x.yaml": b"x: 1\n"}, "m\n", sign=False)
    warnings = store.sync_worktree("refs/heads/main", ["routes/x.yaml"])
    assert git(repo, "rev-parse", "HEAD") == result.commit
    assert (repo / "routes/x.yaml").read_bytes() == b"x: 1\n"
    assert warnings and "index is locked" in warnings[0]
    (repo / ".git" / "index.lock").unlink()
    status = git(repo, "status", "--porcelain")
    assert "A  notes.txt" in status  # still staged, and not part of the commit
    assert "notes.txt" not in git(repo, "show", "--name-only", "--format=", "HEAD")


def test_sync_updates_only_changed_paths_in_the_index(store: GitStore) -> None:
    repo = store.toplevel
    (repo / "notes.txt").write_text("staged\n")
    git(repo, "add", "notes.txt")
    head = git(repo, "rev-parse", "HEAD")
    store.commit("refs/heads/main", head, {"routes/x.yaml": b"x: 1\n"}, "m\n", sign=False)
    assert store.sync_worktree("refs/heads/main", ["routes/x.yaml"]) == []
    assert git(repo, "status", "--porcelain") == "A  notes.txt"


def test_revisions_from_users_are_never_options(store: GitStore, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned.txt"
    assert store.resolve(f"--output={sentinel}") is None
    assert store.ref_oid(f"--output={sentinel}") is None
    assert store.object_at(f"--output={sentinel}", "x") is None
    assert store.commit_and_tree(f"--output={sentinel}", "")[0] is None
    assert not sentinel.exists()


def test_read_blobs_in_one_batch(store: GitStore) -> None:
    entries = [
        e
        for e in store.ls_tree(git(store.toplevel, "rev-parse", "HEAD^{tree}"))
        if e.type == "blob"
    ]
    blobs = store.read_blobs(e.oid for e in entries)
    for entry in entries:
        assert blobs[entry.oid] == (store.toplevel / entry.path).read_bytes()


def test_read_paths_skips_what_is_not_a_file(store: GitStore) -> None:
    """A directory or a missing path in the middle of a batch does not shift what follows."""
    settings = (store.toplevel / "modelctl.yaml").read_bytes()
    found = store.read_paths(["HEAD:models", "HEAD:nothing-here", "HEAD:modelctl.yaml"])
    assert found == {"HEAD:models": None, "HEAD:nothing-here": None, "HEAD:modelctl.yaml": settings}
    assert store.read_path("HEAD", "modelctl.yaml") == settings
    assert store.read_path("HEAD", "models") is None


def test_not_a_repository(tmp_path: Path) -> None:
    assert GitStore.discover(tmp_path) is None


def test_missing_identity_is_a_clear_error(
    store: GitStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("EMAIL", "")
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(key, raising=False)
    git(store.toplevel, "config", "user.useConfigOnly", "true")
    with pytest.raises(GitError, match="no identity"):
        store.identity()
