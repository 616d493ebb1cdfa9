"""Exports of what a stage serves, for systems that never read git: gateways and services.

`bindings` resolves routes at a revision into self-contained bindings (models and prompts
inlined); `litellm` turns them into a LiteLLM proxy config.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modelctl.errors import UsageError


def write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically: readers see the old file or the new one, never half."""
    folder = path.parent if str(path.parent) else Path()
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).chmod(0o644)  # mkstemp makes it private; a config is read by other services
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    return path
