"""Killing a write at each step (notes/reliability.md, CRASH table).

A `git` shim on PATH stops a real `python -m modelctl deploy` at one git call (before it runs,
or right after) and says so with a ready file; the test then SIGKILLs the whole process group.
Whatever the step: every ref holds its old or its new value, the object store is sound, and
running the same deploy again succeeds and leaves a clean work tree (the sync journal repairs a
write killed after the branch moved but before the work tree caught up).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli, cli_proc, git, make_registry, refs_snapshot
from modelctl.lifecycle import actions as lifecycle
from modelctl.lifecycle import history
from modelctl.registry import snapshot as registry

READY_TIMEOUT = 120  # seconds to wait for the paused step; generous, never reached normally

FIRST = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4",
         "--fallback", "support-claude@2026-05,support-system@4"]  # fmt: skip
SECOND = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3",
          "--fallback", "support-claude@2026-05,support-system@3"]  # fmt: skip
SECOND_BINDING = lifecycle.make_binding(
    [{"model": "support-gpt@2026-03", "prompt": "support-system@3", "weight": 100}],
    [{"model": "support-claude@2026-05", "prompt": "support-system@3"}],
    None,
)

# The shim counts calls of $PAUSE_AT; at call $PAUSE_NTH it pauses before running it, or after
# it ran when $PAUSE_WHEN is "after". Pausing keeps the parent waiting on this process.
SHIM = """#!/bin/sh
REAL={real}
if [ -n "$PAUSE_AT" ] && [ "$1" = "$PAUSE_AT" ]; then
  n=$(cat "$PAUSE_COUNT" 2>/dev/null || echo 0)
  n=$((n + 1))
  echo "$n" > "$PAUSE_COUNT"
  if [ "$n" = "${{PAUSE_NTH:-1}}" ]; then
    if [ "$PAUSE_WHEN" = after ]; then "$REAL" "$@" || exit $?; fi
    : > "$PAUSE_READY"
    exec sleep 3600
  fi
fi
exec "$REAL" "$@"
"""

# (git call, which occurrence, before/after, whether the branch has moved by then).
STEPS = [
    ("hash-object", 1, "before", False),
    ("read-tree", 1, "before", False),
    ("update-index", 1, "before", False),  # the private index of the new tree
    ("write-tree", 1, "before", False),
    ("commit-tree", 1, "before", False),
    ("commit-tree", 1, "after", False),
    ("mktag", 1, "before", False),
    ("update-ref", 1, "before", False),
    ("update-ref", 1, "after", True),  # branch and tag moved; the work tree not yet synced
    ("update-index", 2, "before", True),  # file written, the user's index not yet updated
    ("update-index", 2, "after", True),  # synced; only the journal note is left
]


@pytest.fixture
def shim(tmp_path: Path) -> Path:
    real = shutil.which("git")
    assert real
    folder = tmp_path / "shim"
    folder.mkdir()
    (folder / "git").write_text(SHIM.format(real=shlex.quote(real)))
    (folder / "git").chmod(0o755)
    return folder


def start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m modelctl ARGS` in its own session (so its process group can be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "modelctl", *args],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # A background shell may have left SIGINT ignored; Python maps it only when it is not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(ready: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"modelctl exited {proc.returncode} before the pause: {out!r} {err!r}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the paused step was never reached")
        time.sleep(0.02)


def kill_group(proc: subprocess.Popen[bytes]) -> str:
    """SIGKILL the process group (modelctl, the shim, a sleeping child); modelctl's stderr."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=READY_TIMEOUT)
    return err.decode("utf-8", "replace")


def ref_map(repo: Path) -> dict[str, str]:
    return dict(line.split(" ") for line in refs_snapshot(repo).splitlines())


