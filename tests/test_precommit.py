"""The hooks in .pre-commit-hooks.yaml, run by the real pre-commit (`pre-commit try-repo`).

pre-commit clones the hook repository, builds a virtualenv and pip-installs it, as it would for
a user. The hook repository is a snapshot of this checkout (tracked and new files, committed),
so the test sees the hooks as they are on disk. Every scenario runs in its own registry, all
of them at once, since each try-repo builds its own environment.

pip inside the hook environment finds modelctl's dependencies already installed here (through
PYTHONPATH); when this environment also has the build backend (hatchling), nothing is
downloaded at all.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, Result, cli, git, make_registry
from fakekeys import fake_keys

pytestmark = pytest.mark.slow

PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def test_hooks_manifest_is_valid() -> None:
    from pre_commit.clientlib import load_manifest

    hooks = {h["id"]: h for h in load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))}
    assert set(hooks) >= {"modelctl-validate", "modelctl-verify"}
    assert hooks["modelctl-validate"]["language"] == "python"
    assert hooks["modelctl-verify"]["stages"][0] == "pre-push"


_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", "*.egg-info", ".*_cache", "build", "dist", "out"
)


def _snapshot_checkout(dest: Path) -> Path:
    """This source tree as a committed repository pre-commit can clone: the files git tracks
    (and untracked ones it does not ignore) in a checkout, else the tree minus build debris."""
    if (ROOT / ".git").exists():
        listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
        for rel in filter(None, listed.split("\0")):
            source = ROOT / rel
            if source.is_file() and not source.is_symlink():
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    else:
        shutil.copytree(ROOT, dest, ignore=_NOT_SOURCE)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "modelctl checkout snapshot")
    return dest


def _pip_env(cache: Path) -> dict[str, str]:
    env = {
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "PIP_CACHE_DIR": str(cache),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    if importlib.util.find_spec("hatchling") is not None:
        # Fully offline: build with the backend installed here instead of fetching one.
        env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_CONFIG_FILE=os.devnull)
    return env


# --- scenarios: each edits a fresh registry and stages the change ----------------------------

NEW_MODEL = """\
apiVersion: modelctl/v1
kind: Model
name: support-gpt
version: 2026-07
provider: openai
provider_model: gpt-4.1-2025-04-14
provider_key: {key}
"""


def good(repo: Path) -> None:
    (repo / "models/support-gpt/2026-07.yaml").write_text(
        NEW_MODEL.format(key="env:OPENAI_API_KEY")
    )


def modified_version(repo: Path) -> None:
    path = repo / "models/support-gpt/2026-03.yaml"
    path.write_text(path.read_text().replace("GPT-4o mini", "GPT-4o mini, quietly changed"))


def raw_key(repo: Path) -> None:
    (repo / "models/support-gpt/2026-07.yaml").write_text(
        NEW_MODEL.format(key=fake_keys()["openai-project"])
    )


def broken_reference(repo: Path) -> None:
    path = repo / "routes/support-bot.yaml"
    path.write_text(path.read_text().replace("support-gpt@2026-05", "support-gpt@2099-01"))


def edited_rows(repo: Path) -> None:
    with (repo / "datasets/support-golden/2026-04.jsonl").open("a") as fh:
        fh.write('{"id": "extra", "input": "a row added after the version was pinned"}\n')


def deleted_version(repo: Path) -> None:
    (repo / "prompts/support-system/3.yaml").unlink()


def lifecycle(repo: Path) -> None:
    """A clean history: the route file only ever changed through modelctl."""
    result = cli("deploy", "support-bot", "--stage", "dev", "--model", "support-gpt@2026-05",
                 cwd=repo)  # fmt: skip
    assert result.exit_code == 0, result.stderr


def rewritten_history(repo: Path) -> None:
    """A version file changed in a commit that skipped the hooks: verify must catch it."""
    lifecycle(repo)
    modified_version(repo)
    git(repo, "commit", "-q", "-am", "quietly edit a committed version")


SCENARIOS: dict[str, tuple[Callable[[Path], None], str]] = {
    "good": (good, "modelctl-validate"),
    "modified_version": (modified_version, "modelctl-validate"),
    "raw_key": (raw_key, "modelctl-validate"),
    "broken_reference": (broken_reference, "modelctl-validate"),
    "deleted_version": (deleted_version, "modelctl-validate"),
    "edited_rows": (edited_rows, "modelctl-validate"),
    "verify_good": (lifecycle, "modelctl-verify"),
    "verify_rewritten": (rewritten_history, "modelctl-verify"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Every scenario, run concurrently through `pre-commit try-repo`."""
    base = tmp_path_factory.mktemp("precommit")
    hook_repo = _snapshot_checkout(base / "modelctl")
    env = {**os.environ, **_pip_env(base / "pip-cache")}
    procs: dict[str, subprocess.Popen[str]] = {}
    for name, (edit, hook) in SCENARIOS.items():
        repo = make_registry(base / name, routes=hook == "modelctl-validate")
        edit(repo)
        git(repo, "add", "-A")
        args = [*PRE_COMMIT, "try-repo", str(hook_repo), hook, "--verbose"]
        if hook == "modelctl-verify":
            args += ["--hook-stage", "pre-push", "--all-files"]
        procs[name] = subprocess.Popen(
            args,
            cwd=repo,
            env={**env, "PRE_COMMIT_HOME": str(base / f"home-{name}")},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        results[name] = Result(proc.returncode, out, "")
    return results


def test_a_good_commit_passes(runs: dict[str, Result]) -> None:
    result = runs["good"]
    assert result.exit_code == 0, result.stdout
    assert "modelctl validate" in result.stdout and "Passed" in result.stdout
    assert "2 file(s) valid" in result.stdout  # modelctl.yaml and the new model


def test_a_modified_version_file_fails(runs: dict[str, Result]) -> None:
    result = runs["modified_version"]
    assert result.exit_code == 1, result.stdout
    assert "Failed" in result.stdout
    assert (
        "models/support-gpt/2026-03.yaml: was modified, but committed versions are immutable"
        in result.stdout
    )
    text = " ".join(result.stdout.split())  # as one line, whatever width it was wrapped to
    assert "add a new version instead" in text


def test_a_raw_key_fails_without_printing_it(runs: dict[str, Result]) -> None:
    result = runs["raw_key"]
    assert result.exit_code == 1, result.stdout
    assert "models/support-gpt/2026-07.yaml" in result.stdout
    assert "provider_key" in result.stdout and "OpenAI" in result.stdout
    assert fake_keys()["openai-project"] not in result.stdout


def test_a_broken_reference_fails(runs: dict[str, Result]) -> None:
    result = runs["broken_reference"]
    assert result.exit_code == 1, result.stdout
    assert "routes/support-bot.yaml" in result.stdout
    assert "model support-gpt@2099-01 does not exist in the registry" in result.stdout


def test_a_deleted_version_fails_though_no_file_is_staged(runs: dict[str, Result]) -> None:
    result = runs["deleted_version"]
    assert result.exit_code == 1, result.stdout
    assert "prompts/support-system/3.yaml: was deleted" in result.stdout


def test_edited_dataset_rows_fail_through_their_manifest(runs: dict[str, Result]) -> None:
    result = runs["edited_rows"]
    assert result.exit_code == 1, result.stdout
    text = " ".join(result.stdout.split())  # as one line, whatever width it was wrapped to
    assert re.search(
        r"datasets/support-golden/2026-04\.yaml:\d+: sha256: does not match the content of "
        r"datasets/support-golden/2026-04\.jsonl \(sha256 [0-9a-f]{64}\); a pinned file must "
        r"not change \(add a new version instead\)",
        text,
    ), result.stdout


def test_verify_passes_on_a_clean_history(runs: dict[str, Result]) -> None:
    result = runs["verify_good"]
    assert result.exit_code == 0, result.stdout
    assert "modelctl verify" in result.stdout and "history verified" in result.stdout


def test_verify_fails_on_a_rewritten_version(runs: dict[str, Result]) -> None:
    result = runs["verify_rewritten"]
    assert result.exit_code == 1, result.stdout
    assert "immutable" in result.stdout
    assert "models/support-gpt/2026-03.yaml was modified after it was committed" in result.stdout
