"""The references gate checks what a binding names as `validate` would: each model and prompt,
and what they name in turn (base models, datasets, pinned template and data files).

Every broken file here is committed with plain git, as a commit made without the pre-commit
hook would be; `deploy` must refuse it (exit 1, naming the file and the problem) and write
nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from conftest import ROOT, cli, git, make_registry, refs_snapshot

GPT = (Path("models") / "support-gpt" / "2026-05.yaml").as_posix()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_registry(tmp_path / "reg", routes=False)


def commit_file(repo: Path, path: str, text: str) -> None:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", "--", path)
    git(repo, "commit", "-q", "--no-verify", "-m", f"add {path} without the hook")


def new_model(repo: Path, version: str, extra: str = "", base: str | None = None) -> str:
    """A copy of support-gpt@2026-05 as `version` (with `extra` lines, another lineage base)."""
    text = (repo / GPT).read_text().replace("version: 2026-05", f"version: {version}")
    if base is not None:
        text = text.replace("base: support-gpt@2026-03", f"base: {base}")
    path = f"models/support-gpt/{version}.yaml"
    commit_file(repo, path, text + extra)
    return path


def deploy(repo: Path, model: str, prompt: str = "support-system@4") -> tuple[int, str]:
    result = cli("deploy", "r1", "--stage", "dev", "--model", model, "--prompt", prompt, cwd=repo)
    return result.exit_code, result.stdout + result.stderr


def refused(repo: Path, model: str, prompt: str = "support-system@4") -> str:
    before = refs_snapshot(repo)
    code, out = deploy(repo, model, prompt)
    assert code == 1, out
    assert "references" in out
    assert refs_snapshot(repo) == before  # nothing written
    return out


def test_a_model_with_an_unknown_field_is_refused(repo: Path) -> None:
    path = new_model(repo, "2026-07", "surprise: 1\n")
    out = refused(repo, "support-gpt@2026-07")
    assert path in out and "surprise" in out and "unknown field" in out


def test_a_symlinked_model_manifest_is_refused(repo: Path) -> None:
    path = "models/support-gpt/2026-07.yaml"
    os.symlink("2026-05.yaml", repo / path)
    git(repo, "add", "--", path)
    git(repo, "commit", "-q", "--no-verify", "-m", "a symlinked version")
    out = refused(repo, "support-gpt@2026-07")
    assert path in out and "symlink" in out


def test_a_prompt_whose_template_file_changed_is_refused(repo: Path) -> None:
    commit_file(repo, "prompts/support-system/t.txt", "Answer briefly.\n")
    commit_file(
        repo,
        "prompts/support-system/9.yaml",
        "apiVersion: modelctl/v1\nkind: Prompt\nname: support-system\nversion: '9'\n"
        "created: 2026-05-10T12:00:00Z\n"
        "template_file:\n  path: prompts/support-system/t.txt\n  sha256: " + "0" * 64 + "\n",
    )
    out = refused(repo, "support-gpt@2026-05", "support-system@9")
    assert "prompts/support-system/9.yaml" in out and "template_file.sha256" in out


def test_what_a_model_references_is_checked_too(repo: Path) -> None:
    """The lineage base of the deployed model is invalid, or names a dataset that is not there."""
    broken = new_model(repo, "2026-06", "surprise: 1\n")
    new_model(repo, "2026-07", base="support-gpt@2026-06")
    out = refused(repo, "support-gpt@2026-07")
    assert broken in out and "unknown field" in out

    new_model(repo, "2026-08")
    text = (repo / "models/support-gpt/2026-08.yaml").read_text()
    text = text.replace("lineage:\n", "lineage:\n  trained_on: [support-golden@1999-01]\n")
    commit_file(repo, "models/support-gpt/2026-08.yaml", text)
    out = refused(repo, "support-gpt@2026-08")
    assert "models/support-gpt/2026-08.yaml" in out and "support-golden@1999-01" in out


def test_pinned_files_that_match_pass(repo: Path) -> None:
    """A prompt's template file and a model's local dataset whose digests match go through."""
    import hashlib

    body = "Answer briefly.\n"
    commit_file(repo, "prompts/support-system/t.txt", body)
    commit_file(
        repo,
        "prompts/support-system/9.yaml",
        "apiVersion: modelctl/v1\nkind: Prompt\nname: support-system\nversion: '9'\n"
        "created: 2026-05-10T12:00:00Z\ntemplate_file:\n  path: prompts/support-system/t.txt\n"
        f"  sha256: {hashlib.sha256(body.encode()).hexdigest()}\n",
    )
    new_model(repo, "2026-08")
    text = (repo / "models/support-gpt/2026-08.yaml").read_text()
    text = text.replace("lineage:\n", "lineage:\n  trained_on: [support-golden@2026-04]\n")
    commit_file(repo, "models/support-gpt/2026-08.yaml", text)
    code, out = deploy(repo, "support-gpt@2026-08", "support-system@9")
    assert code == 0, out
    # Each pinned file was hashed once, and is known by its blob id from now on.
    assert len(list((repo / ".git" / "modelctl" / "digests").iterdir())) == 2


def test_valid_references_pass_and_say_so(repo: Path) -> None:
    result = cli(
        "deploy", "r1", "--stage", "dev", "--model", "support-gpt@2026-05",
        "--prompt", "support-system@4", "--json", cwd=repo,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    payload = result.json
    assert isinstance(payload, dict)
    (gate,) = [g for g in payload["gates"] if g["gate"] == "references"]
    assert gate["passed"] is True


def test_an_eval_whose_judge_pin_is_invalid_does_not_gate(tmp_path: Path) -> None:
    """The eval gate's judge pins are checked the same way: here the judge's rubric prompt."""
    repo = make_registry(tmp_path / "reg", routes=False)
    outputs = ROOT / "examples" / "outputs"

    def ok(*args: str) -> None:
        result = cli(*args, cwd=repo)
        assert result.exit_code == 0, result.stderr

    ok(
        "deploy",
        "r1",
        "--stage",
        "dev",
        "--model",
        "support-gpt@2026-03",
        "--prompt",
        "support-system@3",
        "--fallback",
        "support-claude@2026-05,support-system@3",
    )
    ok("promote", "r1", "--to", "staging")
    ok("promote", "r1", "--to", "production")
    ok(
        "deploy",
        "r1",
        "--stage",
        "dev",
        "--model",
        "support-gpt@2026-05",
        "--prompt",
        "support-system@4",
        "--fallback",
        "support-claude@2026-05,support-system@4",
    )
    ok("promote", "r1", "--to", "staging")  # fmt: skip
    rubric = (repo / "prompts/groundedness-rubric/1.yaml").read_text()
    rubric = rubric.replace('version: "1"', 'version: "2"') + "surprise: 1\n"
    commit_file(repo, "prompts/groundedness-rubric/2.yaml", rubric)
    script = tmp_path / "judge.py"
    script.write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    row = json.loads(line)\n"
        "    print(json.dumps({'id': row['id'], 'score': 5, 'reason': 'ok'}))\n"
    )
    commit_file(
        repo,
        "judges/grounded/2.yaml",
        "apiVersion: modelctl/v1\nkind: Judge\nname: grounded\nversion: '2'\n"
        "created: 2026-01-15T10:00:00Z\nmodel: judge-gpt@2026-01\n"
        "rubric: groundedness-rubric@2\nevaluator: groundedness\nthreshold: 4\n"
        f"command: [{json.dumps(sys.executable)}, {json.dumps(str(script))}]\n",
    )
    run = cli(
        "eval", "run", "r1", "--to", "production", "--dataset", "support-golden@2026-04",
        "--candidate-outputs", str(outputs / "candidate.jsonl"),
        "--baseline-outputs", str(outputs / "baseline.jsonl"),
        "--evaluator", "contains", "--judge", "grounded@2", "--json", cwd=repo,
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr + run.stdout
    before = refs_snapshot(repo)
    promote = cli("promote", "r1", "--to", "production", cwd=repo)
    assert promote.exit_code == 1, promote.stdout + promote.stderr
    assert "prompts/groundedness-rubric/2.yaml" in promote.stderr
    assert "unknown field" in promote.stderr
    assert refs_snapshot(repo) == before
