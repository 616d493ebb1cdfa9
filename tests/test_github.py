"""GitHub Actions: action.yml and the example workflows against GitHub's published schemas
(as check-jsonschema ships them, offline), the commands they run against modelctl's own
command line, and the action's run step executed for real on a registry."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import EXAMPLE, ROOT, cli, git, make_registry

ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / "examples" / "github").glob("*.yml"))
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_action_matches_the_published_schema() -> None:
    proc = check_jsonschema("vendor.github-actions", ACTION)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflows_match_the_published_schema() -> None:
    assert [w.name for w in WORKFLOWS] == ["coverage.yml", "promote.yml", "validate.yml"]
    proc = check_jsonschema("vendor.github-workflows", *WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_broken_workflow_is_caught(tmp_path: Path) -> None:
    """The schema check has teeth: a job without runs-on fails it."""
    data = yaml.safe_load((ROOT / "examples/github/validate.yml").read_text())
    del data["jobs"]["validate"]["runs-on"]
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(data))
    assert check_jsonschema("vendor.github-workflows", broken).returncode == 1


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _triggers(path: Path) -> dict[str, Any]:
    data = _load(path)
    return dict(data.get("on") or data[True])  # PyYAML reads the key `on` as True


def test_workflows_run_on_the_events_the_issue_names() -> None:
    examples = ROOT / "examples" / "github"
    validate = _triggers(examples / "validate.yml")
    assert "routes/**" in validate["pull_request"]["paths"]
    promote = _triggers(examples / "promote.yml")
    assert promote["push"]["branches"] == ["main"]
    assert _triggers(examples / "coverage.yml")["schedule"][0]["cron"]
    text = (examples / "promote.yml").read_text()
    assert "secrets.MODELCTL_SIGNING_KEY" in text and "gpg.format ssh" in text


def _modelctl_steps() -> list[tuple[str, dict[str, str]]]:
    steps = []
    for workflow in WORKFLOWS:
        for job in _load(workflow)["jobs"].values():
            for step in job["steps"]:
                if str(step.get("uses", "")).split("@")[0].endswith("/modelctl"):
                    steps.append((workflow.name, step["with"]))
    return steps


def _parse_command(text: str) -> None:
    """Parse a modelctl command line as modelctl would, without running it: with `--help` last,
    an unknown command or option is still an error, and nothing else happens."""
    args = shlex.split(EXPRESSION.sub("x", text))
    result = cli(*args, "--help")
    if result.exit_code != 0:
        raise ValueError(f"modelctl {text}: {' '.join(result.stderr.split())}")
    assert "Usage" in result.stdout


def test_workflow_commands_are_modelctl_commands() -> None:
    steps = _modelctl_steps()
    commands = [s["command"] for _, s in steps]
    assert any(c.startswith("validate") for c in commands)
    assert any(c.startswith("promote") and "--push" in c for c in commands)
    assert any(c.startswith("coverage") and "--min-coverage 95" in c for c in commands)
    summaries = [s["summary"] for _, s in steps if s.get("summary")]
    assert "report --format markdown" in summaries
    assert any("--traces" in s for s in summaries)
    for _, values in steps:
        for key in ("command", "summary"):
            if values.get(key):
                _parse_command(values[key])  # raises on an unknown command or option


def test_the_command_parser_refuses_what_modelctl_would() -> None:
    with pytest.raises(ValueError, match=r"No such option: --bogus"):
        _parse_command("promote support-bot --to production --bogus")
    with pytest.raises(ValueError, match=r"No such command 'promot'"):
        _parse_command("promot support-bot")


def test_action_declares_its_interface() -> None:
    action = _load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) >= {"command", "json", "version", "summary", "fail-on-error"}
    assert action["inputs"]["command"]["required"] is True
    outputs = action["outputs"]
    assert outputs["exit-code"]["value"] == "${{ steps.run.outputs.exit-code }}"
    assert outputs["json"]["value"] == "${{ steps.run.outputs.json }}"
    install = next(s for s in action["runs"]["steps"] if s.get("name") == "Install modelctl")
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    for step in action["runs"]["steps"]:
        # Inputs reach scripts through the environment only, never pasted into the code.
        assert "${{" not in step.get("run", ""), step.get("name")


# --- the run step, executed ------------------------------------------------------------------


@dataclass
class ActionRun:
    exit_code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str


def _outputs(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        name, _, delimiter = line.partition("<<")
        value = []
        for item in lines:
            if item == delimiter:
                break
            value.append(item)
        found[name] = "\n".join(value)
    return found


def run_action(inputs: dict[str, str], cwd: Path, tmp: Path) -> ActionRun:
    """Run the action's `run` step as the runner would: inputs (or their defaults) in its env."""
    action = _load(ACTION)
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "run")
    assert step["shell"] == "python"
    script = tmp / "action-run.py"
    script.write_text(step["run"])
    values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    values.update(inputs)
    env = dict(os.environ)
    for key, expression in step["env"].items():
        match = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", expression)
        assert match, expression
        env[key] = values[match[1]]
    output, summary = tmp / "github-output", tmp / "step-summary.md"
    output.write_text("")
    env.update(
        GITHUB_ACTIONS="true",
        GITHUB_OUTPUT=str(output),
        GITHUB_STEP_SUMMARY=str(summary),
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    text = summary.read_text() if summary.exists() else ""
    return ActionRun(proc.returncode, proc.stdout, proc.stderr, _outputs(output.read_text()), text)


def _break_reference(repo: Path) -> None:
    route = repo / "routes" / "support-bot.yaml"
    route.write_text(route.read_text().replace("support-gpt@2026-05", "support-gpt@2099-01"))


def test_action_json_result_annotations_and_summary(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg")
    _break_reference(repo)
    run = run_action({"command": "validate", "json": "true"}, repo, tmp_path)
    assert run.exit_code == 1, run.stderr
    assert run.outputs["exit-code"] == "1"
    result = json.loads(run.outputs["json"])
    assert result["ok"] is False
    assert {p["path"] for p in result["problems"]} == {"routes/support-bot.yaml"}
    assert re.search(
        r"^::error file=routes/support-bot\.yaml,line=\d+,title=modelctl validate::"
        r"stages\.dev\.targets\[0\]\.model: model support-gpt@2099-01 does not exist",
        run.stdout,
        re.MULTILINE,
    ), run.stdout
    assert "❌ `modelctl validate` (exit 1)" in run.summary
    assert "| routes/support-bot.yaml |" in run.summary
    assert run.summary.count("## modelctl report") == 1  # the default summary command, once


def test_action_plain_output_passes_through(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg")
    run = run_action({"command": "modelctl validate", "summary": ""}, repo, tmp_path)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.outputs == {"exit-code": "0", "json": ""}
    assert "file(s) valid" in run.stderr
    assert "✅ `modelctl validate` (exit 0)" in run.summary
    assert "modelctl report" not in run.summary


def test_action_reports_errors_and_can_leave_the_step_green(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg")
    inputs = {
        "command": 'lineage "nothing@1" --up',
        "json": "true",
        "fail-on-error": "false",
        "summary": "",
    }
    run = run_action(inputs, repo, tmp_path)
    assert run.exit_code == 0, run.stderr
    assert run.outputs["exit-code"] == "2"
    assert json.loads(run.outputs["json"])["error"]["type"] == "UsageError"
    assert "::error title=modelctl lineage::no version 'nothing@1'" in run.stdout
    assert "**no version 'nothing@1'" in run.summary


def test_action_refuses_an_empty_command(tmp_path: Path) -> None:
    run = run_action({"command": "  "}, tmp_path, tmp_path)
    assert run.exit_code == 2
    assert "::error title=modelctl::the command input is empty" in run.stdout


# --- annotations from modelctl itself --------------------------------------------------------


def test_validate_annotations_name_the_file_in_the_repository(tmp_path: Path) -> None:
    """With the registry in a subfolder, annotations carry the path GitHub knows the file by."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo / "ml-registry")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "registry in a subfolder")
    _break_reference(repo / "ml-registry")
    result = cli("validate", cwd=repo / "ml-registry", env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    assert re.search(
        r"^::error file=ml-registry/routes/support-bot\.yaml,line=\d+,title=modelctl validate::stages\.",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    quiet = cli("validate", cwd=repo / "ml-registry")
    assert "::error" not in quiet.stdout


# --- workflow (2), played on real repositories -----------------------------------------------


def _workflow_step(workflow: str, name: str) -> dict[str, Any]:
    steps = _load(ROOT / "examples" / "github" / workflow)["jobs"]["promote"]["steps"]
    found: dict[str, Any] = next(s for s in steps if s.get("name") == name)
    return found


def _with_env(text: str) -> str:
    return text.replace("${{ env.ROUTE }}", "support-bot").replace("${{ env.STAGE }}", "production")


def test_promote_workflow_gates_signs_and_pushes(tmp_path: Path) -> None:
    from signing import allow, make_ssh_key

    outputs = ROOT / "examples" / "outputs"
    work = make_registry(tmp_path / "work", routes=False)
    bot = make_ssh_key(tmp_path / "keys", "bot", "modelctl-bot@users.noreply.github.com")
    allow(work, bot)
    for args in (
        ["deploy", "support-bot", "--stage", "dev", "--model", "support-gpt@2026-03",
         "--prompt", "support-system@3", "--fallback", "support-claude@2026-05,support-system@3"],
        ["promote", "support-bot", "--to", "staging"],
        ["promote", "support-bot", "--to", "production"],
        ["deploy", "support-bot", "--stage", "dev", "--model", "support-gpt@2026-05",
         "--prompt", "support-system@4", "--fallback", "support-claude@2026-05,support-system@4"],
        ["promote", "support-bot", "--to", "staging"],
        ["eval", "run", "support-bot", "--to", "production", "--dataset", "support-golden@2026-04",
         "--evaluator", "contains", "--candidate-outputs", str(outputs / "candidate.jsonl"),
         "--baseline-outputs", str(outputs / "baseline.jsonl")],
    ):  # fmt: skip
        result = cli(*args, cwd=work)
        assert result.exit_code == 0, result.stderr
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(work, "push", "-q", str(remote), "main", "--tags")
    runner = tmp_path / "runner"
    git(tmp_path, "clone", "-q", str(remote), str(runner))  # actions/checkout, fetch-depth 0
    sign = _workflow_step("promote.yml", "Sign as the bot")
    proc = subprocess.run(
        ["bash", "-e", "-c", sign["run"]],
        cwd=runner,
        env={**os.environ, "SIGNING_KEY": bot.private.read_text(), "RUNNER_TEMP": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    gate = _workflow_step("promote.yml", "Gate")["with"]
    run = run_action({k: _with_env(v) for k, v in gate.items()}, runner, tmp_path)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert json.loads(run.outputs["json"])["passed"] is True
    promote = _workflow_step("promote.yml", "Promote")["with"]
    run = run_action({k: _with_env(v) for k, v in promote.items()}, runner, tmp_path)
    assert run.exit_code == 0, run.stdout + run.stderr
    result = json.loads(run.outputs["json"])
    assert result["signed"] is True and result["pushed"] == "origin"
    assert git(remote, "rev-parse", "main") == result["commit"]
    assert git(remote, "rev-parse", f"{result['tag']}^{{commit}}") == result["commit"]
    assert "gpgsig -----BEGIN SSH SIGNATURE-----" in git(remote, "cat-file", "-p", result["commit"])
    assert "## modelctl report" in run.summary
