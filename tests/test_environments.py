"""Hostile environments on real repositories: a remote that refuses pushes, tags written by
other clones, shallow clones, a read-only registry and a full disk.

Read-only and full file systems are real: each command runs in its own mount namespace
(`unshare`), where the registry is bind-mounted read-only or copied onto a tiny tmpfs. Root
ignores file modes but not a read-only mount or a full file system, so this holds when the
tests run as root (as CI does).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from confined import confined, namespace
from conftest import cli, git, make_registry, refs_snapshot
from otlp import T, chat, line, server, tid, write
from signing import allow, make_ssh_key, use_ssh_key

GPT5 = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4"]
GPT3 = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3"]
FALLBACK = ["--fallback", "support-claude@2026-05,support-system@4"]


def run(repo: Path, *args: str, code: int = 0) -> Any:
    result = cli(*args, "--json", cwd=repo)
    assert result.exit_code == code, result.stderr + result.stdout
    return result.json


def deploy(repo: Path, *extra: str, model: list[str] = GPT5, code: int = 0) -> Any:
    return run(
        repo, "deploy", "support-bot", "--stage", "dev", *model, *FALLBACK, *extra, code=code
    )


def hook(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, Path]:
    """(bare remote, a clone of it) holding the example registry with no route yet."""
    seed = make_registry(tmp_path / "seed", routes=False)
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(seed, "push", "-q", str(bare), "main")
    git(tmp_path, "clone", "-q", str(bare), "clone")
    return bare, tmp_path / "clone"


def private_refs_dropped(listing: str) -> list[str]:
    """A ref listing without modelctl's private copy of the remote branch (a fetch writes it)."""
    return [x for x in listing.splitlines() if not x.split()[0].startswith("refs/modelctl/")]


# --- item 9: a remote that refuses, a pre-push hook that refuses -------------------------------


