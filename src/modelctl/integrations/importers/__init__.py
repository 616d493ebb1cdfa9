"""Importers from other registries, and the writer they share: a whole history in one ref update.

An import can be tens of thousands of commits and tags. `commits.write` costs several git
processes per commit (a private index, `commit-tree`, `mktag`, `update-ref`), which would take
minutes; here the planned commits and tags stream through one `git fast-import` into the object
store, with the refs it makes landing in a throwaway git directory, and one `update-ref --stdin`
transaction then moves the branch (compare-and-swap against the tip the plan was built on) and
creates every tag: all of it or nothing. The user's index is never used to build anything; once
the branch has moved, the new files are written into the work tree and the index learns them,
as after any modelctl write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from modelctl.errors import ConflictError
from modelctl.gitstore import LockHeld, RefMoved, TagSpec
from modelctl.registry import commits
from modelctl.registry.snapshot import Location

MAX_ATTEMPTS = 5
_SCRATCH_BRANCH = "refs/heads/import"


@dataclass
class Planned:
    """One commit of an imported history: registry-relative files (None deletes), message."""

    files: dict[str, bytes | None]
    message: str
    author: str | None = None  # "Name <email> EPOCH +HHMM"; None: the committer, now
    tag: TagSpec | None = None


@dataclass
class Written:
    branch: str
    base: str | None  # the commit the history was built on
    commit: str  # the new branch tip
    tags: dict[str, str]  # tag name -> tag object id
    attempts: int
    warnings: list[str] = field(default_factory=list)


Plan = Callable[[str | None], list[Planned]]


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def fast_import_stream(
    loc: Location, history: list[Planned], base: str | None, committer: str
) -> bytes:
    """The `git fast-import` input that writes `history` on top of `base`, with its tags."""
    parts: list[bytes] = []
    for mark, item in enumerate(history, start=1):
        parts.append(f"commit {_SCRATCH_BRANCH}\nmark :{mark}\n".encode())
        parts.append(f"author {item.author or committer}\ncommitter {committer}\n".encode())
        parts.append(_data(item.message.encode()))
        if mark == 1 and base is not None:
            parts.append(f"from {base}\n".encode())
        for path, content in item.files.items():
            # Registry paths are validated names joined by '/': nothing fast-import must quote.
            repo_path = loc.repo_path(path)
            if content is None:
                parts.append(f"D {repo_path}\n".encode())
            else:
                parts.append(f"M 100644 inline {repo_path}\n".encode() + _data(content))
        parts.append(b"\n")
        if item.tag is not None:
            parts.append(f"tag {item.tag.name}\nfrom :{mark}\ntagger {committer}\n".encode())
            parts.append(_data(item.tag.message.encode()))
    parts.append(b"done\n")
    return b"".join(parts)


def write_objects(
    loc: Location, history: list[Planned], base: str | None
) -> tuple[str, dict[str, str]]:
    """Write every commit, tree, blob and tag of `history`; no ref of the repository moves.

    Returns (the last commit, tag name -> tag object id).
    """
    store = loc.store
    committer = store.identity()
    stream = fast_import_stream(loc, history, base, committer)
    made = store.fast_import(stream, _SCRATCH_BRANCH)
    tip, tags = "", {}
    for ref, oid in made.items():
        if ref == _SCRATCH_BRANCH:
            tip = oid
        elif ref.startswith("refs/tags/"):
            tags[ref.removeprefix("refs/tags/")] = oid
    return tip, tags


def _sync_worktree(loc: Location, branch: str, history: list[Planned]) -> list[str]:
    """Show the imported files in the work tree and index, when the branch is checked out,
    as every write does (under its lock, from the branch tip)."""
    final: dict[str, bytes | None] = {}
    for item in history:
        final.update(item.files)
    return loc.store.sync_worktree(branch, [loc.repo_path(p) for p in final])


def write_history(loc: Location, plan: Plan, *, attempts: int = MAX_ATTEMPTS) -> Written:
    """Plan on the branch tip, write the whole history, and move the branch with every tag.

    When the branch moves meanwhile the history is planned and written again on the new tip
    (the objects written for the lost attempt are unreferenced; `git gc` removes them).
    """
    store = loc.store
    branch = commits.registry_branch(loc)
    store.recover_sync()
    last: ConflictError | None = None
    for attempt in range(1, attempts + 1):
        base = store.ref_oid(branch)
        history = plan(base)
        paths = sorted({p for item in history for p in item.files})
        try:
            commits.refuse_uncommitted(loc, paths, branch)
        except RefMoved as exc:
            last = exc
            continue
        commit, tags = write_objects(loc, history, base)
        note = store.begin_sync(branch, [loc.repo_path(p) for p in paths], base)
        try:
            store.update_refs(branch, commit, base, tags, "modelctl: import")
        except (RefMoved, LockHeld) as exc:
            store.end_sync(note)
            last = exc
            continue
        except BaseException:
            store.abandon_sync(note, branch, base)
            raise
        warnings = _sync_worktree(loc, branch, history)
        store.end_sync(note, synced=not warnings)  # else the next writer finishes it
        return Written(branch, base, commit, tags, attempt, warnings)
    assert last is not None
    raise ConflictError(
        f"gave up after {attempts} attempts: {last.message}",
        hint=last.hint or "the branch keeps moving; run the import again when it is quiet",
    )
