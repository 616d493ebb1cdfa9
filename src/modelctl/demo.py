"""`modelctl demo`: build the bundled example as a fresh git registry and walk through it.

Each step runs the real `modelctl` command in a subprocess, exactly as a user would type it, and
checks its exit code, so the demo doubles as an end-to-end smoke test of an installation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelctl.errors import CheckFailed, UsageError
from modelctl.gitstore import run_git

DEMO_IDENTITY = {"user.name": "modelctl demo", "user.email": "demo@modelctl.invalid"}


@dataclass
class Step:
    title: str
    argv: list[str]  # the command a user types, starting with "modelctl" or "git"
    expect: int = 0  # the exit code this step must end with
    note: str = ""
    output: str = ""
    exit_code: int | None = None


@dataclass
class DemoResult:
    directory: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.exit_code == s.expect for s in self.steps)


def example_dir() -> Path:
    """The bundled example registry: inside the package (wheel) or the source tree."""
    package = Path(__file__).resolve().parent
    for candidate in (
        package / "examples" / "registry",
        package.parent.parent / "examples" / "registry",
    ):
        if (candidate / "modelctl.yaml").is_file():
            return candidate
    raise UsageError("the bundled example registry is missing from this installation; reinstall")


def prepare(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="modelctl-demo-"))
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty", hint="give the demo a new or empty folder")
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


def _git_config(repo: Path, key: str, value: str) -> None:
    run_git(["config", "--local", key, value], cwd=repo)


def _run(step: Step, cwd: Path, env: dict[str, str]) -> None:
    if step.argv[0] == "modelctl":
        argv = [sys.executable, "-m", "modelctl", *step.argv[1:]]
    else:
        argv = step.argv
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    step.exit_code = proc.returncode
    step.output = (proc.stdout + proc.stderr).rstrip()


def steps(example: Path) -> list[Step]:
    """The walk-through; later capabilities add their steps here."""
    golden = "datasets/support-golden/2026-04.jsonl"
    return [
        Step("Check every manifest: schema, references, stages, secrets", ["modelctl", "validate"]),
        Step("What the registry holds", ["modelctl", "list"]),
        Step(
            "One model version and everything that uses it",
            ["modelctl", "show", "support-claude@2026-05"],
        ),
        Step(
            "Add a model version from flags (one commit)",
            [
                "modelctl",
                "add",
                "model",
                "support-gpt",
                "2026-07",
                "--provider",
                "openai",
                "--provider-model",
                "gpt-4.1-2025-04-14",
                "--provider-key",
                "env:OPENAI_API_KEY",
                "--param",
                "temperature=0.2",
                "--base",
                "support-gpt@2026-05",
                "--description",
                "Full GPT-4.1 for hard cases",
            ],
        ),
        Step("Registry history so far is plain git", ["git", "log", "--oneline"]),
        Step(
            "A committed version is immutable: edit one and validate refuses",
            ["modelctl", "validate"],
            expect=1,
            note=f"the demo appended a line to {golden.replace('.jsonl', '.yaml')}",
        ),
        Step("Put it back", ["git", "checkout", "--", "datasets/support-golden/2026-04.yaml"]),
        Step(
            "Secrets never live in the registry: a raw key is refused without being printed",
            ["modelctl", "validate", "models/support-gpt/2026-08.yaml"],
            expect=1,
            note="the demo wrote a model version holding a fake OpenAI key",
        ),
        Step(
            "Everything is valid again", ["modelctl", "validate"], note="the demo removed that file"
        ),
    ]


def _before(step: Step, repo: Path) -> None:
    """Edits a step needs in the work tree before it runs (the demo plays the user here)."""
    if step.title.startswith("A committed version is immutable"):
        with (repo / "datasets/support-golden/2026-04.yaml").open("a") as fh:
            fh.write("rows_note: edited after the fact\n")
    elif step.title.startswith("Secrets never live"):
        # Built from pieces so no key-shaped literal sits in modelctl's own source.
        fake = "sk-" + "proj-" + "x" * 20 + "T3Blbk" + "FJ" + "y" * 20
        (repo / "models/support-gpt/2026-08.yaml").write_text(
            "apiVersion: modelctl/v1\nkind: Model\nname: support-gpt\nversion: 2026-08\n"
            f"provider: openai\nprovider_model: gpt-4.1\nparameters:\n  api_key: {fake}\n"
        )
    elif step.title.startswith("Everything is valid again"):
        (repo / "models/support-gpt/2026-08.yaml").unlink(missing_ok=True)


def run(repo: Path, on_step: Callable[[Step], None]) -> DemoResult:
    """Build the demo registry in `repo` (see `prepare`) and run every step."""
    example = example_dir()
    shutil.copytree(example, repo, dirs_exist_ok=True)
    run_git(["init", "-q", "-b", "main"], cwd=repo)
    for key, value in DEMO_IDENTITY.items():
        _git_config(repo, key, value)
    _git_config(repo, "commit.gpgSign", "false")
    run_git(["add", "-A"], cwd=repo)
    run_git(["commit", "-q", "--no-gpg-sign", "-m", "Import the example registry"], cwd=repo)
    env = dict(os.environ)
    env.pop("GIT_DIR", None)
    env.pop("GIT_INDEX_FILE", None)
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "100"
    result = DemoResult(str(repo))
    for step in steps(example):
        _before(step, repo)
        _run(step, repo, env)
        result.steps.append(step)
        on_step(step)
        if step.exit_code != step.expect:
            raise CheckFailed(
                f"demo step {step.title!r} exited {step.exit_code}, expected {step.expect}",
                hint=f"the demo registry is left at {repo} for a look",
            )
    return result
