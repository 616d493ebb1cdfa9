"""Run modelctl where the file system really says no: a read-only bind mount of the registry,
or a copy of it on a tiny tmpfs filled to the last byte, each in a private mount namespace
(`unshare`), so the host sees nothing and the mounts vanish with the process.

Root ignores file modes, but not a read-only mount or a full file system, so this works when
the tests run as root (as CI does). `confined()` runs this file as a script inside the
namespace; it prints one JSON record per command.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


@functools.cache
def namespace() -> list[str] | None:
    """The `unshare` prefix that gives this user a mount namespace it may mount in, or None."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    with tempfile.TemporaryDirectory() as target:
        for prefix in (["unshare", "-rm"], ["unshare", "-m"]):
            probe = subprocess.run(
                [*prefix, "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0"', target],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return prefix
    return None


def confined(
    mode: str,
    repo: Path,
    commands: list[list[str]],
    *,
    scratch: Path | None = None,
    tmpdir_on_it: bool = False,
) -> list[dict[str, Any]]:
    """Run `commands` (modelctl arguments; a first word `git` or `find` runs that) in `repo`,
    after making it read-only (`mode="readonly"`), after copying it onto a full tmpfs mounted
    at `scratch` (`mode="full"`; `tmpdir_on_it`: the system temporary folder is on it too), or
    with only its `.git/objects` on a full tmpfs (`mode="full-objects"`; `scratch` stages it).
    Returns, per command: exit code, stdout, stderr, refs before and after."""
    prefix = namespace()
    assert prefix is not None
    spec = {
        "mode": mode,
        "repo": str(repo),
        "scratch": str(scratch) if scratch else None,
        "tmpdir_on_it": tmpdir_on_it,
        "commands": commands,
    }
    proc = subprocess.run(
        [*prefix, sys.executable, __file__, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def _fill(folder: Path) -> None:
    """Write to `folder` until its file system is full, to the last byte."""
    with (folder / "filler").open("wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            while True:
                try:
                    fh.write(b"\0" * size)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break


def _refs(cwd: str) -> str:
    return subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def _main(spec: dict[str, Any]) -> None:  # pragma: no cover - runs inside the namespace
    env = dict(os.environ)
    if spec["mode"] == "readonly":
        cwd = spec["repo"]
        subprocess.run(["mount", "--bind", "-o", "ro", cwd, cwd], check=True)
    elif spec["mode"] == "full-objects":
        # Only git's object store is full: modelctl's own folder can still be written.
        cwd = spec["repo"]
        objects = Path(cwd) / ".git" / "objects"
        stage = Path(spec["scratch"])
        shutil.copytree(objects, stage, symlinks=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(objects)], check=True)
        shutil.copytree(stage, objects, symlinks=True, dirs_exist_ok=True)
        _fill(objects)
    else:
        scratch = Path(spec["scratch"])
        scratch.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(scratch)], check=True)
        shutil.copytree(spec["repo"], scratch / "reg", symlinks=True)
        cwd = str(scratch / "reg")
        if spec["tmpdir_on_it"]:
            (scratch / "tmp").mkdir()
            env["TMPDIR"] = str(scratch / "tmp")
        _fill(scratch)
    for args in spec["commands"]:
        argv = args if args[0] in ("git", "find") else [sys.executable, "-m", "modelctl", *args]
        before = _refs(cwd)
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, check=False)
        record = {
            "args": args,
            "code": proc.returncode,
            "stdout": proc.stdout,
            "stderr": proc.stderr,
            "refs_before": before,
            "refs_after": _refs(cwd),
        }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":  # pragma: no cover - runs inside the namespace
    _main(json.loads(sys.argv[1]))
