"""Every file in examples/ is valid, and the demo runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import EXAMPLE, cli, cli_proc, make_registry


def test_example_registry_validates(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "ex")
    result = cli("validate", "--json", cwd=repo)
    assert result.exit_code == 0, result.stdout
    payload = result.json
    assert isinstance(payload, dict)
    yaml_files = {p.relative_to(EXAMPLE).as_posix() for p in EXAMPLE.rglob("*.yaml")}
    assert payload["files"] == len(yaml_files)


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    result = cli_proc("demo", str(tmp_path / "demo"), "--json", cwd=tmp_path, timeout=300)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["ok"] is True
    assert all(step["exit_code"] == step["expect"] for step in payload["steps"])
    # The rollback after a completed canary is a plain one: back to the last good release,
    # past the canary, not hidden behind --to.
    rollback = next(s for s in payload["steps"] if s["argv"][1] == "rollback")
    assert "--to" not in rollback["argv"]
    assert "restores modelctl/support-bot/production/1" in rollback["output"]
    assert "skipped modelctl/support-bot/production/2" in rollback["output"]


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine\n")
    result = cli("demo", str(tmp_path / "x"))
    assert result.exit_code == 2 and "not empty" in result.stderr
