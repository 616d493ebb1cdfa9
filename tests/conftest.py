"""Hermetic test environment: own HOME, git config and identity; real git repositories."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "registry"
# git exports these to hooks; a test must never inherit them.
_SCRUB = [k for k in os.environ if k.startswith(("GIT_", "GNUPG"))] + ["SSH_AUTH_SOCK"]


@pytest.fixture(scope="session", autouse=True)
def hermetic_env() -> Iterator[Path]:
    """A fresh HOME and global git config for the whole run; the user's config is never read."""
    home = Path(tempfile.mkdtemp(prefix="mctl-home-"))
    config = home / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
        "[safe]\n\tdirectory = *\n"
        "[commit]\n\tgpgSign = false\n[tag]\n\tgpgSign = false\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        for key in _SCRUB:
            mp.delenv(key, raising=False)
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(config))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("GNUPGHOME", str(home / "gnupg"))
        mp.setenv("LC_ALL", "C")
        mp.setenv("TZ", "UTC")
        mp.setenv("NO_COLOR", "1")
        mp.setenv("COLUMNS", "200")
        mp.delenv("GITHUB_ACTIONS", raising=False)
        mp.delenv("GITHUB_STEP_SUMMARY", raising=False)
        yield home
    shutil.rmtree(home, ignore_errors=True)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git directly (fixtures never go through modelctl's GitStore)."""
    full = dict(os.environ)
    full.update(env or {})
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=full, check=False
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def make_registry(path: Path, *, example: bool = True, routes: bool = True) -> Path:
    """A git repository holding the example registry (or an empty one), committed.

    `routes=False` leaves out the example's hand-written route file, so that every route
    change in the test's history is a lifecycle event.
    """
    if example:
        shutil.copytree(EXAMPLE, path, dirs_exist_ok=True)
        if not routes:
            (path / "routes" / "support-bot.yaml").unlink()
    else:
        path.mkdir(parents=True, exist_ok=True)
        from modelctl.registry.scaffold import SETTINGS_TEMPLATE

        (path / "modelctl.yaml").write_text(SETTINGS_TEMPLATE.format(name="empty"))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "example registry")
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "reg")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> object:
        import json

        return json.loads(self.stdout)


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """Run modelctl's real entry point in this process (fast), capturing its output."""
    from modelctl.cli import main

    old_cwd = Path.cwd()
    old_argv = sys.argv
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with pytest.MonkeyPatch.context() as mp:
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        try:
            if cwd is not None:
                os.chdir(cwd)
            sys.argv = ["modelctl", *args]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main()
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = old_argv
            os.chdir(old_cwd)
    return Result(code, out.getvalue(), err.getvalue())


def cli_proc(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Result:
    """Run modelctl as a real subprocess."""
    full = dict(os.environ)
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "modelctl", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def refs_snapshot(repo: Path) -> str:
    """Every ref and its value: byte-identical before and after a refused write."""
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
