"""Turn an intent into one commit on the registry branch: compare-and-swap with bounded retries.

A write is planned from the branch tip it will be built on. When another writer wins the race,
the intent is planned again on the new tip (so gates and sequence numbers are recomputed from
what is really there), never by replaying a diff; after `attempts` lost races it stops with a
conflict error (exit 3). Nothing is written before the plan is complete.
"""

from __future__ import annotations

import contextlib
import random
import time
import unicodedata
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from modelctl.errors import ConflictError, GitError, UsageError
from modelctl.gitstore import (
    SIGNING_HINT,
    CommitResult,
    LockHeld,
    PushRefused,
    RefMoved,
    TagSpec,
    TagTaken,
)
from modelctl.registry import refs
from modelctl.registry.snapshot import Location, Snapshot, empty_snapshot, snapshot_at

MAX_ATTEMPTS = 20
_TAGS = f"refs/tags/{refs.TAG_PREFIX}/"  # the remote's lifecycle tags, fetched with its branch
MAX_BACKOFF = 8.0  # seconds, for one wait between attempts


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
    already_landed: bool = False  # an earlier, unconfirmed push of this intent had landed


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
            mode = "required" if item["require_signed"] else "optional"
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


def refuse_uncommitted(loc: Location, paths: list[str], branch: str | None = None) -> None:
    """Refuse, before writing anything, when any of `paths` (registry-relative) has uncommitted
    edits: a work-tree file or index entry that no modelctl write put there. Another writer's
    sync that is still on its way (or was left for the next writer to finish) is not an edit.

    Raises RefMoved when the branch moved while looking, so the caller plans again.
    """
    if not paths:
        return
    store = loc.store
    edited = store.user_edits(branch or registry_branch(loc), [loc.repo_path(p) for p in paths])
    dirty = sorted(p for p in paths if loc.repo_path(p) in edited)
    if dirty:
        raise ConflictError(
            f"{', '.join(dirty)} has uncommitted changes; modelctl will not overwrite them",
            hint=discard_hint(loc, dirty),
        )


def discard_hint(loc: Location, paths: list[str]) -> str:
    """What to do about uncommitted edits of `paths`: commands that compare with, or go back
    to, the last commit (never to the index, which may hold a state from before it)."""
    files = " ".join(paths)
    head = loc.store.ref_oid("HEAD")
    found = loc.store.object_ids(f"{head}:{loc.repo_path(p)}" for p in paths) if head else {}
    new = [p for p in paths if found.get(f"{head}:{loc.repo_path(p)}") is None]
    known = " ".join(p for p in paths if p not in new)
    hint = f"see them with: git diff HEAD -- {files}; commit them first, or discard them"
    if known:
        hint += f" with: git checkout HEAD -- {known}"
    if new:
        hint += f"{' and' if known else ''} by moving {' '.join(new)} away (not in any commit yet)"
    return hint + " (run from the registry folder)" if loc.prefix else hint


def _backoff(attempt: int, slot: float, cap: float = MAX_BACKOFF) -> None:
    # Jittered exponential backoff in units of one attempt: after losing `attempt` races, sleep
    # up to 2**(attempt - 1) times as long as the lost attempt took (`slot`), at most
    # `cap`, so contenders spread out instead of colliding again however slow the machine
    # or the remote. (A fixed scale is wrong both ways: with a 0.5 s cap, one of 8 clones
    # pushing 10 times each often hit the attempt bound on a 2-core machine.)
    time.sleep(random.uniform(0, min(cap, max(slot, 0.01) * 2 ** min(attempt - 1, 10))))


def _with_intent(message: str, intent: str | None) -> str:
    if intent is None or f"Modelctl-Promotion-Id: {intent}" in message:
        return message
    return message.rstrip("\n") + f"\nModelctl-Promotion-Id: {intent}\n"


