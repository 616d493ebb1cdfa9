"""One exception hierarchy; each error knows its exit code and how to say what to do next."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (README, "Exit codes")."""

    OK = 0
    CHECK_FAILED = 1  # a check said no: validation, a gate, a threshold
    USAGE = 2  # the command line or an input file is wrong
    CONFLICT = 3  # the registry moved under us, a version exists, a lock is held
    GIT = 4  # git or the environment failed
    INTERNAL = 5  # a bug in modelctl
    INTERRUPTED = 130


class ModelctlError(Exception):
    """Base of every error modelctl reports on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_json(self) -> dict[str, object]:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": int(self.exit_code),
        }


class UsageError(ModelctlError):
    """A bad argument, reference or input file."""

    exit_code = ExitCode.USAGE


class ConflictError(ModelctlError):
    """Something already exists, or the registry changed while we worked."""

    exit_code = ExitCode.CONFLICT


class GitError(ModelctlError):
    """git failed, or the environment is not what modelctl needs."""

    exit_code = ExitCode.GIT


_FILE_SYSTEM_SAYS_NO = {
    errno.EROFS: (
        "read-only file system",
        "the registry is on a read-only mount: read commands work as they are; run writes in "
        "a writable clone",
    ),
    errno.EACCES: (
        "permission denied",
        "this user may not write there: run as a user who may, or in your own clone (read "
        "commands work as they are)",
    ),
    errno.ENOSPC: (
        "no space left on device",
        "free some space and run the command again (read commands work as they are)",
    ),
}
_FILE_SYSTEM_SAYS_NO[errno.EPERM] = _FILE_SYSTEM_SAYS_NO[errno.EACCES]
_FILE_SYSTEM_SAYS_NO[errno.EDQUOT] = ("disk quota exceeded", _FILE_SYSTEM_SAYS_NO[errno.ENOSPC][1])


def file_system_error(exc: OSError) -> GitError | None:
    """The environment error an OSError means when the file system refused (read-only, no
    permission, full): exit 4, naming the path and the cause. None for anything else.

    Writes move refs last, in one transaction, so a refusal on the way leaves the registry as
    it was: the message says so."""
    said = _FILE_SYSTEM_SAYS_NO.get(exc.errno or 0)
    if said is None:
        return None
    cause, hint = said
    where = exc.filename if exc.filename is not None else "a file modelctl needed"
    return GitError(f"cannot write {where}: {cause}; nothing was changed", hint=hint)


class RegistryNotFound(GitError):
    """No `modelctl.yaml` was found where one was expected."""

    def __init__(self, start: str) -> None:
        super().__init__(
            f"no modelctl registry found in {start} or any parent folder",
            hint="run `modelctl init` to create one, or pass -C PATH to point at it",
        )


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one file: rendered as `path: field: message`."""

    path: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ManifestError(ModelctlError):
    """One or more input files are malformed; carries every problem found."""

    exit_code = ExitCode.CHECK_FAILED

    def __init__(self, problems: list[Problem], hint: str | None = None) -> None:
        self.problems = sorted(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''}:\n{lines}", hint=hint)

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload["problems"] = [
            {"path": p.path, "line": p.line, "field": p.field, "message": p.message}
            for p in self.problems
        ]
        return payload


class Interrupted(ModelctlError):
    """SIGINT or SIGTERM arrived; writes in flight leave refs as they were or as intended."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted", exit_code: int = 130) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[assignment]


class CheckFailed(ModelctlError):
    """A check ran and said no; the payload was already rendered by the command."""

    exit_code = ExitCode.CHECK_FAILED
