"""Progress bars for long work: shown on a terminal (stderr), silent otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def bar(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; a rich progress bar on an interactive stderr, a no-op elsewhere."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    # stderr, like every message: stdout stays clean for --json and pipes.
    console = Console(stderr=True)
    with Progress(*columns, transient=True, console=console, redirect_stdout=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