def kill_at(shim: Path, step: str, nth: int, when: str, args: list[str], cwd: Path) -> None:
    """Run `modelctl ARGS`, pause it at the `nth` git `step` (before/after it), SIGKILL it."""
    ready = cwd.parent / "ready"
    env = {
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "PAUSE_AT": step,
        "PAUSE_NTH": str(nth),
        "PAUSE_WHEN": when,
        "PAUSE_READY": str(ready),
        "PAUSE_COUNT": str(cwd.parent / "count"),
    }
    proc = start(args, cwd, env)
    try:
        wait_for(ready, proc)
    finally:
        kill_group(proc)
    assert proc.returncode == -signal.SIGKILL


def assert_fsck_clean(repo: Path) -> None:
    fsck = subprocess.run(
        ["git", "fsck", "--no-dangling"], cwd=repo, capture_output=True, text=True, check=False
    )
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "missing" not in fsck.stdout + fsck.stderr


def crashed_registry(tmp_path: Path) -> Path:
    """A registry whose route r1 serves FIRST in dev (seq 1), ready for a second deploy."""
    repo = make_registry(tmp_path / "reg")
    first = cli("deploy", "r1", "--stage", "dev", *FIRST, cwd=repo)
    assert first.exit_code == 0, first.stderr
    return repo


@pytest.mark.parametrize(
    ("step", "nth", "when", "landed"),
    STEPS,
    ids=[f"{s}-{n}-{w}" for s, n, w, _ in STEPS],
)
def test_sigkill_at_each_step(
    tmp_path: Path, shim: Path, step: str, nth: int, when: str, landed: bool
) -> None:
    repo = crashed_registry(tmp_path)
    before = ref_map(repo)
    kill_at(shim, step, nth, when, ["deploy", "r1", "--stage", "dev", *SECOND], repo)

    # Every ref is at its old value, or the branch and its tag both moved to the new commit.
    after = ref_map(repo)
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    changed = {ref for ref in before.keys() | after.keys() if before.get(ref) != after.get(ref)}
    if landed:
        assert changed == {"refs/heads/main", "refs/tags/modelctl/r1/dev/2"}
        new = after["refs/heads/main"]
        assert git(repo, "rev-parse", f"{new}^") == before["refs/heads/main"]
        assert git(repo, "rev-parse", "modelctl/r1/dev/2^{commit}") == new
    else:
        assert changed == set()
    assert_fsck_clean(repo)

    again = cli_proc("deploy", "r1", "--stage", "dev", *SECOND, cwd=repo)
    assert again.exit_code == 0, again.stdout + again.stderr
    if landed:
        assert "already serves" in again.stdout + again.stderr
    assert git(repo, "status", "--porcelain") == ""
    tip = git(repo, "rev-parse", "HEAD")
    events = history.events("r1", history.route_records(registry.locate(repo), "r1", tip))
    assert [e.seq for e in events] == [1, 2]  # one event for the deploy, however often it ran
    assert events[-1].binding == SECOND_BINDING
    assert git(repo, "tag", "-l", "modelctl/r1/*").split() == [
        "modelctl/r1/dev/1",
        "modelctl/r1/dev/2",
    ]
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []


