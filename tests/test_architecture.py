"""The layout shows the layers, and imports flow one way: down.

Every module of `modelctl` is parsed (imports inside functions included) and each import is
checked against the layer order below. A module may import its own package and any lower
layer; never a higher one, nor a peer on its own layer. Only `modelctl.gitstore` runs git.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "modelctl"

# Highest first. Names on one line are peers: neither imports the other. The package root
# (`modelctl`: `__version__`) is below everything; `__main__` only starts the CLI.
LAYERS: list[tuple[str, ...]] = [
    ("modelctl.__main__",),
    ("modelctl.cli",),
    ("modelctl.render",),
    ("modelctl.integrations",),
    ("modelctl.audit",),
    ("modelctl.traces", "modelctl.evals"),
    ("modelctl.lifecycle",),
    ("modelctl.registry",),
    ("modelctl.gitstore",),
    ("modelctl.errors", "modelctl.progress"),
    ("modelctl",),
]

# Modules outside gitstore that start processes, and why (none of them runs git itself).
SUBPROCESS_ALLOWED = {
    "modelctl.evals.evaluators": "runs a command evaluator the registry declares",
    "modelctl.integrations.demo": "runs the walkthrough's commands as a user types them",
}
# GitStore's entry points that take raw git arguments; outside gitstore, ask a named question.
RAW_GIT_METHODS = {"git", "out", "records"}
RAW_GIT_FUNCTIONS = {"run_git"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module, or a name inside one)
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def imports(name: str, tree: ast.Module, known: set[str]) -> list[Import]:
    """Every modelctl module (or module of a name) `name` imports, at the top or in a function."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(name, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name} (line {node.lineno}): import modelctl absolutely"
            base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append(Import(name, full if full in known else base, node.lineno))
    return [i for i in found if i.target == "modelctl" or i.target.startswith("modelctl.")]


def layer_of(module: str) -> tuple[int, str]:
    """(rank, the layer's package) of a module: the longest package prefix in LAYERS."""
    best: tuple[int, str] | None = None
    for rank, peers in enumerate(LAYERS):
        for package in peers:
            inside = module == package or module.startswith(package + ".")
            if inside and (best is None or len(package) > len(best[1])):
                best = (rank, package)
    assert best is not None, f"{module} is in no layer: add its package to LAYERS"
    return best


def upward_imports(found: list[Import]) -> list[str]:
    problems = []
    for item in found:
        rank, package = layer_of(item.module)
        target_rank, target_package = layer_of(item.target)
        if target_package == package:
            continue
        if target_rank <= rank:
            problems.append(
                f"{item.module} (line {item.line}) imports {item.target}: {target_package} is "
                f"{'a peer of' if target_rank == rank else 'above'} {package}"
            )
    return problems


def test_every_module_is_in_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_imports_flow_down_the_layers() -> None:
    trees = modules()
    known = set(trees)
    found = [i for name, tree in trees.items() for i in imports(name, tree, known)]
    assert len(found) > 100  # the parser sees the imports (inside functions too)
    assert upward_imports(found) == []


def test_the_check_sees_an_upward_import_inside_a_function() -> None:
    tree = ast.parse("def f():\n    from modelctl.render import progress\n")
    known = {"modelctl.render", "modelctl.render.progress", "modelctl.audit.verify"}
    found = imports("modelctl.audit.verify", tree, known)
    assert [i.target for i in found] == ["modelctl.render.progress"]
    assert upward_imports(found) == [
        "modelctl.audit.verify (line 2) imports modelctl.render.progress: "
        "modelctl.render is above modelctl.audit"
    ]
    peers = imports("modelctl.evals.runner", ast.parse("from modelctl.traces import spans"), set())
    assert upward_imports(peers) == [
        "modelctl.evals.runner (line 1) imports modelctl.traces: "
        "modelctl.traces is a peer of modelctl.evals"
    ]


def git_runners(name: str, tree: ast.Module) -> list[str]:
    """What in `name` runs git or builds git's arguments itself."""
    problems = []
    for node in ast.walk(tree):
        where = f"{name} (line {getattr(node, 'lineno', '?')})"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in RAW_GIT_METHODS:
                problems.append(f"{where} calls .{func.attr}(...) with its own git arguments")
            if isinstance(func, ast.Name) and func.id in RAW_GIT_FUNCTIONS:
                problems.append(f"{where} calls {func.id}(...)")
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelctl")
        ):
            for alias in node.names:
                if alias.name in RAW_GIT_FUNCTIONS:
                    problems.append(f"{where} imports {alias.name}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            if "subprocess" in names and name not in SUBPROCESS_ALLOWED:
                problems.append(f"{where} imports subprocess")
        elif isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            is_git = isinstance(first, ast.Constant) and first.value == "git"
            if is_git and name not in SUBPROCESS_ALLOWED:
                problems.append(f"{where} builds a git command line")
        elif isinstance(node, ast.Constant) and node.value == "--end-of-options":
            problems.append(f"{where} builds git arguments (--end-of-options)")
    return problems


def test_only_gitstore_runs_git() -> None:
    problems = [
        problem
        for name, tree in modules().items()
        if layer_of(name)[1] != "modelctl.gitstore"
        for problem in git_runners(name, tree)
    ]
    assert problems == []


@pytest.mark.parametrize(
    "source",
    [
        'store.git("log", "--oneline")',
        'loc.store.out("rev-list", tip)',
        'store.records("for-each-ref", FIELDS, "refs/tags/")',
        "from modelctl.gitstore import run_git",
        "import subprocess",
        'args = ["ls-tree", "--end-of-options", rev]',
        'subprocess.run(["git", "status"])',
    ],
)
def test_the_check_sees_git_run_outside_gitstore(source: str) -> None:
    assert git_runners("modelctl.lifecycle.history", ast.parse(source))


def test_the_documented_layers_are_the_tested_ones() -> None:
    readme = (SRC.parent / "README.md").read_text(encoding="utf-8")
    for peers in LAYERS[1:-1]:
        for package in peers:
            assert f"`{package.removeprefix('modelctl.')}" in readme, package
