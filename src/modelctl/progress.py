"""Progress of long work: reported by core code, drawn by whoever runs it.

Core code (verify, the importers) only reports: `with progress.bar("checking", total=n) as
advance: ... advance(1)`. It never draws. The CLI installs a renderer at start-up
(`modelctl.render.progress.bar`: a rich bar on an interactive stderr, silent elsewhere);
until one is installed, progress is silent. This keeps terminal code out of the layers below
render while their long loops still show progress on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

Advance = Callable[[int], None]
Renderer = Callable[[str, int | None], AbstractContextManager[Advance]]


@contextmanager
def _silent(description: str, total: int | None = None) -> Iterator[Advance]:
    yield lambda n: None


_renderer: Renderer = _silent


def install(renderer: Renderer) -> None:
    """Draw every later `bar` with `renderer` (the CLI installs the terminal's)."""
    global _renderer
    _renderer = renderer


def bar(description: str, total: int | None = None) -> AbstractContextManager[Advance]:
    """Yield `advance(n)`, drawn by the installed renderer (a no-op when none is)."""
    return _renderer(description, total)