@pytest.mark.parametrize(("when", "landed"), [("before", False), ("after", True)])
def test_sigkill_during_push(tmp_path: Path, shim: Path, when: str, landed: bool) -> None:
    """CRASH-01, remote: killed as the push starts, or once the remote took it but said nothing.

    Local refs never move before the remote accepted (`--push`), so a kill leaves them as they
    were; the remote has the branch and the tag together or neither; running the deploy again
    lands it exactly once.
    """
    seed = make_registry(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(seed, "push", "-q", str(remote), "main")
    clone = tmp_path / "work" / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    first = cli("deploy", "r1", "--stage", "dev", *FIRST, "--push", "origin", cwd=clone)
    assert first.exit_code == 0, first.stderr
    local_before, remote_before = ref_map(clone), ref_map(remote)
    args = ["deploy", "r1", "--stage", "dev", *SECOND, "--push", "origin"]

    kill_at(shim, "push", 1, when, args, clone)

    remote_after, local_after = ref_map(remote), ref_map(clone)
    changed = {
        r
        for r in remote_before.keys() | remote_after.keys()
        if remote_before.get(r) != remote_after.get(r)
    }
    assert changed == ({"refs/heads/main", "refs/tags/modelctl/r1/dev/2"} if landed else set())
    # Local branches and tags stay; refs that mirror the remote (git's own, which push updates,
    # and modelctl's private fetch refs) may only show what the remote held at some point.
    branches = ("refs/remotes/", "refs/modelctl/remotes/")
    mirrors = (*branches, "refs/modelctl/remote-tags/")
    assert {r: v for r, v in local_after.items() if not r.startswith(mirrors)} == {
        r: v for r, v in local_before.items() if not r.startswith(mirrors)
    }
    for ref, value in local_after.items():
        if ref.startswith("refs/modelctl/remote-tags/"):
            assert value == remote_before["refs/" + ref.split("/", 4)[4]], ref
    remote_values = {remote_before["refs/heads/main"], remote_after["refs/heads/main"]}
    for ref, value in local_after.items():
        if ref.startswith(branches) and value != local_before.get(ref):
            assert value in remote_values, ref
    assert_fsck_clean(clone)
    assert_fsck_clean(remote)

    again = cli_proc(*args, cwd=clone)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert git(clone, "status", "--porcelain") == ""
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(remote), str(check))
    tip = git(check, "rev-parse", "HEAD")
    events = history.events("r1", history.route_records(registry.locate(check), "r1", tip), "dev")
    assert [e.seq for e in events] == [1, 2]
    assert events[-1].binding == SECOND_BINDING
    assert git(remote, "tag", "-l", "modelctl/r1/*").split() == [
        "modelctl/r1/dev/1",
        "modelctl/r1/dev/2",
    ]


@pytest.mark.parametrize("signals", [("SIGINT", "SIGTERM"), ("SIGTERM",)], ids="-".join)
def test_cancellation_while_signing(tmp_path: Path, signals: tuple[str, ...]) -> None:
    """CRASH-03: GitHub's cancel (SIGINT, then SIGTERM) while a slow signing program runs."""
    repo = crashed_registry(tmp_path)
    ready = tmp_path / "signing"
    signer = tmp_path / "slow-gpg"
    signer.write_text(f"#!/bin/sh\n: > {shlex.quote(str(ready))}\nexec sleep 3600\n")
    signer.chmod(0o755)
    git(repo, "config", "gpg.program", str(signer))
    git(repo, "config", "user.signingkey", "0000DUMMY0000")
    before = refs_snapshot(repo)
    proc = start(["deploy", "r1", "--stage", "dev", *SECOND], repo, {})
    try:
        wait_for(ready, proc)
        for name in signals:  # each one to modelctl itself, as the runner sends them
            if proc.poll() is None:
                os.kill(proc.pid, getattr(signal, name))
            try:
                proc.wait(timeout=READY_TIMEOUT / 4)
            except subprocess.TimeoutExpired:
                continue
    finally:
        code = proc.poll()
        err = kill_group(proc)  # the orphaned signing program, if any
    expected = {130, 143} if signals[0] == "SIGINT" else {143}
    assert code in expected, f"exit {code}: {err}"
    assert not (repo / ".git" / "index.lock").exists()
    git_locks = [p for p in (repo / ".git").rglob("*.lock") if "modelctl" not in p.parts]
    assert git_locks == []
    assert refs_snapshot(repo) == before
    assert git(repo, "status", "--porcelain") == ""
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []


