"""Shell completion (typer's): the script for the user's shell, its install, and the answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MODELCTL = str(Path(sys.executable).parent / "modelctl")
BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=60
    )


def complete_bash(line: str) -> list[str]:
    words = line.split(" ")
    proc = run(
        [MODELCTL],
        {
            "_MODELCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        },
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_commands_and_options_complete() -> None:
    assert complete_bash("modelctl lin") == ["lineage"]
    assert set(complete_bash("modelctl export ")) == {"litellm", "json"}
    assert {"--up", "--down", "--depth", "--format"} <= set(complete_bash("modelctl lineage --"))


def test_zsh_gets_descriptions() -> None:
    proc = run(
        [MODELCTL],
        {"_MODELCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "modelctl promote --"},
    )
    assert proc.returncode == 0, proc.stderr
    assert '"--to":"The stage to promote into."' in proc.stdout


@needs_bash
def test_show_completion_in_bash_works_once_evaluated() -> None:
    # `; true` keeps bash alive, so typer sees bash as the parent shell.
    script = run([str(BASH), "-c", f"{MODELCTL} --show-completion; true"])
    assert script.returncode == 0, script.stderr
    assert "complete -o default -F _modelctl_completion modelctl" in script.stdout
    probe = (
        f'eval "$({MODELCTL} --show-completion)"; '
        "COMP_WORDS=(modelctl prom); COMP_CWORD=1; _modelctl_completion modelctl; "
        'echo "${COMPREPLY[@]}"'
    )
    proc = run([str(BASH), "-c", probe], {"PATH": f"{Path(MODELCTL).parent}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["promote"]


@needs_bash
def test_install_completion_for_bash(tmp_path: Path) -> None:
    proc = run([str(BASH), "-c", f"{MODELCTL} --install-completion; true"], {"HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "bash completion installed" in proc.stdout
    installed = tmp_path / ".bash_completions" / "modelctl.sh"
    assert installed.is_file()
    assert f"source '{installed}'" in (tmp_path / ".bashrc").read_text()