def write(
    loc: Location,
    plan: Plan,
    *,
    dry_run: bool = False,
    attempts: int = MAX_ATTEMPTS,
    push: str | None = None,
    intent: str | None = None,
) -> Outcome:
    """Plan on the branch tip and commit, retrying the whole plan when the branch moved.

    With `push`, the remote's branch is the tip: the commit and its tags are pushed with
    `--atomic` (never forced) and local refs follow only after the remote accepted them.
    """
    if not dry_run:  # a read-only registry says so before anything is planned
        loc.store.require_writable()
    if push is not None:
        return _write_remote(loc, plan, push, dry_run, attempts, intent or uuid.uuid4().hex)
    store = loc.store
    branch = registry_branch(loc)
    if not dry_run:
        store.recover_sync()
    last: ConflictError | None = None
    for attempt in range(1, attempts + 1):
        # Local writers take turns from reading the tip to moving the branch, so they do not
        # all plan on the same tip and starve; the compare-and-swap still decides.
        with contextlib.nullcontext() if dry_run else store.writer_turn():
            started = time.monotonic()
            tip = store.ref_oid(branch)
            result = None
            try:
                change, ready = _prepare(loc, plan, tip, dry_run, intent, branch)
            except RefMoved as exc:  # another writer moved the branch during the dirty check
                last, ready = exc, None
            else:
                if ready is None:
                    return Outcome(change, None, attempt, base=tip)
            if ready is not None:
                files, message, sign = ready
                note = store.begin_sync(branch, files, tip)
                try:
                    result = store.commit(branch, tip, files, message, sign=sign, tags=change.tags)
                except TagTaken:
                    store.end_sync(note)
                    raise
                except (RefMoved, LockHeld) as exc:
                    store.end_sync(note)
                    last = exc
                except BaseException:
                    store.abandon_sync(note, branch, tip)
                    raise
        if result is None:  # outside the turn, so the others can go
            if isinstance(last, LockHeld):  # a git process's lock: short waits, as before
                _backoff(attempt, 0.01, cap=0.5)
            else:
                _backoff(attempt, time.monotonic() - started)
            continue
        warnings = store.sync_worktree(branch, files)
        store.end_sync(note, synced=not warnings)  # else the next writer finishes it
        return Outcome(change, result, attempt, warnings, base=tip)
    assert last is not None
    raise ConflictError(
        f"gave up after {attempts} attempts: {last.message}",
        hint=last.hint or "another writer keeps winning; run the command again",
    )


def _prepare(
    loc: Location, plan: Plan, tip: str | None, dry_run: bool, intent: str | None, branch: str
) -> tuple[Change, tuple[dict[str, bytes | None], str, bool] | None]:
    """Plan the change on `tip`; unless a dry run, also check it may be written and work out
    (repository paths -> content, commit message, whether to sign)."""
    snapshot = snapshot_at(loc, tip) if tip else empty_snapshot("no commits yet")
    change = plan(snapshot, tip)
    if dry_run:
        return change, None
    refuse_uncommitted(loc, change.guard, branch)
    sign = decide_signing(loc, snapshot, change.stage)
    files = {loc.repo_path(p): data for p, data in change.files.items()}
    return change, (files, _with_intent(change.message, intent), sign)


def _write_remote(
    loc: Location, plan: Plan, remote: str, dry_run: bool, attempts: int, intent: str
) -> Outcome:
    store = loc.store
    branch = registry_branch(loc)
    if not dry_run:
        store.recover_sync()
    last_report = ""
    made: dict[str, tuple[Change, CommitResult, list[str]]] = {}  # commit -> what it was
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        base = store.fetch_branch(remote, branch, tags=_TAGS)
        # The intent is new to this process: only a push of ours can have landed it.
        landed = store.find_intent(base, intent) if made and base is not None else None
        if base is not None and landed in made:
            # An earlier attempt's push landed although we never heard back: follow it as if
            # the answer had arrived (its tags and work-tree paths too).
            change, result, paths = made[landed]
            outcome = Outcome(change, result, attempt, base=base, already_landed=True)
            outcome.warnings += _follow_remote(loc, remote, branch, base, result.tags, paths)
            return outcome
        try:
            change, ready = _prepare(loc, plan, base, dry_run, intent, branch)
        except RefMoved as exc:  # the local branch moved during the dirty check
            last_report = exc.message
            _backoff(attempt, time.monotonic() - started)
            continue
        if ready is None:
            return Outcome(change, None, attempt, base=base)
        files, message, sign = ready
        result = store.make_commit(base, files, message, sign=sign, tags=change.tags)
        made[result.commit] = (change, result, list(files))
        updates = {branch: result.commit}
        updates.update({f"refs/tags/{name}": oid for name, oid in result.tags.items()})
        try:
            accepted, last_report = store.push_atomic(remote, updates)
        except PushRefused:
            raise  # the remote's rules or a pre-push hook said no: retrying cannot change it
        except GitError as exc:
            last_report = exc.message
            _backoff(attempt, time.monotonic() - started)
            continue  # the next fetch shows whether it landed
        if not accepted:
            _backoff(attempt, time.monotonic() - started)
            continue
        warnings = _follow_remote(loc, remote, branch, result.commit, result.tags, list(files))
        return Outcome(change, result, attempt, warnings, base=base)
    raise ConflictError(
        f"gave up pushing to {remote} after {attempts} attempts",
        hint=f"the remote keeps moving or refusing; last answer: {last_report[-300:]}",
    )