def test_a_killed_writers_note_is_finished_when_its_pid_comes_back(
    tmp_path: Path, shim: Path
) -> None:
    """In a container a restarted writer often gets the PID of the one that was killed: the
    note the killed writer left must still be seen as abandoned and finished."""
    import json

    repo = crashed_registry(tmp_path)
    kill_at(shim, "update-ref", 1, "after", ["deploy", "r1", "--stage", "dev", *SECOND], repo)
    (note,) = (repo / ".git" / "modelctl" / "pending-sync").glob("sync-*.json")
    data = json.loads(note.read_text())
    # The next writer (this process, below) has the killed writer's PID.
    data["pid"] = os.getpid()
    if isinstance(data.get("writer"), dict):
        data["writer"]["pid"] = os.getpid()
    note.write_text(json.dumps(data))

    again = cli("deploy", "r1", "--stage", "dev", *SECOND, cwd=repo)

    assert again.exit_code == 0, again.stdout + again.stderr
    assert "already serves" in again.stdout + again.stderr
    assert git(repo, "status", "--porcelain") == ""
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []


def test_a_writer_is_known_by_more_than_its_pid() -> None:
    """Where no lock can tell (no fcntl), a note's writer is alive only if its PID runs on this
    host, started when the note says, and is not this process under another nonce."""
    from modelctl import gitstore

    me = gitstore._writer()
    assert gitstore._writer_alive(me, {})
    assert not gitstore._writer_alive({**me, "nonce": "another"}, {})  # our PID, not us
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        start = gitstore._process_start(sleeper.pid)
        other = {**me, "pid": sleeper.pid, "start": start, "nonce": "x"}
        assert gitstore._writer_alive(other, {})
        if start is not None:  # /proc tells when a process started
            assert not gitstore._writer_alive({**other, "start": str(int(start) - 1)}, {})
        assert gitstore._writer_alive({**other, "host": "elsewhere"}, {})  # cannot tell
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not gitstore._writer_alive({**me, "pid": sleeper.pid, "nonce": "x"}, {})


def test_an_interrupt_after_the_branch_moved_leaves_the_sync_to_the_next_writer(
    tmp_path: Path, shim: Path
) -> None:
    """Ctrl-C lands just after the branch and tag moved: the work tree is not caught up, and
    the note that says so must outlive the interrupted process."""
    repo = crashed_registry(tmp_path)
    ready = tmp_path / "ready"
    env = {
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "PAUSE_AT": "update-ref",
        "PAUSE_NTH": "1",
        "PAUSE_WHEN": "after",
        "PAUSE_READY": str(ready),
        "PAUSE_COUNT": str(tmp_path / "count"),
    }
    proc = start(["deploy", "r1", "--stage", "dev", *SECOND], repo, env)
    try:
        wait_for(ready, proc)
        os.kill(proc.pid, signal.SIGINT)  # to modelctl itself, as a terminal would
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=READY_TIMEOUT / 4)
    finally:
        code = proc.poll()
        err = kill_group(proc)
    assert code == 130, err
    assert git(repo, "tag", "-l", "modelctl/r1/dev/2") == "modelctl/r1/dev/2"  # it landed

    again = cli_proc("deploy", "r1", "--stage", "dev", *SECOND, cwd=repo)

    assert again.exit_code == 0, again.stdout + again.stderr
    assert "already serves" in again.stdout + again.stderr
    assert git(repo, "status", "--porcelain") == ""
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []


def test_a_note_a_killed_writer_never_finished_writing_is_cleared(tmp_path: Path) -> None:
    """Killed between creating its note and putting it in place: the half-made note goes once
    it is clearly nobody's (unlocked for a minute), and a fresh one is left alone."""
    repo = crashed_registry(tmp_path)
    folder = repo / ".git" / "modelctl" / "pending-sync"
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / ".new-stale.json", folder / ".new-fresh.json"
    stale.write_text("")
    fresh.write_text("")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    again = cli("deploy", "r1", "--stage", "dev", *SECOND, cwd=repo)

    assert again.exit_code == 0, again.stdout + again.stderr
    assert sorted(p.name for p in folder.iterdir()) == [".new-fresh.json"]
