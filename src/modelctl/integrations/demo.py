"""`modelctl demo`: build the bundled example as a fresh git registry and walk through it.

Each step runs the real `modelctl` (or `git`) command in a subprocess, exactly as a user would
type it, and checks its exit code, so the demo doubles as an end-to-end check of an
installation. The story plays out over a simulated week: each step's commits carry a date an
hour after the previous step's, so `resolve --at` has a past to answer about.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from modelctl.errors import CheckFailed, UsageError
from modelctl.gitstore import GitStore
from modelctl.integrations.demo_traces import FALLBACK_TRACE

DEMO_IDENTITY = {"user.name": "modelctl demo", "user.email": "demo@modelctl.invalid"}
ROUTE = "support-bot"


@dataclass
class Step:
    title: str
    argv: list[str]  # the command a user types, starting with "modelctl" or "git"
    expect: int = 0  # the exit code this step must end with
    note: str = ""
    output: str = ""
    exit_code: int | None = None
    before: Callable[[Path], str] | None = field(default=None, repr=False)  # plays the user


@dataclass
class DemoResult:
    directory: str
    signed: bool
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.exit_code == s.expect for s in self.steps)


def _bundled(name: str) -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "examples" / name, package.parent.parent / "examples" / name):
        if candidate.is_dir():
            return candidate
    raise UsageError(f"the bundled examples/{name} is missing from this installation; reinstall")


def example_dir() -> Path:
    """The bundled example registry: inside the package (wheel) or the source tree."""
    return _bundled("registry")


def prepare(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="modelctl-demo-"))
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty", hint="give the demo a new or empty folder")
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


def _setup_signing(store: GitStore, repo: Path) -> bool:
    """A throwaway SSH key for the demo registry, when ssh-keygen is installed."""
    if shutil.which("ssh-keygen") is None:
        return False
    key = repo / ".git" / "demo-signing-key"
    proc = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "demo", "-f", str(key)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        return False
    keytype, blob = key.with_suffix(".pub").read_text().split()[:2]
    signers = repo / ".modelctl" / "allowed_signers"
    with signers.open("a") as fh:
        fh.write(f'{DEMO_IDENTITY["user.email"]} namespaces="git" {keytype} {blob}\n')
    store.set_config("gpg.format", "ssh")
    store.set_config("user.signingkey", str(key.with_suffix(".pub")))
    settings = repo / "modelctl.yaml"
    settings.write_text(settings.read_text().replace("signing: optional", "signing: required"))
    return True


def _edit_version(repo: Path) -> str:
    path = "datasets/support-golden/2026-04.yaml"
    with (repo / path).open("a") as fh:
        fh.write("rows_note: edited after the fact\n")
    return f"the demo appended a line to {path}"


def _write_secret(repo: Path) -> str:
    # Built from pieces so no key-shaped literal sits in modelctl's own source.
    fake = "sk-" + "proj-" + "x" * 20 + "T3Blbk" + "FJ" + "y" * 20
    (repo / "models/support-gpt/2026-08.yaml").write_text(
        "apiVersion: modelctl/v1\nkind: Model\nname: support-gpt\nversion: 2026-08\n"
        f"provider: openai\nprovider_model: gpt-4.1\nparameters:\n  api_key: {fake}\n"
    )
    return "the demo wrote a model version holding a fake OpenAI key"


def _remove_secret(repo: Path) -> str:
    (repo / "models/support-gpt/2026-08.yaml").unlink(missing_ok=True)
    return "the demo removed that file"


SPANS = "spans.otlp.jsonl"
OUTPUTS = "outputs"  # the eval outputs, as a user's own harness would leave them


def _write_outputs(repo: Path) -> str:
    """The outputs the evals score, put where a user following the docs finds them."""
    shutil.copytree(_bundled("outputs"), repo / OUTPUTS, dirs_exist_ok=True)
    return (
        f"your eval harness wrote each binding's outputs on the golden set to {OUTPUTS}/; "
        "they are not part of the registry and stay uncommitted"
    )


def _export_spans(repo: Path) -> str:
    from modelctl.integrations.demo_traces import write_traces

    write_traces(repo, repo / SPANS)
    return f"the gateway's OpenTelemetry Collector exported the week's production spans to {SPANS}"


def steps(start: datetime) -> list[Step]:
    """The walk-through; later capabilities add their steps here. Paths are relative to the
    demo registry, as a user would type them there."""

    def hour(n: float) -> str:
        return (start + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ")

    golden = ["--dataset", "support-golden@2026-04"]
    base_out = ["--baseline-outputs", f"{OUTPUTS}/baseline.jsonl"]
    old = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3",
           "--fallback", "support-claude@2026-05,support-system@3"]  # fmt: skip
    new = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4",
           "--fallback", "support-claude@2026-05,support-system@4"]  # fmt: skip
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
            ],
        ),
        Step(
            "A committed version is immutable: validate refuses an edit",
            ["modelctl", "validate"],
            expect=1,
            before=_edit_version,
        ),
        Step("Put it back", ["git", "checkout", "--", "datasets/support-golden/2026-04.yaml"]),
        Step(
            "A raw key is refused, without being printed",
            ["modelctl", "validate", "models/support-gpt/2026-08.yaml"],
            expect=1,
            before=_write_secret,
        ),
        Step("Valid again", ["modelctl", "validate"], before=_remove_secret),
        Step(
            "Deploy the current model and prompt to dev",
            ["modelctl", "deploy", ROUTE, "--stage", "dev", *old],
        ),
        Step("Promote it to staging", ["modelctl", "promote", ROUTE, "--to", "staging"]),
        Step(
            "Promote it to production (its first binding: nothing to regress against yet)",
            ["modelctl", "promote", ROUTE, "--to", "production"],
        ),
        Step(
            "A new model and prompt go to dev",
            ["modelctl", "deploy", ROUTE, "--stage", "dev", *new],
        ),
        Step("...and to staging", ["modelctl", "promote", ROUTE, "--to", "staging"]),
        Step(
            "Would promoting to production pass its gates? (no eval yet)",
            ["modelctl", "eval", "gate", ROUTE, "--to", "production"],
            expect=1,
        ),
        Step(
            "Evaluate the candidate against production on the pinned golden set: billing regresses",
            [
                "modelctl",
                "eval",
                "run",
                ROUTE,
                "--to",
                "production",
                *golden,
                "--candidate-outputs",
                f"{OUTPUTS}/candidate-regressed.jsonl",
                *base_out,
                "--evaluator",
                "contains",
                "--run-id",
                "regressed",
            ],
            expect=1,
            before=_write_outputs,
        ),
        Step(
            "The gate refuses the canary: the only eval of this candidate failed",
            ["modelctl", "promote", ROUTE, "--to", "production", "--canary", "10"],
            expect=1,
        ),
        Step(
            "Fixed outputs: no cohort regresses",
            [
                "modelctl",
                "eval",
                "run",
                ROUTE,
                "--to",
                "production",
                *golden,
                "--candidate-outputs",
                f"{OUTPUTS}/candidate.jsonl",
                *base_out,
                "--evaluator",
                "contains",
                "--run-id",
                "fixed",
            ],
        ),
        Step(
            "Canary it at 10% in production",
            ["modelctl", "promote", ROUTE, "--to", "production", "--canary", "10"],
        ),
        Step("Production is mid-canary: status names the candidate", ["modelctl", "status", ROUTE]),
        Step(
            "Complete the canary, saying why",
            ["modelctl", "promote", ROUTE, "--to", "production", "-m", "canary clean for an hour"],
        ),
        Step(
            "A regression is spotted in production 30 minutes later: roll back to the last good "
            "release (past the completed canary, not back to it), with a reason",
            [
                "modelctl",
                "rollback",
                ROUTE,
                "--stage",
                "production",
                "--reason",
                "billing answers cite the old refund policy",
                "--detected-at",
                "30m ago",
            ],
        ),
        Step("What every stage serves now", ["modelctl", "status"]),
        Step("Every production event", ["modelctl", "history", ROUTE, "--stage", "production"]),
        Step(
            "What did production serve before the rollback?",
            ["modelctl", "resolve", ROUTE, "--stage", "production", "--at", hour(20.5)],
        ),
        Step("Audit the whole history", ["modelctl", "verify"]),
        Step(
            "Which registry version answered each production call? (strict: the one live then)",
            ["modelctl", "coverage", SPANS, "--stage", "production", "--strict"],
            before=_export_spans,
        ),
        Step(
            "One trace, end to end: the fallback that answered, and the signed history behind it",
            ["modelctl", "explain", FALLBACK_TRACE, "--traces", SPANS],
        ),
        Step("The five maturity signals", ["modelctl", "report", "--traces", SPANS]),
        Step(
            "Every binding interval, for a warehouse join",
            ["modelctl", "timeline", "--format", "csv"],
        ),
        Step("It is all plain git", ["git", "log", "--oneline", "--decorate=short", "-8"]),
    ]


def run(repo: Path, on_step: Callable[[Step], None]) -> DemoResult:
    """Build the demo registry in `repo` (see `prepare`) and run every step."""
    example = example_dir()
    shutil.copytree(example, repo, dirs_exist_ok=True)
    (repo / "routes" / "support-bot.yaml").unlink(missing_ok=True)  # the demo deploys it
    store = GitStore.init(repo, "main")
    for key, value in DEMO_IDENTITY.items():
        store.set_config(key, value)
    store.set_config("commit.gpgSign", "false")
    signed = _setup_signing(store, repo)
    start = (datetime.now(UTC) - timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    env = dict(os.environ)
    for key in ("GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        env.pop(key, None)
    env.update(NO_COLOR="1", COLUMNS="100")
    stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    store.commit_all("Import the example registry", stamp)
    result = DemoResult(str(repo), signed)
    for index, step in enumerate(steps(start), 1):
        if step.before is not None:
            step.note = step.before(repo)
        when = (start + timedelta(hours=index)).strftime("%Y-%m-%dT%H:%M:%SZ")
        argv = (
            [sys.executable, "-m", "modelctl", *step.argv[1:]]
            if step.argv[0] == "modelctl"
            else step.argv
        )
        proc = subprocess.run(
            argv,
            cwd=repo,
            env={**env, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when},
            capture_output=True,
            text=True,
            check=False,
        )
        step.exit_code = proc.returncode
        step.output = (proc.stdout + proc.stderr).rstrip()
        result.steps.append(step)
        on_step(step)
        if step.exit_code != step.expect:
            raise CheckFailed(
                f"demo step {step.title!r} exited {step.exit_code}, expected {step.expect}",
                hint=f"the demo registry is left at {repo} for a look",
            )
    return result
