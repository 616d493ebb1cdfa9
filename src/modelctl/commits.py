"""Turn an intent into one commit on the registry branch: compare-and-swap with bounded retries.

A write is planned from the branch tip it will be built on. When another writer wins the race,
the intent is planned again on the new tip (so gates and sequence numbers are recomputed from
what is really there), never by replaying a diff; after `attempts` lost races it stops with a
conflict error (exit 3). Nothing is written before the plan is complete.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modelctl.errors import ConflictError, GitError, UsageError
from modelctl.gitstore import SIGNING_HINT, CommitResult, LockHeld, RefMoved, TagSpec
from modelctl.registry import Location, Snapshot, empty_snapshot, snapshot_at

MAX_ATTEMPTS = 20


@dataclass
class Change:
    """What one write commits: registry-relative files (None deletes), message and tags."""

    files: dict[str, bytes | None]
    message: str
    tags: list[TagSpec] = field(default_factory=list)
    stage: str | None = None  # the stage it changes, for per-stage signing rules
    guard: list[str] = field(default_factory=list)  # files that must have no uncommitted edits


@dataclass
class Outcome:
    change: Change
    result: CommitResult | None  # None for a dry run
    attempts: int = 1
    warnings: list[str] = field(default_factory=list)
    base: str | None = None  # the commit the change was built on


Plan = Callable[[Snapshot, str | None], Change]


def registry_branch(loc: Location) -> str:
    ref = loc.store.head_ref()
    if ref is None:
        raise UsageError(
            f"HEAD is detached in {loc.store.toplevel}; modelctl commits to the checked-out branch",
            hint="check out the registry branch first: git switch main",
        )
    return ref


def decide_signing(loc: Location, snapshot: Snapshot, stage: str | None) -> bool:
    """Whether to sign: the registry's `signing` setting, a stage's override, the user's keys."""
    settings = snapshot.settings or {}
    mode = settings.get("signing", "optional")
    for item in settings.get("stages", []):
        if stage is not None and item["name"] == stage and item.get("require_signed") is not None:
            mode = "required" if item["require_signed"] else mode
    if mode == "off":
        return False
    has_key = loc.store.signing_key_configured()
    if mode == "required" and not has_key:
        where = f"stage {stage}" if stage else "this registry"
        raise GitError(
            f"{where} requires signed commits and git has no signing key configured; "
            "nothing was written",
            hint=SIGNING_HINT,
        )
    return has_key


def refuse_uncommitted(loc: Location, paths: list[str]) -> None:
    """Refuse, before writing anything, when any of `paths` has uncommitted edits."""
    if not paths:
        return
    changed = loc.store.changed_paths(loc.prefix or ".")
    dirty = sorted(p for p in paths if loc.repo_path(p) in changed)
    if dirty:
        raise ConflictError(
            f"{', '.join(dirty)} has uncommitted changes; modelctl will not overwrite them",
            hint="commit or discard them first (git diff -- FILE; git checkout -- FILE)",
        )


def write(
    loc: Location, plan: Plan, *, dry_run: bool = False, attempts: int = MAX_ATTEMPTS
) -> Outcome:
    """Plan on the branch tip and commit, retrying the whole plan when the branch moved."""
    store = loc.store
    branch = registry_branch(loc)
    last: ConflictError | None = None
    for attempt in range(1, attempts + 1):
        tip = store.ref_oid(branch)
        snapshot = snapshot_at(loc, tip) if tip else empty_snapshot("no commits yet")
        change = plan(snapshot, tip)
        if dry_run:
            return Outcome(change, None, attempt, base=tip)
        refuse_uncommitted(loc, change.guard)
        sign = decide_signing(loc, snapshot, change.stage)
        files = {loc.repo_path(p): data for p, data in change.files.items()}
        try:
            result = store.commit(branch, tip, files, change.message, sign=sign, tags=change.tags)
        except (RefMoved, LockHeld) as exc:
            last = exc
            # Jittered exponential backoff: contenders spread out instead of colliding again.
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
            continue
        warnings = store.sync_worktree(branch, files)
        return Outcome(change, result, attempt, warnings, base=tip)
    assert last is not None
    raise ConflictError(
        f"gave up after {attempts} attempts: {last.message}",
        hint=last.hint or "another writer keeps winning; run the command again",
    )


def trailers(**values: str | int | None) -> str:
    """`Modelctl-Key: value` lines from keyword arguments (underscores become dashes)."""
    lines = []
    for key, value in values.items():
        if value is None or value == "":
            continue
        name = "Modelctl-" + "-".join(part.capitalize() for part in key.split("_"))
        text = str(value).replace("\n", " ").strip()
        lines.append(f"{name}: {text}")
    return "\n".join(lines)
