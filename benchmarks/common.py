"""Timing helpers shared by the benchmarks: medians of whole-process wall times."""

from __future__ import annotations

import compileall
import importlib.util
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

MODELCTL = [sys.executable, "-m", "modelctl"]


def ensure_bytecode() -> None:
    """Compile modelctl's modules before anything is timed.

    An installed wheel ships bytecode. An editable install writes it on first import, unless
    PYTHONDONTWRITEBYTECODE is set: then every timed process recompiles modelctl from source
    (about 50 ms) and a benchmark would measure the compiler, not modelctl.
    """
    spec = importlib.util.find_spec("modelctl")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(folder, quiet=1)


ensure_bytecode()


def run(argv: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = None) -> None:
    proc = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[:500]}"
        )


def median_time(
    fn: Callable[[], None], repeat: int = 7, before: Callable[[], None] | None = None
) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def drop_cache(repo: Path) -> Callable[[], None]:
    def drop() -> None:
        shutil.rmtree(repo / ".git" / "modelctl", ignore_errors=True)

    return drop


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def cpu_time(
    fn: Callable[[], None], repeat: int = 7, before: Callable[[], None] | None = None
) -> float:
    """Median CPU time (user + sys) of the child processes `fn` runs and waits for.

    Robust to a machine busy with other work, where wall time is not; git processes that a
    timed command starts and waits for are counted too.
    """
    import resource

    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = resource.getrusage(resource.RUSAGE_CHILDREN)
        fn()
        end = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(end.ru_utime - start.ru_utime + end.ru_stime - start.ru_stime)
    return statistics.median(times)


# The start-up floor: a typer app with two commands, as little as a typer CLI can be.
MINIMAL_TYPER = """
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "x") -> None:
    print(name)
@app.command()
def bye() -> None:
    pass
app()
"""
