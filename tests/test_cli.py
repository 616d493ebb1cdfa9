"""CLI wiring: help for every command, each exit code, --json, -C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli, cli_proc, git, refs_snapshot
from modelctl.errors import ExitCode


def all_commands() -> list[list[str]]:
    from modelctl.cli import app
    from modelctl.cli.app import app as root

    assert app is not None
    out: list[list[str]] = [[]]
    for command in root.registered_commands:
        out.append([command.name or command.callback.__name__])  # type: ignore[union-attr]
    for group in root.registered_groups:
        out.append([group.name])  # type: ignore[list-item]
        for command in group.typer_instance.registered_commands:  # type: ignore[union-attr]
            out.append([group.name, command.name or command.callback.__name__])  # type: ignore[list-item, union-attr]
    return out


@pytest.mark.parametrize("command", all_commands(), ids=lambda c: " ".join(c) or "modelctl")
def test_help_for_every_command(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout


def test_version() -> None:
    from modelctl import __version__

    assert cli("--version").stdout.strip() == f"modelctl {__version__}"


def test_exit_0_and_json(registry: Path) -> None:
    result = cli("list", "model", "--json", cwd=registry)
    assert result.exit_code == ExitCode.OK
    payload = result.json
    assert isinstance(payload, dict)
    assert [(i["name"], i["version"]) for i in payload["items"]] == [
        ("judge-gpt", "2026-01"),
        ("support-claude", "2026-05"),
        ("support-gpt", "2026-03"),
        ("support-gpt", "2026-05"),
    ]


def test_exit_1_check_failed(registry: Path) -> None:
    (registry / "models/support-gpt/2026-03.yaml").write_text("kind: Model\n")
    assert cli("validate", cwd=registry).exit_code == ExitCode.CHECK_FAILED


def test_exit_2_usage(registry: Path) -> None:
    assert cli("list", "--no-such-flag", cwd=registry).exit_code == ExitCode.USAGE
    result = cli("show", "Bad@Name", cwd=registry)
    assert result.exit_code == ExitCode.USAGE
    assert "invalid name" in result.stderr


def test_exit_3_conflict(registry: Path) -> None:
    before = refs_snapshot(registry)
    result = cli(
        "add",
        "model",
        "support-gpt",
        "2026-03",
        "--provider",
        "openai",
        "--provider-model",
        "x",
        cwd=registry,
    )
    assert result.exit_code == ExitCode.CONFLICT, result.stderr
    assert "models/support-gpt/2026-03.yaml already exists" in result.stderr
    assert refs_snapshot(registry) == before


def test_exit_4_not_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "modelctl.yaml").write_text("apiVersion: modelctl/v1\n")
    result = cli("list", cwd=tmp_path, env={"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert result.exit_code == ExitCode.GIT
    assert "not inside a git repository" in result.stderr


def test_exit_4_no_registry(tmp_path: Path) -> None:
    result = cli("list", cwd=tmp_path)
    assert result.exit_code == ExitCode.GIT
    assert "no modelctl registry found" in result.stderr


def test_exit_5_internal_error_is_one_line(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelctl.registry import catalog

    def boom(*args: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(catalog, "list_rows", boom)
    result = cli("list", cwd=registry)
    assert result.exit_code == ExitCode.INTERNAL
    assert "internal error: RuntimeError: kaboom" in result.stderr
    assert "Traceback" not in result.stderr and "--debug" in result.stderr


def test_exit_130_interrupted(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelctl.registry import catalog

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog, "list_rows", interrupted)
    assert cli("list", cwd=registry).exit_code == ExitCode.INTERRUPTED


def test_sigterm_in_a_real_process(registry: Path, tmp_path: Path) -> None:
    # A slow signing program keeps `modelctl add` inside git while the signal arrives.
    slow = tmp_path / "slow-gpg"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    git(registry, "config", "gpg.program", str(slow))
    git(registry, "config", "user.signingkey", "ABCDEF")
    before = refs_snapshot(registry)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelctl",
            "add",
            "model",
            "m",
            "1",
            "--provider",
            "p",
            "--provider-model",
            "x",
        ],
        cwd=registry,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    assert refs_snapshot(registry) == before
    assert git(registry, "status", "--porcelain") == ""


def test_json_errors_are_json(registry: Path) -> None:
    result = cli("show", "nope@1", "--json", cwd=registry)
    assert result.exit_code == ExitCode.USAGE
    payload = json.loads(result.stdout)
    assert (
        payload["error"]["exit_code"] == 2 and "no version 'nope@1'" in payload["error"]["message"]
    )


def test_dash_c(registry: Path, tmp_path: Path) -> None:
    result = cli("-C", str(registry / "models"), "list", "route", "--json", cwd=tmp_path)
    assert result.exit_code == 0
    payload = result.json
    assert isinstance(payload, dict) and payload["items"][0]["name"] == "support-bot"


def test_show_reports_usages(registry: Path) -> None:
    payload = cli("show", "prompts/support-system@4", "--json", cwd=registry).json
    assert isinstance(payload, dict)
    assert payload["ref"] == "prompt/support-system@4"
    assert {u["field"] for u in payload["used_by"]} == {
        "stages.dev.targets[0].prompt",
        "stages.dev.fallback[0].prompt",
        "stages.staging.targets[0].prompt",
        "stages.staging.fallback[0].prompt",
    }
    route = cli("show", "support-bot", "--json", cwd=registry).json
    assert isinstance(route, dict) and route["kind"] == "route"


def test_show_ambiguous(registry: Path) -> None:
    (registry / "prompts/support-gpt").mkdir()
    (registry / "prompts/support-gpt/2026-03.yaml").write_text(
        "apiVersion: modelctl/v1\nkind: Prompt\nname: support-gpt\nversion: 2026-03\ntemplate: hi\n"
    )
    git(registry, "add", "-A")
    git(registry, "commit", "-qm", "same name, other kind")
    result = cli("show", "support-gpt@2026-03", cwd=registry)
    assert result.exit_code == ExitCode.USAGE and "ambiguous" in result.stderr


def test_real_process_end_to_end(registry: Path) -> None:
    result = cli_proc("validate", "--json", cwd=registry)
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True
    assert cli_proc("show", "nope@1", cwd=registry).exit_code == 2


def test_schema_command(tmp_path: Path) -> None:
    model = cli("schema", "model").json
    assert isinstance(model, dict) and model["title"] == "Model"
    assert cli("schema", "widget").exit_code == 2
    assert cli("schema", "--write", str(tmp_path / "s")).exit_code == 0
    assert cli("schema", "--check", str(tmp_path / "s")).exit_code == 0
    (tmp_path / "s" / "route.json").write_text("{}")
    assert cli("schema", "--check", str(tmp_path / "s")).exit_code == 1


def test_only_the_command_being_run_is_built() -> None:
    from modelctl.cli import _app_for
    from modelctl.cli.app import app

    single = _app_for(["-C", "somewhere", "--debug", "status", "support-bot", "--json"])
    assert [c.name for c in single.registered_commands] == ["status"]
    assert single.registered_groups == []
    assert [g.name for g in _app_for(["eval", "gate", "r"]).registered_groups] == ["eval"]
    for argv in (["--help"], ["-C", "x", "--help"], ["statuz"], [], ["--version"]):
        assert _app_for(argv) is app