def test_a_pre_receive_hook_refusal_fails_at_once_with_the_remote_s_words(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, clone = remote
    calls = tmp_path / "pre-receive.calls"
    hook(
        bare / "hooks" / "pre-receive",
        f"echo x >> {shlex.quote(str(calls))}\n"
        'echo "GL-HOOK-ERR: You are not allowed to push code to protected branches" >&2\nexit 1',
    )
    remote_before, local_before = refs_snapshot(bare), refs_snapshot(clone)

    result = cli("deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, "--push", "origin",
                 cwd=clone)  # fmt: skip

    assert result.exit_code == 4, result.stdout + result.stderr
    assert calls.read_text().count("x") == 1  # one push, no retries
    assert "origin refused the push" in result.stderr
    assert "pre-receive hook declined" in result.stderr
    assert "not allowed to push code to protected branches" in result.stderr
    assert "keeps moving" not in result.stderr
    assert refs_snapshot(bare) == remote_before
    assert private_refs_dropped(refs_snapshot(clone)) == private_refs_dropped(local_before)
    assert git(clone, "status", "--porcelain") == ""


def test_an_update_hook_that_protects_tags_fails_the_whole_push_at_once(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    """Only the tag is refused; the atomic push drops the branch too, and nothing is retried."""
    bare, clone = remote
    calls = tmp_path / "update.calls"
    hook(
        bare / "hooks" / "update",
        f"echo x >> {shlex.quote(str(calls))}\n"
        'case "$1" in refs/tags/*) echo "tags are protected" >&2; exit 1;; esac\nexit 0',
    )
    before = refs_snapshot(bare)
    result = cli("deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, "--push", "origin",
                 "--json", cwd=clone)  # fmt: skip
    assert result.exit_code == 4, result.stdout + result.stderr
    error = result.json["error"]  # type: ignore[index]
    assert error["exit_code"] == 4 and "hook declined" in error["message"]
    assert "tags are protected" in error["message"]
    assert refs_snapshot(bare) == before
    assert calls.read_text().count("x") <= 2  # the branch and the tag of one push


def test_a_failing_pre_push_hook_fails_at_once_with_its_words(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, clone = remote
    calls = tmp_path / "pre-push.calls"
    hook(
        clone / ".git" / "hooks" / "pre-push",
        f"echo x >> {shlex.quote(str(calls))}\n"
        "echo 'fatal: pre-push: lint failed on routes/' >&2\nexit 1",  # "fatal:" as git says
    )
    before = refs_snapshot(bare)
    result = cli("deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, "--push", "origin",
                 cwd=clone)  # fmt: skip
    assert result.exit_code == 4, result.stdout + result.stderr
    assert calls.read_text().count("x") == 1
    assert "pre-push: lint failed on routes/" in result.stderr
    assert "nothing was pushed" in result.stderr
    assert refs_snapshot(bare) == before
    assert git(clone, "rev-parse", "HEAD") == git(bare, "rev-parse", "main")


def test_a_branch_moved_on_the_remote_during_the_push_is_a_race_and_retried(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    """The remote's own lock check ("[remote rejected] (failed to update ref)") is a lost race,
    not a refusal: modelctl plans again on the new tip and lands."""
    bare, clone = remote
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    git(other, "commit", "-q", "--allow-empty", "-m", "another writer")
    git(other, "push", "-q", "origin", "HEAD:refs/heads/parked")
    theirs = git(other, "rev-parse", "HEAD")
    once = tmp_path / "moved-once"
    hook(
        bare / "hooks" / "pre-receive",
        f"if [ ! -e {shlex.quote(str(once))} ]; then\n"
        f"  : > {shlex.quote(str(once))}\n"
        f"  env -u GIT_QUARANTINE_PATH git update-ref refs/heads/main {theirs}\n"
        "fi\nexit 0",
    )
    payload = deploy(clone, "--push", "origin")
    assert once.exists()
    assert payload["pushed"] == "origin"
    assert git(bare, "rev-parse", "main^") == theirs  # built on the other writer's commit
    assert git(bare, "rev-parse", "main") == payload["commit"]


# --- item 10: the tags other writers made, clones that are behind ---------------------------


def findings(repo: Path) -> tuple[int, list[dict[str, str]], list[dict[str, str]]]:
    result = cli("verify", "--json", cwd=repo)
    payload: Any = result.json
    return result.exit_code, payload["findings"], payload["notes"]


def test_a_pushing_clone_fetches_the_tags_of_the_commits_it_builds_on(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    """Another writer's deploy lands first; our push builds on it and must bring its tag along,
    or our own `verify` says "lifecycle commit has no tag"."""
    bare, clone = remote
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    deploy(other, "--push", "origin")  # modelctl/support-bot/dev/1, by the other writer
    payload = deploy(clone, "--push", "origin", model=GPT3)
    assert payload["tag"] == "modelctl/support-bot/dev/2"
    assert git(clone, "rev-parse", "modelctl/support-bot/dev/1") == git(
        bare, "rev-parse", "modelctl/support-bot/dev/1"
    )
    code, found, _ = findings(clone)
    assert code == 0 and found == []


def test_a_clone_that_is_behind_does_not_call_newer_tags_foreign(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    bare, clone = remote
    writer = tmp_path / "writer"
    git(tmp_path, "clone", "-q", str(bare), str(writer))
    deploy(writer, "--push", "origin")
    deploy(writer, "--push", "origin", model=GPT3)
    # The clone fetches every tag (as `git fetch --tags` does) but does not pull the branch.
    git(clone, "fetch", "-q", "origin", "refs/tags/*:refs/tags/*")
    code, found, notes = findings(clone)
    assert code == 0 and found == [], found
    assert any("after" in n["message"] for n in notes), notes
    # An older detached checkout of the up-to-date writer: the later tag is not foreign either.
    git(writer, "checkout", "-q", "--detach", "HEAD~1")
    code, found, _ = findings(writer)
    assert code == 0 and found == [], found


def test_a_push_from_a_clone_with_unpushed_commits_leaves_it_verifiable(
    remote: tuple[Path, Path], tmp_path: Path
) -> None:
    """The clone has a local commit the remote lacks; its `--push` lands on the remote but
    cannot move the local branch. It must not leave a tag beside the local history (its own
    verify would call it foreign); the tag arrives with the commit when the clone pulls. (A
    merge of two lifecycle histories is a verify finding of its own, not judged here.)"""
    bare, clone = remote
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(other))
    deploy(other, "--push", "origin")  # the remote moves on
    (clone / "NOTES.md").write_text("local only\n")
    git(clone, "add", "NOTES.md")
    git(clone, "commit", "-qm", "a local commit, not pushed")
    payload = deploy(clone, "--push", "origin", model=GPT3)
    assert any("was not moved" in w for w in payload["warnings"])
    code, found, _ = findings(clone)
    assert code == 0 and found == [], found
    git(clone, "pull", "-q", "--no-rebase", "--no-edit")  # git follows the tag in
    assert git(clone, "rev-parse", payload["tag"]) == git(bare, "rev-parse", payload["tag"])


def test_a_tag_beside_the_history_is_still_reported(remote: tuple[Path, Path]) -> None:
    """Not after the tip, not on the history: foreign, however it got here."""
    _, clone = remote
    deploy(clone)
    deploy(clone, model=GPT3)
    side = git(clone, "commit-tree", "HEAD~1^{tree}", "-p", "HEAD~1", "-m", "side")
    git(clone, "tag", "-a", "-m", "forged", "modelctl/support-bot/dev/9", side)
    code, found, _ = findings(clone)
    assert code == 1
    assert [f["where"] for f in found] == ["refs/tags/modelctl/support-bot/dev/9"]
    assert "not a lifecycle commit on" in found[0]["message"]


# --- item 11: shallow clones ----------------------------------------------------------------


def test_a_shallow_clone_refuses_questions_about_history_and_writes(tmp_path: Path) -> None:
    """`git clone --depth 1` (CI's default checkout) cuts the history: every answer built from
    it (events, sequences, what was live, verify) would be wrong, so modelctl refuses with the
    fix; questions about one revision (validate, list, show) still answer."""
    repo = make_registry(tmp_path / "reg", routes=False)
    deploy(repo)
    deploy(repo, model=GPT3)
    run(repo, "promote", "support-bot", "--to", "staging")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow))
    assert git(shallow, "rev-parse", "--is-shallow-repository") == "true"
    before = refs_snapshot(shallow)
    for args in [
        ["verify"],
        ["history", "support-bot"],
        ["resolve", "support-bot", "--stage", "dev", "--at", "HEAD"],
        ["status"],
        ["rollback", "support-bot", "--stage", "dev"],
        ["deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK],
    ]:
        result = cli(*args, "--json", cwd=shallow)
        assert result.exit_code == 4, (args, result.stdout, result.stderr)
        error = result.json["error"]  # type: ignore[index]
        assert "shallow clone" in error["message"], args
        assert "git fetch --unshallow" in error["hint"], args
    assert refs_snapshot(shallow) == before
    assert cli("validate", cwd=shallow).exit_code == 0
    assert cli("list", cwd=shallow).exit_code == 0
    # The fix the message names works.
    git(shallow, "fetch", "-q", "--unshallow", "--tags")
    assert cli("verify", cwd=shallow).exit_code == 0
    assert len(run(shallow, "history", "support-bot")["events"]) == 3


# --- items 7 and 8: a read-only registry, a full disk -----------------------------------------

needs_namespace = pytest.mark.skipif(
    namespace() is None,
    reason="no mount namespace here (unshare -rm / unshare -m refused): the read-only and "
    "full-disk tests need one; test_file_system_refusals_map_to_exit_4 still covers the mapping",
)


@pytest.fixture
def signed_registry(tmp_path: Path) -> tuple[Path, Path, str]:
    """(registry, traces file, a trace id): signed events, so reading history needs the
    allowed-signers file as a scratch file for git, and no caches yet."""
    repo = make_registry(tmp_path / "reg", routes=False)
    key = make_ssh_key(tmp_path / "keys", "ci", "ci-bot@example")
    allow(repo, key)
    use_ssh_key(repo, key)
    deploy(repo)
    deploy(repo, model=GPT3)
    run(repo, "promote", "support-bot", "--to", "staging")
    shutil.rmtree(repo / ".git" / "modelctl", ignore_errors=True)
    trace = tid()
    root = server(trace, T(3, 9))
    traces = write(tmp_path / "traces.jsonl", [line([root, chat(trace, root["spanId"], T(3, 9) + 1, "gpt-5")])])  # fmt: skip
    return repo, traces, trace


def reads(traces: Path, trace: str) -> list[list[str]]:
    return [
        [*args, "--json"]
        for args in [
            ["status"],
            ["history", "support-bot"],
            ["resolve", "support-bot", "--stage", "dev", "--at", "HEAD"],
            ["verify"],
            ["coverage", str(traces)],
            ["explain", trace, "--traces", str(traces)],
            ["report"],
            ["list"],
            ["show", "support-gpt@2026-05"],
            ["validate"],
            ["lineage", "models/support-gpt@2026-05"],
        ]
    ]


WRITES = [
    ["deploy", "support-bot", "--stage", "dev", *GPT5, *FALLBACK, "--json"],
    ["rollback", "support-bot", "--stage", "dev", "--json"],
    ["add", "model", "support-gpt", "2026-09", "--provider", "openai", "--provider-model",
     "gpt-x", "--no-commit", "--json"],
]  # fmt: skip


def assert_reads_answer(records: list[dict[str, Any]]) -> None:
    for record in records:
        assert record["code"] in (0, 1), record  # 1: coverage below target is an answer
        assert "internal error" not in record["stderr"], record
        json.loads(record["stdout"])
        if record["args"][0] == "history":
            events = json.loads(record["stdout"])["events"]
            assert [e["signature"] for e in events] == ["G", "G", "G"]  # the trust file was read


def assert_writes_refused(records: list[dict[str, Any]], cause: str) -> None:
    for record in records:
        assert record["code"] == 4, record
        error = json.loads(record["stdout"])["error"]
        assert cause in error["message"].lower(), record
        assert "/" in error["message"], record  # names the path
        assert record["refs_before"] == record["refs_after"], record


@needs_namespace
def test_a_read_only_registry_answers_every_read_and_refuses_writes(
    signed_registry: tuple[Path, Path, str],
) -> None:
    repo, traces, trace = signed_registry
    before = refs_snapshot(repo)
    records = confined("readonly", repo, [*reads(traces, trace), *WRITES])
    assert_reads_answer(records[:-3])
    assert_writes_refused(records[-3:], "read-only file system")
    assert refs_snapshot(repo) == before
    assert not (repo / ".git" / "modelctl").exists()  # no cache could be written
    assert git(repo, "status", "--porcelain") == ""


@needs_namespace
@pytest.mark.parametrize("tmpdir_on_it", [False, True], ids=["tmp-elsewhere", "tmp-full-too"])
def test_a_full_disk_answers_every_read_and_refuses_writes_leaving_nothing(
    signed_registry: tuple[Path, Path, str], tmp_path: Path, tmpdir_on_it: bool
) -> None:
    """Git's own object writes fail (the objects folder is on the full disk) as well as
    modelctl's caches; with the temporary folder full too, scratch files live in memory."""
    repo, traces, trace = signed_registry
    after_all = [
        ["git", "--no-optional-locks", "status", "--porcelain"],
        ["git", "fsck", "--no-dangling"],
        ["find", ".git/modelctl", ".git/objects", "-name", "*.tmp", "-o", "-name", "sync-*",
         "-o", "-name", "index-*", "-o", "-name", ".modelctl-probe-*", "-o", "-name", "tmp_*"],
        ["find", "models/support-gpt"],
    ]  # fmt: skip
    records = confined(
        "full",
        repo,
        [*reads(traces, trace), *WRITES, *after_all],
        scratch=tmp_path / "disk",
        tmpdir_on_it=tmpdir_on_it,
    )
    assert_reads_answer(records[:-7])
    assert_writes_refused(records[-7:-4], "no space left on device")
    status, fsck, leftovers, models = records[-4:]
    assert status["code"] == 0 and status["stdout"] == ""
    assert fsck["code"] == 0, fsck
    assert leftovers["stdout"] == "", leftovers  # no partial file left anywhere
    assert "2026-09" not in models["stdout"]


@needs_namespace
def test_git_failing_to_write_objects_is_exit_4_and_leaves_nothing(
    signed_registry: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """Only `.git/objects` is full: modelctl's notes and caches can be written, so the write
    gets as far as git writing the new objects, which fails; refs, work tree and notes stay."""
    repo, _, _ = signed_registry
    before = refs_snapshot(repo)
    records = confined(
        "full-objects",
        repo,
        [WRITES[0], ["git", "--no-optional-locks", "status", "--porcelain"]],
        scratch=tmp_path / "stage",
    )
    deploy_record, status = records
    assert_writes_refused([deploy_record], "no space left on device")
    error = json.loads(deploy_record["stdout"])["error"]
    assert error["message"].startswith("git ") and str(repo) in error["message"]
    assert status["stdout"] == ""
    assert refs_snapshot(repo) == before
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []
    assert not list((repo / ".git" / "modelctl").glob("index-*"))


def immutable(*paths: Path) -> bool:
    """`chattr +i`: not even root may create files in these folders; False where refused."""
    proc = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
    return proc.returncode == 0


def test_a_user_who_may_not_write_gets_answers_and_exit_4_for_writes(
    signed_registry: tuple[Path, Path, str],
) -> None:
    """The git directory's folders are immutable (`chattr +i`): the kernel refuses to create
    files there even for root (EPERM), as it refuses a user without write access (EACCES)."""
    repo, traces, trace = signed_registry
    folders = [repo / ".git", repo / ".git" / "objects", repo / "models" / "support-gpt"]
    if shutil.which("chattr") is None or not immutable(*folders):
        pytest.skip("chattr +i is refused on this file system; see the injected variant below")
    try:
        before = refs_snapshot(repo)
        for args in reads(traces, trace):
            result = cli(*args, cwd=repo)
            assert result.exit_code in (0, 1), (args, result.stderr)
            json.loads(result.stdout)
        for args in WRITES:
            result = cli(*args, cwd=repo)
            assert result.exit_code == 4, (args, result.stdout, result.stderr)
            error = result.json["error"]  # type: ignore[index]
            assert "permission denied" in error["message"] and "/" in error["message"], error
        assert refs_snapshot(repo) == before
        assert not (repo / ".git" / "modelctl").exists()
    finally:
        subprocess.run(["chattr", "-i", *map(str, folders)], check=True)
    assert git(repo, "status", "--porcelain") == ""


def test_file_system_refusals_map_to_exit_4(
    signed_registry: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected, for machines with neither mount namespaces nor `chattr`: every file modelctl
    creates under the git directory starts with `tempfile.mkstemp` (atomic writes, caches,
    scratch files, the write probe), so making that refuse with EACCES there stands for a
    user without write access. Reads answer; writes exit 4 naming the path."""
    import errno
    import tempfile

    repo, traces, trace = signed_registry
    real = tempfile.mkstemp
    git_dir = str(repo / ".git")

    def refuse(*args: Any, **kwargs: Any) -> tuple[int, str]:
        folder = str(kwargs.get("dir") or "")
        if folder.startswith(git_dir):
            raise PermissionError(errno.EACCES, "Permission denied", folder)
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    before = refs_snapshot(repo)
    for args in reads(traces, trace)[:4]:
        result = cli(*args, cwd=repo)
        assert result.exit_code == 0, (args, result.stderr)
    result = cli(*WRITES[0], cwd=repo)
    assert result.exit_code == 4, result.stdout + result.stderr
    error = result.json["error"]  # type: ignore[index]
    assert "permission denied" in error["message"] and git_dir in error["message"]
    assert refs_snapshot(repo) == before
