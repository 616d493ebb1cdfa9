"""Every command shown in README.md and docs/ runs against the demo registry.

Fenced blocks marked ```bash are executed line by line (a trailing `\\` continues a line; a
trailing `# exit N` says which exit code to expect; `cd DIR` moves the following commands into
DIR); blocks marked ```bash fresh run the same way in an empty folder instead, as a newcomer
starting from nothing would; blocks marked ```bash illustrative, and blocks in other languages,
are not run.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, cli, cli_proc

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    fresh: bool  # run in an empty folder, not in the demo registry
    lines: list[tuple[str, int]]  # (command line, expected exit code)


def blocks(path: Path) -> list[Block]:
    """Every runnable block of a Markdown file."""
    out = []
    for lang, rest, body in _FENCE.findall(path.read_text()):
        if lang != "bash" or "illustrative" in rest:
            continue
        lines = []
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = re.search(r"\s#\s*exit (\d+)", line)
            lines.append((line.split(" #", 1)[0].strip(), int(match.group(1)) if match else 0))
        out.append(Block("fresh" in rest.split(), lines))
    return out


RUNNABLE = [doc for doc in DOCS if blocks(doc)]


def test_the_guides_a_newcomer_follows_are_run() -> None:
    """A doc whose blocks all turned illustrative would silently drop out of the test below."""
    assert {"README.md", "quickstart.md", "lifecycle.md", "evals.md", "traces.md"} <= {
        doc.name for doc in RUNNABLE
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = tmp_path_factory.mktemp("docs")
    result = cli_proc("demo", str(workspace / "registry"), "--json", cwd=workspace, timeout=300)
    assert result.exit_code == 0, result.stderr
    shutil.copytree(ROOT / "examples" / "outputs", workspace / "outputs")
    return workspace


@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: p.name)
def test_documented_commands_run(doc: Path, demo: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    shutil.copytree(demo, workspace, symlinks=True)
    for number, block in enumerate(blocks(doc)):
        cwd = tmp_path / f"fresh-{number}" if block.fresh else workspace / "registry"
        cwd.mkdir(exist_ok=True)
        for line, expect in block.lines:
            argv = shlex.split(line)
            if argv[0] == "cd" and len(argv) == 2:
                cwd = cwd / argv[1]
                continue
            assert argv[0] == "modelctl", f"{doc.name}: only modelctl and cd run here: {line}"
            result = cli(*argv[1:], cwd=cwd)
            assert result.exit_code == expect, (
                f"{doc.name}: `{line}` exited {result.exit_code}:\n{result.stderr}{result.stdout}"
            )


def test_every_command_is_documented_in_the_readme() -> None:
    from modelctl.cli.app import app

    readme = (ROOT / "README.md").read_text()
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    missing = [n for n in names if n and f"modelctl {n}" not in readme]
    assert missing == [], f"README.md does not show: {missing}"
