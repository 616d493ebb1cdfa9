"""Every command shown in README.md and docs/ runs, as a newcomer following the page would run it.

Fenced blocks marked ```bash are executed line by line (a trailing `\\` continues a line; a
trailing `# exit N` says which exit code to expect; `cd DIR` moves the following commands into
DIR) in the registry `modelctl demo` builds, and in nothing else: no file is put beside it that
the demo does not make, so a page that needs a file must say how to get it. Blocks marked
```bash fresh run the same way in an empty folder instead, as a newcomer starting from nothing
would. Each page starts from a new demo registry and a new empty folder, and like a shell, each
kind of block goes on where the page's previous block of that kind left off (its files and its
`cd`). Blocks marked ```bash illustrative, and blocks in other languages, are not run.
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
    """A folder holding exactly what `modelctl demo registry` leaves there, and nothing else."""
    workspace = tmp_path_factory.mktemp("docs")
    result = cli_proc("demo", "registry", "--json", cwd=workspace, timeout=300)
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in workspace.iterdir()] == ["registry"]
    return workspace


def run_page(doc: Path, demo: Path, tmp_path: Path) -> None:
    """Run a page's blocks in order, as one reader in one shell would."""
    workspace = tmp_path / "ws"
    shutil.copytree(demo, workspace, symlinks=True)
    (tmp_path / "fresh").mkdir()
    where = {True: tmp_path / "fresh", False: workspace / "registry"}
    for block in blocks(doc):
        cwd = where[block.fresh]
        for line, expect in block.lines:
            argv = shlex.split(line)
            if argv[0] == "cd" and len(argv) == 2:
                cwd = (cwd / argv[1]).resolve()
                assert cwd.is_dir(), f"{doc.name}: `{line}`: no such folder"
                continue
            assert argv[0] == "modelctl", f"{doc.name}: only modelctl and cd run here: {line}"
            result = cli(*argv[1:], cwd=cwd)
            assert result.exit_code == expect, (
                f"{doc.name}: `{line}` exited {result.exit_code}:\n{result.stderr}{result.stdout}"
            )
        where[block.fresh] = cwd


@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: p.name)
def test_documented_commands_run(doc: Path, demo: Path, tmp_path: Path) -> None:
    run_page(doc, demo, tmp_path)


def test_a_page_cannot_lean_on_files_the_reader_does_not_have(demo: Path, tmp_path: Path) -> None:
    """The example outputs ship with modelctl, but a reader has them only where the demo
    writes them: a page that points beside the registry fails."""
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\nmodelctl eval run support-bot --to production --dataset "
        "support-golden@2026-04 --candidate-outputs ../outputs/candidate.jsonl "
        "--baseline-outputs ../outputs/baseline.jsonl --evaluator contains --no-commit\n```\n"
    )
    with pytest.raises(AssertionError, match="exited 2"):
        run_page(page, demo, tmp_path / "run")
    (tmp_path / "ok").mkdir()
    page.write_text(page.read_text().replace("../outputs/", "outputs/"))
    run_page(page, demo, tmp_path / "ok")


def test_a_shell_stays_where_the_previous_block_left_it(demo: Path, tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```bash fresh\nmodelctl init mine\ncd mine\n```\n\ntext\n\n"
        "```bash fresh\nmodelctl validate\n```\n"
    )
    (tmp_path / "run").mkdir()
    run_page(page, demo, tmp_path / "run")  # validate runs inside mine/, the registry


@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: p.name)
def test_a_page_says_where_its_commands_run(doc: Path) -> None:
    """A reader cannot guess that a block needs the demo's registry: before its first block that
    runs there, the page says so."""
    text = doc.read_text()
    for match in _FENCE.finditer(text):
        lang, rest, _ = match.groups()
        if lang == "bash" and not {"illustrative", "fresh"} & set(rest.split()):
            before = text[: match.start()]
            assert "modelctl demo" in before or "demo registry" in before, (
                f"{doc.name}: say that the block at offset {match.start()} runs in the registry "
                "`modelctl demo` builds (or mark it `fresh` and start it from nothing)"
            )
            return


def test_every_command_is_documented_in_the_readme() -> None:
    from modelctl.cli.app import app

    readme = (ROOT / "README.md").read_text()
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    missing = [n for n in names if n and f"modelctl {n}" not in readme]
    assert missing == [], f"README.md does not show: {missing}"