def _follow_remote(
    loc: Location, remote: str, branch: str, commit: str, tags: dict[str, str], paths: list[str]
) -> list[str]:
    """After the remote accepted `commit`: move the local branch too, when that is a fast-forward,
    with the lifecycle tags of the other writers' commits it brings in."""
    store = loc.store
    local = store.ref_oid(branch)
    warnings = []
    if local is None or local == commit or store.is_ancestor(local, commit):
        try:
            if local != commit:
                # The fast-forward may bring other writers' commits: show their files too (or
                # the index would still hold the old ones, staged to be undone), except those
                # the user has uncommitted edits of.
                others = [p for p in store.changed_between(local, commit) if p not in paths]
                dirty = set(store.user_edits(branch, others)) if others else set()
                kept = [p for p in others if p in dirty]
                sync = [*paths, *(p for p in others if p not in dirty)]
                note = store.begin_sync(branch, sync, local)
                try:
                    store.update_refs(branch, commit, local, tags, "modelctl: follow remote")
                except BaseException:
                    store.abandon_sync(note, branch, local)
                    raise
                synced = store.sync_worktree(branch, sync)
                store.end_sync(note, synced=not synced)
                warnings += synced
                if kept:
                    warnings.append(
                        f"{', '.join(kept)} changed on the remote but have uncommitted edits "
                        "here, so they were left as they are: git status shows the difference"
                    )
            store.adopt_tags(remote, _TAGS, commit)
            return warnings
        except (RefMoved, LockHeld):
            pass
    # The tags stay on the remote only: here they would point beside the local history, which
    # verify reports as foreign. They come with their commits when the branch is pulled.
    warnings.append(
        f"the remote accepted the change, but local {branch.removeprefix('refs/heads/')} has "
        "commits the remote does not, so it was not moved: pull to bring it in"
    )
    return warnings


def trailers(**values: str | int | None) -> str:
    """`Modelctl-Key: value` lines from keyword arguments (underscores become dashes).

    The one writer of every field that goes into a commit or tag message: each value is
    scanned for credentials (refused: exit 2, naming the field, never echoing it) and encoded
    by `encode_value`, so no byte of it can be read back as another trailer, another line or
    a separator; `history.parse_trailers` decodes it symmetrically.
    """
    from modelctl.registry import secretscan

    lines = []
    for key, value in values.items():
        if value is None or value == "":
            continue
        name = "Modelctl-" + "-".join(part.capitalize() for part in key.split("_"))
        text = str(value)
        if any("\ud800" <= char <= "\udfff" for char in text):
            # A byte that is not UTF-8 (Python's lone surrogate for it) has no text to record:
            # written as bytes, it would read back as other text than was given.
            raise UsageError(
                f"{name} (the {key.replace('_', ' ')} given) is not UTF-8 text; nothing was written",
                hint="give the text in UTF-8 (check the terminal's or the script's encoding)",
            )
        what = secretscan.classify(text)
        if what is not None:
            raise UsageError(
                f"{name} (the {key.replace('_', ' ')} given) holds what looks like {what}; "
                "nothing was written",
                hint="secrets never enter the registry: remove it from the text and rotate the key",
            )
        lines.append(f"{name}: {encode_value(text)}")
    return "\n".join(lines)


def _escaped(char: str) -> bool:
    """Whether `char` is written percent-encoded in a trailer value: `%` itself, and every
    character that could end a line or field for some reader (controls, separators, line and
    paragraph separators, any whitespace but a plain space) or hide text (format characters
    such as bidi overrides)."""
    if char == "%":
        return True
    if char == " ":
        return False
    return char.isspace() or unicodedata.category(char)[0] in "CZ"


def encode_value(text: str) -> str:
    """`text` as one trailer value: escaped characters (and spaces at either end, which git
    trims) as `%XX` per UTF-8 byte; everything else as it is, so plain text stays readable."""
    out = []
    last = len(text) - 1
    for i, char in enumerate(text):
        if _escaped(char) or (char == " " and (i == 0 or i == last)):
            out.append("".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass")))
        else:
            out.append(char)
    return "".join(out)


def decode_value(text: str) -> str:
    """The inverse of `encode_value`; never fails (a `%` not followed by two hex digits, as in
    a message written by hand, stays as it is; bytes that are not UTF-8 become U+FFFD)."""
    if "%" not in text:
        return text
    return urllib.parse.unquote(text, errors="replace")
