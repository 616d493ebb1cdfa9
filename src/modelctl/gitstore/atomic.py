"""Writing a file so that readers see the old content or the new, never part of it.

Every file modelctl writes outside git's own object store goes through `write_atomic`: caches
under `.git/modelctl/`, files it puts in the work tree, exported configs and `-o` outputs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def file_mode() -> int:
    """The mode a new file gets from the umask, as git and editors create work-tree files."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, data: str | bytes | Iterable[str], *, mode: int | None = None) -> None:
    """Write `data` (text, bytes, or text chunks, streamed) to a new file beside `path` and
    rename it into place. The folder must exist. On any failure, or an interrupt, the
    temporary file is removed and `path` is untouched. `mode`: the new file's permissions
    (default: private to the user, as the temporary file is created)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if isinstance(data, bytes):
            with os.fdopen(fd, "wb") as raw:
                raw.write(data)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as text:
                if isinstance(data, str):
                    text.write(data)
                else:
                    for chunk in data:
                        text.write(chunk)
        if mode is not None:
            Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a write to the open file: say which file it was for
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_cache(path: Path, data: str | bytes) -> bool:
    """Write a cache file atomically, making its folder; False, with nothing changed, when the
    file system says no (a read-only registry, a full disk, no permission). A cache that
    cannot be written only costs speed, so every cache writer goes through here."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
    except OSError:
        return False
    return True
