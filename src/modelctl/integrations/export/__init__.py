"""Exports of what a stage serves, for systems that never read git: gateways and services.

`bindings` resolves routes at a revision into self-contained bindings (models and prompts
inlined); `litellm` turns them into a LiteLLM proxy config.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from modelctl.errors import UsageError
from modelctl.gitstore.atomic import file_mode, write_atomic


def write_text(path: Path, text: str | Iterable[str]) -> Path:
    """Write `text` (or text chunks) to `path` atomically: readers see the old file or the new
    one, never half; an error (in the chunks too) leaves the old file as it was."""
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: folder {path.parent} does not exist")
    try:
        # Read by other services, as any file the user creates would be.
        write_atomic(path, text, mode=file_mode())
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    return path
