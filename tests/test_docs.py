"""Every command shown in README.md and docs/ runs against the demo registry.

Fenced blocks marked ```bash are executed line by line (a trailing `\\` continues a line; a
trailing `# exit N` says which exit code to expect); blocks marked ```bash illustrative, and
blocks in other languages, are not.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, cli, cli_proc

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def commands(path: Path) -> list[tuple[str, int]]:
    """(command line, expected exit code) for every runnable command in a Markdown file."""
    out = []
    for lang, rest, body in _FENCE.findall(path.read_text()):
        if lang != "bash" or "illustrative" in rest:
            continue
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            expect = 0
            match = re.search(r"\s#\s*exit (\d+)", line)
            if match:
                expect = int(match.group(1))
            out.append((line.split(" #", 1)[0].strip(), expect))
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("docs")
    result = cli_proc("demo", str(workspace / "registry"), "--json", cwd=workspace, timeout=300)
    assert result.exit_code == 0, result.stderr
    shutil.copytree(ROOT / "examples" / "outputs", workspace / "outputs")
    return workspace


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_documented_commands_run(doc: Path, demo: Path, tmp_path: Path) -> None:
    runnable = commands(doc)
    if not runnable:
        pytest.skip(f"{doc.name} shows no runnable commands")
    workspace = tmp_path / "ws"
    shutil.copytree(demo, workspace, symlinks=True)
    for line, expect in runnable:
        argv = shlex.split(line)
        assert argv[0] == "modelctl", f"{doc.name}: only modelctl commands run here: {line}"
        result = cli(*argv[1:], cwd=workspace / "registry")
        assert result.exit_code == expect, (
            f"{doc.name}: `{line}` exited {result.exit_code}:\n{result.stderr}{result.stdout}"
        )


def test_every_command_is_documented_in_the_readme() -> None:
    from modelctl.cli.app import app

    readme = (ROOT / "README.md").read_text()
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    missing = [n for n in names if n and f"modelctl {n}" not in readme]
    assert missing == [], f"README.md does not show: {missing}"
