"""Concurrent writers on real repositories (notes/reliability.md, CONC table).

Real processes, real git: many writers on one repository (compare-and-swap on the branch),
many clones pushing to one bare remote (`push --atomic`, never forced), a push whose answer is
lost, an existing tag, a promote whose source moved, and a stale `index.lock`.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import EXAMPLE, cli, git, refs_snapshot
from modelctl.lifecycle import actions as lifecycle
from modelctl.lifecycle import history
from modelctl.registry import snapshot as registry

WORKERS, DEPLOYS = 16, 20
CLONES, PUSHES = 8, 10
WAIT = 600  # seconds a worker may take before the test calls it hung (never reached normally)


def bindings() -> list[lifecycle.Binding]:
    """Two valid dev bindings; a worker alternates them so consecutive deploys differ."""
    return [
        lifecycle.make_binding(
            [{"model": "support-gpt@2026-05", "prompt": "support-system@4", "weight": 100}],
            [{"model": "support-claude@2026-05", "prompt": "support-system@4"}],
            None,
        ),
        lifecycle.make_binding(
            [{"model": "support-gpt@2026-03", "prompt": "support-system@3", "weight": 100}],
            [{"model": "support-claude@2026-05", "prompt": "support-system@3"}],
            None,
        ),
    ]


DEPLOY_ARGS = [
    "--model", "support-gpt@2026-05", "--prompt", "support-system@4",
    "--fallback", "support-claude@2026-05,support-system@4",
]  # fmt: skip


def attested_registry(path: Path) -> Path:
    """The example registry without its hand-written route, so `verify` has nothing to flag.

    The route must never have been committed: removing it later is an unattested change too.
    """
    shutil.copytree(EXAMPLE, path)
    (path / "routes" / "support-bot.yaml").unlink()
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "example registry without routes")
    return path


def write_shim(folder: Path, body: str) -> Path:
    """A `git` on PATH that runs `body` (sh; $REAL is the real git) before anything else."""
    real = shutil.which("git")
    assert real
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "git"
    shim.write_text(f'#!/bin/sh\nREAL={shlex.quote(real)}\n{body}\nexec "$REAL" "$@"\n')
    shim.chmod(0o755)
    return folder


def on_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def _worker(
    repo: str, index: int, count: int, push: str | None, start: Any, out: Any
) -> None:  # pragma: no cover - runs in a child process
    try:
        choices = bindings()
        start.wait(timeout=WAIT)
        done = []
        for step in range(count):
            result = lifecycle.deploy(
                registry.locate(Path(repo)), f"r{index}", "dev", choices[step % 2], push=push
            )
            done.append((result.seq, result.noop, result.attempts))
        out.put((index, done))
    except BaseException as exc:
        out.put((index, f"{type(exc).__name__}: {exc}"))
        raise


def run_workers(repos: list[Path], count: int, push: str | None = None) -> dict[int, Any]:
    """One real process per repo (the same repo may repeat); all start writing together."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(len(repos))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(str(repo), i, count, push, start, out))
        for i, repo in enumerate(repos)
    ]
    for proc in procs:
        proc.start()
    results: dict[int, Any] = {}
    try:
        for _ in procs:
            index, value = out.get(timeout=WAIT)
            results[index] = value
    except queue.Empty:
        pytest.fail(f"a worker hung or died silently; finished: {sorted(results)}")
    finally:
        for proc in procs:
            proc.join(timeout=WAIT)
            if proc.is_alive():
                proc.kill()
    failed = {i: v for i, v in results.items() if isinstance(v, str)}
    assert not failed, f"{len(failed)} of {len(procs)} writers failed: {failed}"
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return results


def lifecycle_state(repo: Path, base: str, ref: str = "HEAD") -> tuple[list[str], dict[str, str]]:
    """(commits after `base` on `ref`, oldest first; lifecycle tag -> commit it points at)."""
    commits = git(repo, "rev-list", "--reverse", f"{base}..{ref}").split()
    tags = {}
    listing = git(
        repo, "for-each-ref", "--format=%(refname) %(objecttype) %(*objectname)",
        "refs/tags/modelctl/",
    )  # fmt: skip
    for line in listing.splitlines():
        name, kind, peeled = line.split(" ")
        assert kind == "tag", f"{name} is a lightweight tag"
        tags[name.removeprefix("refs/tags/")] = peeled
    return commits, tags


