"""The committed schemas match the models; a built wheel works in a fresh environment."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import EXAMPLE, ROOT, git
from modelctl.registry import schemas


def test_committed_schemas_match_the_models() -> None:
    assert schemas.drift(ROOT / "schemas") == [], "run: modelctl schema --write schemas"


def test_example_schemas_match_the_models() -> None:
    folder = EXAMPLE / ".modelctl" / "schemas"
    assert schemas.drift(folder) == [], f"run: modelctl schema --write {folder}"


@pytest.mark.slow
def test_wheel_installs_and_validates_in_a_fresh_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(dist.glob("modelctl-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run(
        [
            py,
            "-c",
            "from modelctl.registry import schemas; from modelctl.integrations import demo; "
            "print(schemas.shipped_dir()); print(demo.example_dir())",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout.split()
    assert all(str(venv) in line for line in where), where
    reg = tmp_path / "reg"
    shutil.copytree(EXAMPLE, reg)
    git(reg, "init", "-q", "-b", "main")
    git(reg, "add", "-A")
    git(reg, "commit", "-qm", "example")
    modelctl = venv / "bin" / "modelctl"
    ok = subprocess.run(
        [modelctl, "validate", "--json"], cwd=reg, capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    (reg / "models/support-gpt/2026-03.yaml").write_text("apiVersion: modelctl/v1\nkind: Model\n")
    bad = subprocess.run(
        [modelctl, "validate", "--json"], cwd=reg, capture_output=True, text=True, env=env
    )
    assert bad.returncode == 1
    schema = subprocess.run([modelctl, "schema", "model"], capture_output=True, text=True, env=env)
    assert json.loads(schema.stdout)["title"] == "Model"
    demo = subprocess.run(
        [modelctl, "demo", str(tmp_path / "demo"), "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert demo.returncode == 0, demo.stderr
    assert json.loads(demo.stdout)["ok"] is True