def assert_history_sound(repo: Path, base: str, routes: int, per_route: int) -> None:
    """Every route has events 1..per_route with the intended bindings; tags match commits."""
    total = routes * per_route
    commits, tags = lifecycle_state(repo, base)
    assert len(commits) == total, "lost or duplicated writes"
    assert git(repo, "rev-list", "--merges", f"{base}..HEAD") == ""
    assert git(repo, "rev-list", "--first-parent", "--count", f"{base}..HEAD") == str(total)
    assert len(tags) == total
    assert set(tags.values()) == set(commits), "a tag without its commit, or the reverse"
    loc = registry.locate(repo)
    tip = git(repo, "rev-parse", "HEAD")
    choices = bindings()
    for index in range(routes):
        route = f"r{index}"
        events = history.events(route, history.route_records(loc, route, tip))
        assert [e.seq for e in events] == list(range(1, per_route + 1)), route
        assert [e.action for e in events] == ["deploy"] * per_route
        assert {e.stage for e in events} == {"dev"}
        assert [e.binding for e in events] == [choices[k % 2] for k in range(per_route)], route
        for event in events:
            assert tags[f"modelctl/{route}/dev/{event.seq}"] == event.commit
    git(repo, "fsck", "--no-dangling")  # raises on any finding


@pytest.mark.slow
def test_many_processes_one_repository(tmp_path: Path) -> None:
    """CONC-01: 16 processes x 20 deploys: none lost, none duplicated, seq strictly +1."""
    repo = attested_registry(tmp_path / "reg")
    base = git(repo, "rev-parse", "HEAD")
    results = run_workers([repo] * WORKERS, DEPLOYS)
    for index, done in results.items():
        assert [seq for seq, _, _ in done] == list(range(1, DEPLOYS + 1)), index
        assert not any(noop for _, noop, _ in done)
    assert_history_sound(repo, base, WORKERS, DEPLOYS)
    assert git(repo, "status", "--porcelain") == ""  # the work tree shows the final tip
    verify = cli("verify", cwd=repo)
    assert verify.exit_code == 0, verify.stdout + verify.stderr


@pytest.mark.slow
def test_many_clones_push_to_one_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CONC-02/03: 8 clones x 10 pushes: 80 commits, 80 tags, never a forced push."""
    calls = tmp_path / "git-argv.log"
    # One line per push, arguments separated by 0x1f, written with a single append.
    shim = write_shim(
        tmp_path / "shim",
        'if [ "$1" = push ]; then\n'
        "  line=$(printf '%s\\037' \"$@\")\n"
        f"  printf '%s\\n' \"$line\" >> {shlex.quote(str(calls))}\n"
        "fi",
    )
    seed = attested_registry(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(seed, "push", "-q", str(remote), "main")
    base = git(seed, "rev-parse", "HEAD")
    clones = []
    for i in range(CLONES):
        git(tmp_path, "clone", "-q", str(remote), f"clone{i}")
        clones.append(tmp_path / f"clone{i}")
    on_path(monkeypatch, shim)

    results = run_workers(clones, PUSHES, push="origin")

    for index, done in results.items():
        assert [seq for seq, _, _ in done] == list(range(1, PUSHES + 1)), index
    commits, tags = lifecycle_state(remote, base, "main")
    assert len(commits) == CLONES * PUSHES and len(tags) == CLONES * PUSHES
    assert set(tags.values()) == set(commits), "a tag without its commit, or the reverse"
    assert git(remote, "rev-list", "--merges", f"{base}..main") == ""
    git(remote, "fsck", "--no-dangling")
    check = tmp_path / "check"
    git(tmp_path, "clone", "-q", str(remote), str(check))
    assert_history_sound(check, base, CLONES, PUSHES)
    verify = cli("verify", cwd=check)
    assert verify.exit_code == 0, verify.stdout + verify.stderr
    for clone in clones:  # each clone's branch followed the remote and its work tree is clean
        assert git(clone, "status", "--porcelain") == ""
        git(remote, "merge-base", "--is-ancestor", git(clone, "rev-parse", "HEAD"), "main")

    pushes = [line.split("\x1f")[:-1] for line in calls.read_text().splitlines()]
    assert len(pushes) >= CLONES * PUSHES  # the log saw every push
    for argv in pushes:
        assert not any(a.startswith("--force") or a in ("-f", "--mirror") for a in argv), argv
        assert not any(a.startswith("+") for a in argv), argv
        assert "--atomic" in argv


def test_push_whose_answer_is_lost_is_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONC-07: the push lands but the client sees an error; the retry finds the promotion id."""
    seed = attested_registry(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(seed, "push", "-q", str(remote), "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    before = git(remote, "rev-parse", "main")
    tags_before = git(remote, "tag", "-l")
    lost = tmp_path / "lost-once"
    shim = write_shim(
        tmp_path / "shim",
        f'if [ "$1" = push ] && [ ! -e {shlex.quote(str(lost))} ]; then\n'
        f"  : > {shlex.quote(str(lost))}\n"
        '  "$REAL" "$@" >/dev/null 2>&1\n'
        '  echo "fatal: the remote end hung up unexpectedly" >&2\n'
        "  exit 128\n"
        "fi",
    )
    on_path(monkeypatch, shim)

    result = cli("deploy", "r1", "--stage", "dev", *DEPLOY_ARGS, "--push", "origin", cwd=clone)

    assert lost.exists(), "the shim never saw the push"
    assert result.exit_code == 0, result.stderr
    assert "already landed" in result.stdout + result.stderr
    after = git(remote, "rev-parse", "main")
    assert git(remote, "rev-list", f"{before}..{after}").split() == [after]  # exactly one commit
    assert git(remote, "tag", "-l").split() == [*tags_before.split(), "modelctl/r1/dev/1"]
    # The local clone follows: branch, tag and work tree as if the first answer had arrived.
    assert git(clone, "rev-parse", "HEAD") == after
    assert git(clone, "rev-parse", "modelctl/r1/dev/1") == git(
        remote, "rev-parse", "modelctl/r1/dev/1"
    )
    assert git(clone, "status", "--porcelain") == ""
    loc = registry.locate(clone)
    assert len(history.events("r1", history.route_records(loc, "r1", after))) == 1


def test_existing_tag_fails_the_whole_write(tmp_path: Path) -> None:
    """CONC-05 (local): the tag the deploy would create exists; neither ref changes."""
    repo = attested_registry(tmp_path / "reg")
    git(repo, "tag", "modelctl/r1/dev/1")  # someone made it by hand
    before = refs_snapshot(repo)
    result = cli("deploy", "r1", "--stage", "dev", *DEPLOY_ARGS, cwd=repo)
    assert result.exit_code == 3, result.stdout + result.stderr
    assert "tag modelctl/r1/dev/1 already exists" in result.stderr
    assert result.stderr.count("error:") == 1 and "gave up" not in result.stderr  # no retries
    assert refs_snapshot(repo) == before
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(repo, "status", "--porcelain") == ""


def test_existing_remote_tag_fails_the_whole_push(tmp_path: Path) -> None:
    """CONC-05 (remote): `push --atomic` refuses branch and tag together; nothing moves."""
    seed = attested_registry(tmp_path / "seed")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(seed, "push", "-q", str(remote), "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    git(seed, "tag", "modelctl/r1/dev/1")  # made by hand on the remote, after the clone
    git(seed, "push", "-q", str(remote), "modelctl/r1/dev/1")
    remote_before, local_before = refs_snapshot(remote), refs_snapshot(clone)

    result = cli("deploy", "r1", "--stage", "dev", *DEPLOY_ARGS, "--push", "origin", cwd=clone)

    assert result.exit_code == 3, result.stdout + result.stderr
    assert "tag modelctl/r1/dev/1 already exists on origin" in result.stderr
    assert refs_snapshot(remote) == remote_before
    # Only modelctl's private copies of the remote's branch and tags may have been written.
    mine = "refs/modelctl/"
    local_after = refs_snapshot(clone)
    assert [x for x in local_after.splitlines() if not x.startswith(mine)] == [
        x for x in local_before.splitlines() if not x.startswith(mine)
    ]
    assert git(clone, "status", "--porcelain") == ""


def test_promote_stops_when_the_source_changed_between_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried promote never promotes something other than what the source served at first."""
    repo = attested_registry(tmp_path / "reg")
    first, second = bindings()
    loc = registry.locate(repo)
    lifecycle.deploy(loc, "r1", "dev", first)
    start = git(repo, "rev-parse", "HEAD")
    # Another writer's deploy (dev: first -> second), made now and replayed mid-promote.
    lifecycle.deploy(loc, "r1", "dev", second)
    theirs = git(repo, "rev-parse", "HEAD")
    their_tag = git(repo, "rev-parse", "refs/tags/modelctl/r1/dev/2")
    git(repo, "update-ref", "-d", "refs/tags/modelctl/r1/dev/2")
    git(repo, "reset", "-q", "--hard", start)
    moved = tmp_path / "moved"
    shim = write_shim(
        tmp_path / "shim",
        f'if [ "$1" = update-ref ] && [ ! -e {shlex.quote(str(moved))} ]; then\n'
        f"  : > {shlex.quote(str(moved))}\n"
        f"  printf 'update refs/heads/main {theirs} {start}\\n"
        f"create refs/tags/modelctl/r1/dev/2 {their_tag}\\n' |"
        ' "$REAL" update-ref --stdin || exit 99\n'
        "fi",
    )
    on_path(monkeypatch, shim)

    result = cli("promote", "r1", "--to", "staging", cwd=repo)

    assert moved.exists(), "the other writer never ran"
    assert result.exit_code == 3, result.stdout + result.stderr
    assert "dev changed on route r1 while promoting" in result.stderr
    assert git(repo, "rev-parse", "refs/heads/main") == theirs  # the other writer's commit stays
    assert git(repo, "tag", "-l", "modelctl/r1/staging/*") == ""
    route = git(repo, "show", "main:routes/r1.yaml")
    assert "staging" not in route


def test_stale_index_lock_does_not_stop_a_deploy(tmp_path: Path) -> None:
    """CONC-08: a crashed git left `.git/index.lock`; the deploy lands, staged work stays."""
    repo = attested_registry(tmp_path / "reg")
    (repo / "notes.txt").write_text("staged by the user\n")
    git(repo, "add", "notes.txt")
    (repo / ".git" / "index.lock").write_text("")
    head = git(repo, "rev-parse", "HEAD")

    result = cli("deploy", "r1", "--stage", "dev", *DEPLOY_ARGS, cwd=repo)

    assert result.exit_code == 0, result.stderr
    assert git(repo, "rev-parse", "HEAD^") == head
    assert git(repo, "show", "--name-only", "--format=", "HEAD") == "routes/r1.yaml"
    assert "index is locked" in result.stdout + result.stderr
    assert (repo / ".git" / "index.lock").read_text() == ""  # never removed by modelctl
    (repo / ".git" / "index.lock").unlink()
    # Following the printed hint leaves exactly the user's own staged change.
    git(repo, "reset", "-q", "--", "routes/r1.yaml")
    assert git(repo, "status", "--porcelain") == "A  notes.txt"


def test_a_sync_left_by_a_locked_index_is_finished_by_the_next_write(tmp_path: Path) -> None:
    """The index was locked while a deploy synced its route file: the next deploys (with the
    lock still there, then without it) finish that sync instead of blaming the user for it."""
    repo = attested_registry(tmp_path / "reg")
    (repo / "notes.txt").write_text("staged by the user\n")
    git(repo, "add", "notes.txt")
    lock = repo / ".git" / "index.lock"
    lock.write_text("")
    first, second = bindings()

    one = cli("deploy", "r1", "--stage", "dev", *DEPLOY_ARGS, cwd=repo)
    assert one.exit_code == 0, one.stderr
    assert "index is locked" in one.stdout + one.stderr
    two = cli("deploy", "r2", "--stage", "dev", *DEPLOY_ARGS, cwd=repo)  # the lock is still there
    assert two.exit_code == 0, two.stdout + two.stderr
    lock.unlink()
    three = cli(
        "deploy", "r1", "--stage", "dev", "--model", "support-gpt@2026-03",
        "--prompt", "support-system@3", "--fallback", "support-claude@2026-05,support-system@3",
        cwd=repo,
    )  # fmt: skip
    assert three.exit_code == 0, three.stdout + three.stderr

    # The index and the work tree show every deploy; the user's staged file is untouched.
    assert git(repo, "status", "--porcelain") == "A  notes.txt"
    assert git(repo, "diff", "--cached", "HEAD", "--", "routes") == ""
    loc = registry.locate(repo)
    tip = git(repo, "rev-parse", "HEAD")
    assert [e.binding for e in history.events("r1", history.route_records(loc, "r1", tip))] == [
        first,
        second,
    ]
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []


def test_the_hint_for_uncommitted_edits_goes_back_to_the_commit(tmp_path: Path) -> None:
    """A route file with a staged edit and another one on top: following the printed hint
    brings back what is committed, never the index's copy."""
    repo = attested_registry(tmp_path / "reg")
    assert cli("deploy", "r1", "--stage", "dev", *DEPLOY_ARGS, cwd=repo).exit_code == 0
    route = repo / "routes" / "r1.yaml"
    committed = route.read_text()
    route.write_text(committed.replace("support-gpt@2026-05", "support-gpt@2026-03"))
    git(repo, "add", "routes/r1.yaml")  # staged: the index differs from the commit
    route.write_text(committed + "# and a note\n")
    before = refs_snapshot(repo)

    result = cli("deploy", "r1", "--stage", "dev", "--model", "support-gpt@2026-03", cwd=repo)

    assert result.exit_code == 3, result.stdout + result.stderr
    assert "routes/r1.yaml has uncommitted changes" in result.stderr
    assert refs_snapshot(repo) == before
    match = re.search(r"discard them with: (git [^;()]+?)(?: \(|;|$)", result.stderr, re.M)
    assert match, result.stderr
    git(repo, *shlex.split(match.group(1))[1:])
    assert route.read_text() == committed
    assert git(repo, "status", "--porcelain") == ""


# A git that stops before the n-th `update-index` (the one that shows a synced file in the
# user's index) until a file appears, then runs it.
HOLD = (
    'if [ "$1" = update-index ] && [ -n "$HOLD_COUNT" ]; then\n'
    '  n=$(cat "$HOLD_COUNT" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$HOLD_COUNT"\n'
    '  if [ "$n" = 2 ]; then\n'
    '    : > "$HOLD_READY"\n'
    '    while [ ! -e "$HOLD_GO" ]; do sleep 0.02; done\n'
    "  fi\n"
    "fi"
)


def test_a_writer_never_blames_the_user_for_another_writers_sync(tmp_path: Path) -> None:
    """Writer A moved the branch and wrote the route file, but has not updated the index yet;
    writer B, deploying to the same route meanwhile, sees A's sync in flight, not an edit."""
    repo = attested_registry(tmp_path / "reg")
    first, second = bindings()
    assert cli("deploy", "r1", "--stage", "dev", *DEPLOY_ARGS, cwd=repo).exit_code == 0
    shim = write_shim(tmp_path / "shim", HOLD)
    ready, go = tmp_path / "ready", tmp_path / "go"
    env = {
        **os.environ,
        "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}",
        "HOLD_COUNT": str(tmp_path / "count"),
        "HOLD_READY": str(ready),
        "HOLD_GO": str(go),
    }
    second_args = [
        "--model", "support-gpt@2026-03", "--prompt", "support-system@3",
        "--fallback", "support-claude@2026-05,support-system@3",
    ]  # fmt: skip
    module = [sys.executable, "-m", "modelctl", "deploy", "r1", "--stage", "dev"]
    writer_a = subprocess.Popen(
        [*module, *second_args], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    writer_b = None
    try:
        deadline = time.monotonic() + WAIT
        while not ready.exists():
            assert writer_a.poll() is None, writer_a.communicate()
            assert time.monotonic() < deadline, "writer A never reached its sync"
            time.sleep(0.02)
        a_commit = git(repo, "rev-parse", "HEAD")
        # B deploys the first binding again: A's is live now, so B changes the route back.
        writer_b = subprocess.Popen(
            [*module, *DEPLOY_ARGS], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        # B commits, then waits for the work-tree lock A holds; or, refused, it exits.
        while writer_b.poll() is None and git(repo, "rev-parse", "HEAD") == a_commit:
            assert time.monotonic() < deadline, "writer B neither committed nor stopped"
            time.sleep(0.02)
    finally:
        go.write_text("")
        out_a = writer_a.communicate(timeout=WAIT)
        out_b = writer_b.communicate(timeout=WAIT) if writer_b else (b"", b"")
    assert writer_a.returncode == 0, out_a
    assert writer_b is not None and writer_b.returncode == 0, out_b

    tip = git(repo, "rev-parse", "HEAD")
    loc = registry.locate(repo)
    events = history.events("r1", history.route_records(loc, "r1", tip))
    assert [e.binding for e in events] == [first, second, first]
    assert git(repo, "status", "--porcelain") == ""
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []


# Pairs of models a unique binding splits its traffic between (3 x 99 weights).
_PAIRS = [
    ("support-gpt@2026-05", "support-claude@2026-05"),
    ("support-gpt@2026-03", "support-claude@2026-05"),
    ("support-gpt@2026-05", "support-gpt@2026-03"),
]


def unique_binding(k: int) -> lifecycle.Binding:
    """The k-th of 297 different valid dev bindings."""
    first, second = _PAIRS[k // 99]
    weight = 1 + k % 99
    return lifecycle.make_binding(
        [
            {"model": first, "prompt": "support-system@4", "weight": weight},
            {"model": second, "prompt": "support-system@4", "weight": 100 - weight},
        ],
        [],
        None,
    )


def _same_route_worker(
    repo: str, index: int, writers: int, rounds: int, start: Any, out: Any
) -> None:  # pragma: no cover - runs in a child process
    from modelctl.errors import ModelctlError

    results: list[tuple[int, str]] = []
    try:
        for round_ in range(rounds):
            start.wait(timeout=WAIT)
            try:
                binding = unique_binding(round_ * writers + index)
                lifecycle.deploy(registry.locate(Path(repo)), "r1", "dev", binding)
                results.append((0, ""))
            except ModelctlError as exc:
                results.append((int(exc.exit_code), exc.message))
            except Exception as exc:
                results.append((-1, f"{type(exc).__name__}: {exc}"))
    except BaseException as exc:  # the barrier broke: say so instead of vanishing
        results.append((-1, f"{type(exc).__name__}: {exc}"))
    finally:
        out.put((index, results))


def deploy_rounds_under_load(repo: Path, writers: int, rounds: int) -> None:
    """`writers` processes deploy to one route together, `rounds` times, while a process burns
    CPU beside them (a busy machine stretches every window between two git calls)."""
    base = git(repo, "rev-parse", "HEAD")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(writers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_same_route_worker, args=(str(repo), i, writers, rounds, start, out))
        for i in range(writers)
    ]
    try:
        for proc in procs:
            proc.start()
        results = dict(out.get(timeout=WAIT) for _ in procs)
    finally:
        burner.kill()
        burner.wait()
        for proc in procs:
            proc.join(timeout=WAIT)
            if proc.is_alive():
                proc.kill()
    failed = [(i, r) for i, rs in results.items() for r in rs if r[0] != 0]
    assert not failed, f"{len(failed)} of {writers * rounds} deploys failed: {failed}"
    commits, tags = lifecycle_state(repo, base)
    assert len(commits) == writers * rounds == len(tags)  # every binding was new: none a no-op
    tip = git(repo, "rev-parse", "HEAD")
    events = history.events("r1", history.route_records(registry.locate(repo), "r1", tip))
    assert [e.seq for e in events] == list(range(1, writers * rounds + 1))
    assert git(repo, "status", "--porcelain") == ""
    assert list((repo / ".git" / "modelctl" / "pending-sync").glob("*")) == []


def test_concurrent_deploys_to_one_route_in_one_work_tree(tmp_path: Path) -> None:
    """8 writers on one route and one work tree, 5 rounds, on a busy machine: all succeed."""
    deploy_rounds_under_load(attested_registry(tmp_path / "reg"), 8, 5)


@pytest.mark.slow
def test_concurrent_deploys_to_one_route_many_rounds(tmp_path: Path) -> None:
    deploy_rounds_under_load(attested_registry(tmp_path / "reg"), 8, 25)
