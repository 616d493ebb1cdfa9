"""`modelctl verify`: audit the registry branch's whole history.

Findings (each fails verify):
- a lifecycle commit or tag not signed with a good signature by a key in the allowed-signers
  file *as it stood in the commit's parent* (a change to that file cannot approve itself);
  any status but `G` fails, including GPG's "good but untrusted"; when `gpg_signers` (as it
  stood in the parent) lists fingerprints, a good GPG signature by another key fails too;
- a lifecycle tag that is lightweight, whose tag header differs from its ref name (a signed
  tag moved to another name), or whose commit's trailers name another route, stage or
  sequence; a lifecycle commit without its tag;
- sequence numbers per route and stage with a gap, a reuse or a decrease;
- committer dates that go backwards along lifecycle history (or below any earlier commit's,
  which catches a lifecycle commit backdated into an expired key's validity window), or lie
  in the future;
- a committed version file modified or deleted later, or a file a committed manifest pins
  by digest (a prompt's `template_file`, a dataset's local `uri`);
- a lifecycle commit touching more than its route file (and eval records), changing another
  stage's binding than the one it names, or made for another branch (`Modelctl-Ref`);
- route-file changes made outside modelctl (unattested); only the commit that creates the
  registry (adds modelctl.yaml, and route files that bind nothing) has nothing to attest;
- a commit signed by an SSH key that had expired by the time the commit reached the branch
  (after the anchor below, though dated before it);
- a history that no longer contains the last commit verify accepted here, or whose sequences
  went back (the anchor, `verify-anchor.json`), or that lacks a pinned commit or root.
Unsigned lifecycle commits in a registry with `signing: optional` are listed as notes.

What a message says never switches a check off: the signing rule a commit is held to is the
strictest among the stages whose binding it changes (from the route files) and the stage its
trailers name.

Every run leaves a checkpoint (`.git/modelctl/verify-checkpoint.json`): the audit's state
before the last `WINDOW` commits, those commits, and the verdict on every lifecycle tag. A
`--since REV` run whose REV lies in that window, or after it, resumes from the checkpoint
instead of reading the whole history again, and reaches the same result: it is used only
when the commit it was made for is on the branch's first-parent history, and anything it
cannot decide (a tag that changed and points at an older commit) falls back to a full run.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from modelctl import progress
from modelctl.gitstore import Signature
from modelctl.gitstore.atomic import write_atomic, write_cache
from modelctl.lifecycle import history
from modelctl.registry import refs
from modelctl.registry.snapshot import VERSIONED, Location

FUTURE_SKEW = history.CLOCK_SKEW  # seconds a committer date may lie ahead of the clock
_VERSIONED_PREFIXES = tuple(f"{c}/" for c in VERSIONED)
_PINNING_PREFIXES = ("prompts/", "datasets/")  # manifests that pin a file by its digest
CHECKPOINT_FORMAT = 3  # 2: blobs of added prompt and dataset manifests; 3: GPG pins
WINDOW = 1000  # commits a checkpoint keeps, so `--since` anywhere among them can resume


@dataclass(frozen=True, order=True)
class Finding:
    check: str  # signature, tag, sequence, date, immutable, scope, unattested
    where: str  # a commit id or a ref
    message: str


def _finding_order(finding: Finding) -> str:
    """The order `order=True` gives (check, where, message), as one string compared in C:
    NUL, which none of them holds, sorts before any other character."""
    return f"{finding.check}\0{finding.where}\0{finding.message}"


@dataclass
class VerifyResult:
    branch: str
    tip: str
    commits: int
    lifecycle_commits: int
    tags: int
    seconds: float
    findings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass
class _Commit:
    oid: str
    parents: list[str]
    time: int
    trailers: dict[str, str]
    changes: list[tuple[str, str]]  # (status letter, registry-relative path)
    # Prompt and dataset manifests this commit adds -> their blob ids: what they pin is read
    # from these, all at once, before the audit runs.
    added: dict[str, str] = field(default_factory=dict)


_FIELDS = ("%H", "%P", "%ct", "%(trailers:only,unfold)")


def _commits(loc: Location, revisions: str) -> list[_Commit]:
    """Every first-parent commit in `revisions` (a tip or a range), oldest first, with the
    paths each changed.

    A merge's changes are those against its first parent: what it brought onto the branch.
    """
    entries = loc.store.first_parent_log(_FIELDS, revisions, oldest_first=True, merge_changes=True)
    out = []
    for (oid, parents, ctime, trailers), rest in entries:
        changes, added = [], {}
        for line in rest.splitlines():
            if not line.startswith(":") or "\t" not in line:
                continue
            meta, _, path = line.partition("\t")
            fields = meta.split()
            status = fields[-1][0]
            if path.startswith(loc.prefix):
                path = path[len(loc.prefix) :]
                changes.append((status, path))
                if (
                    status == "A"
                    and path.startswith(_PINNING_PREFIXES)
                    and refs.classify_path(path) is not None
                ):
                    added[path] = fields[3]
        trailer_map = history.parse_trailers(trailers)
        out.append(
            _Commit(oid, parents.split(), history.commit_epoch(ctime), trailer_map, changes, added)
        )
    return out


def _pins(loc: Location, commits: list[_Commit]) -> dict[str, list[tuple[str, str]]]:
    """Commit id -> (manifest, pinned file) for each prompt template and local dataset file
    that a manifest added in that commit pins by digest; all blobs read by one process."""
    from modelctl.errors import ManifestError
    from modelctl.registry import yamlio

    wanted = {blob: (c.oid, path) for c in commits for path, blob in c.added.items()}
    out: dict[str, list[tuple[str, str]]] = {}
    for blob, raw in loc.store.read_blobs(wanted).items():
        oid, path = wanted[blob]
        try:
            data = yamlio.load_mapping(raw, path, with_lines=False).data
        except ManifestError:
            continue  # an unreadable manifest pins nothing; validate reports it
        spec = data.get("template_file")
        target = spec.get("path") if isinstance(spec, dict) else data.get("uri")
        if isinstance(target, str) and "://" not in target and target != path:
            out.setdefault(oid, []).append((path, target))
    return out


# --- the audit: one pass over the commits, oldest first ----------------------------------------


@dataclass
class _State:
    """What the audit carries from one commit to the next: all it needs to resume there."""

    latest: int | None = None  # the latest committer date of any commit so far
    last_time: int | None = None  # the latest committer date of a lifecycle commit so far
    last_seq: dict[tuple[str, str], int] = field(default_factory=dict)
    # The trust settings in force: signing mode, allowed-signers path and blob, stage modes.
    mode: str = "optional"
    signers_path: str = ".modelctl/allowed_signers"
    blob: str | None = None
    stage_modes: dict[str, str] = field(default_factory=dict)
    gpg: list[str] = field(default_factory=list)  # gpg_signers: pinned GPG fingerprints
    pinned: dict[str, str] = field(default_factory=dict)  # pinned file -> the manifest pinning it

    def copy(self) -> _State:
        return replace(
            self,
            last_seq=dict(self.last_seq),
            stage_modes=dict(self.stage_modes),
            gpg=list(self.gpg),
            pinned=dict(self.pinned),
        )

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "last_seq"}
        data["last_seq"] = [[route, stage, n] for (route, stage), n in self.last_seq.items()]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _State:
        seqs = {(str(route), str(stage)): int(n) for route, stage, n in data["last_seq"]}
        fields = {k: v for k, v in data.items() if k != "last_seq"}
        state = cls(**fields, last_seq=seqs)
        optional_ints = (state.latest, state.last_time)
        if (
            not all(x is None or isinstance(x, int) for x in optional_ints)
            or not isinstance(state.mode, str)
            or not isinstance(state.signers_path, str)
            or not (state.blob is None or isinstance(state.blob, str))
            or not isinstance(state.stage_modes, dict)
            or not isinstance(state.pinned, dict)
            or not isinstance(state.gpg, list)
        ):
            raise ValueError("malformed checkpoint state")
        return state


class _Audit:
    """The checks on each commit, in order; findings for the commits marked as checked."""

    def __init__(self, loc: Location, branch: str, state: _State) -> None:
        self.loc, self.branch, self.state = loc, branch, state
        self.now = time.time()
        self.findings: list[Finding] = []
        self.notes: list[Finding] = []
        # For each commit: (signing mode, allowed-signers blob) as they stood in its parent.
        self.trust: dict[str, tuple[str, str | None]] = {}
        # For each commit: the GPG fingerprints pinned in its parent (empty: none pinned).
        self.gpg_pins: dict[str, tuple[str, ...]] = {}
        self.trust_changes: set[str] = set()
        self.lifecycle: list[_Commit] = []
        self.checked_lifecycle: list[_Commit] = []
        self.checked_trust: list[_Commit] = []
        # For each commit that changed a route file: route -> the stages whose binding it
        # changed (None: a route file before or after it cannot be read). Read lazily.
        self._stage_changes: dict[str, dict[str, frozenset[str] | None]] | None = None
        self._tip: str | None = None

    def run(self, commits: list[_Commit], start: int) -> tuple[int, _State]:
        """Audit `commits`, checking those from index `start` on.

        Returns where the checkpoint window of these commits starts and the state there.
        """
        self._tip = commits[-1].oid if commits else None
        window_start = max(0, len(commits) - WINDOW)
        window_state = self.state.copy()
        pins = _pins(self.loc, commits)
        for position, commit in enumerate(commits):
            if position == window_start:
                window_state = self.state.copy()
            checked = position >= start
            self._trust(commit)
            is_lifecycle = self._check(commit, checked)
            for manifest, pinned in pins.get(commit.oid, ()):
                self.state.pinned[pinned] = manifest
            if checked and commit.oid in self.trust_changes and not is_lifecycle:
                self.checked_trust.append(commit)
        return window_start, window_state

    def changed_stages(self, commit: _Commit) -> dict[str, frozenset[str] | None]:
        """Route -> the stages whose binding `commit` changed, from the route files themselves
        (history's records), never from what its message claims."""
        if not any(p.startswith("routes/") for _, p in commit.changes):
            return {}
        if self._stage_changes is None:
            self._stage_changes = {}
            if self._tip is not None:
                for route, records in history.all_route_records(self.loc, self._tip).items():
                    before: dict[str, Any] | None = {}
                    for record in records:
                        after = record.stages
                        changed: frozenset[str] | None = None
                        if before is not None and after is not None:
                            names = set(before) | set(after)
                            changed = frozenset(n for n in names if before.get(n) != after.get(n))
                        self._stage_changes.setdefault(record.commit, {})[route] = changed
                        before = after
        found = dict(self._stage_changes.get(commit.oid, {}))
        for _, path in commit.changes:
            name = _route_of(path)
            if name is not None and name not in found:
                found[name] = None  # changed, but not on record (a merge's side): unknown
        return found

    def _signing_mode(self, commit: _Commit) -> str:
        """The signing mode in force for `commit`: the strictest among the stages whose binding
        it changed and the stage its trailers name (a stage's `require_signed` overriding the
        registry's `signing`); every stage's when a route file cannot be read; the registry's
        when no stage is concerned. A message can make the rule stricter, never weaker."""
        s = self.state
        stages: set[str] = set()
        named = commit.trailers.get("stage")
        if named and commit.trailers.get("action") in history.LIFECYCLE_ACTIONS:
            stages.add(named)
        for changed in self.changed_stages(commit).values():
            if changed is None:
                return _strictest([s.mode, *s.stage_modes.values()])
            stages |= changed
        return _strictest([s.stage_modes.get(stage, s.mode) for stage in stages] or [s.mode])

    def _trust(self, commit: _Commit) -> None:
        """The signing mode and allowed-signers blob in force for `commit` (its parent's).

        The mode is the one for the commit's stage: a stage's `require_signed` overrides the
        registry's setting there, as it does when modelctl writes (`commits.decide_signing`).
        Commits that change `modelctl.yaml` or the allowed-signers file are added to
        `trust_changes`: they are held to the registry's mode too, or one unsigned commit
        could add a key or turn signing off. (One ls-tree per commit would be slow; the raw
        log already says when each file changed.)
        """
        s, loc = self.state, self.loc
        settings_path = refs.SETTINGS_FILE
        touched = {path for _, path in commit.changes}
        self.gpg_pins[commit.oid] = tuple(s.gpg)
        if settings_path in touched or s.signers_path in touched:
            self.trust_changes.add(commit.oid)
            self.trust[commit.oid] = (s.mode, s.blob)
        else:
            self.trust[commit.oid] = (self._signing_mode(commit), s.blob)
        if settings_path in touched:
            from modelctl.registry.snapshot import parse_entry

            oid = loc.store.object_at(commit.oid, loc.repo_path(settings_path))
            if oid is not None:
                raw = loc.store.read_blobs([oid])[oid]
                entry = parse_entry(settings_path, raw, oid, "settings")
                if entry.data is not None:
                    s.mode = entry.data.get("signing", "optional")
                    s.signers_path = entry.data.get("allowed_signers", s.signers_path)
                    s.gpg = list(entry.data.get("gpg_signers", []))
                    s.stage_modes = {
                        item["name"]: "required" if item["require_signed"] else "optional"
                        for item in entry.data.get("stages", [])
                        if item.get("require_signed") is not None
                    }
        if s.signers_path in touched or settings_path in touched:
            s.blob = loc.store.object_at(commit.oid, loc.repo_path(s.signers_path))

    def _check(self, commit: _Commit, checked: bool) -> bool:
        """The checks of one commit; whether it is a lifecycle commit."""
        s, findings, branch = self.state, self.findings, self.branch
        floor, s.latest = s.latest, max(s.latest or commit.time, commit.time)
        t = commit.trailers
        action = t.get("action")
        is_lifecycle = action in history.LIFECYCLE_ACTIONS
        route_changes = [
            p for _, p in commit.changes if refs.classify_path(p) and p.startswith("routes/")
        ]
        for status, path in commit.changes:
            if not path.startswith(_VERSIONED_PREFIXES) or refs.classify_path(path) is None:
                continue
            if status in ("M", "D", "T") and checked:
                what = "modified" if status != "D" else "deleted"
                findings.append(
                    Finding("immutable", commit.oid, f"{path} was {what} after it was committed")
                )
        for status, path in commit.changes:
            manifest = s.pinned.get(path)
            if manifest is not None and status in ("M", "D", "T") and checked:
                what = "modified" if status != "D" else "deleted"
                findings.append(
                    Finding(
                        "immutable",
                        commit.oid,
                        f"{path} was {what} after {manifest} pinned it by digest",
                    )
                )
        if not is_lifecycle:
            if route_changes and checked and not self._creates_registry(commit):
                findings.append(
                    Finding(
                        "unattested",
                        commit.oid,
                        f"changes {', '.join(route_changes)} without modelctl trailers "
                        "(made outside deploy/promote/rollback)",
                    )
                )
            return False
        self.lifecycle.append(commit)
        if checked:
            self.checked_lifecycle.append(commit)
        route, stage = t.get("route", ""), t.get("stage", "")
        try:
            seq = int(t.get("seq", ""))
        except ValueError:
            seq = -1
        key = (route, stage)
        expected = s.last_seq.get(key, 0) + 1
        if checked and seq != expected:
            problem = "reuses" if 0 < seq < expected else ("skips to" if seq > expected else "has")
            findings.append(
                Finding(
                    "sequence",
                    commit.oid,
                    f"{route} {stage}: {problem} sequence {seq}; expected {expected}",
                )
            )
        s.last_seq[key] = max(seq, s.last_seq.get(key, 0))
        if checked:
            if s.last_time is not None and commit.time < s.last_time:
                findings.append(
                    Finding(
                        "date",
                        commit.oid,
                        f"committer date {history.iso(commit.time)} is earlier than the previous "
                        f"lifecycle commit's ({history.iso(s.last_time)})",
                    )
                )
            elif floor is not None and commit.time < floor:
                findings.append(
                    Finding(
                        "date",
                        commit.oid,
                        f"committer date {history.iso(commit.time)} is earlier than an earlier "
                        f"commit's ({history.iso(floor)}): backdated",
                    )
                )
            if commit.time > self.now + FUTURE_SKEW:
                findings.append(
                    Finding(
                        "date",
                        commit.oid,
                        f"committer date {history.iso(commit.time)} is in the future",
                    )
                )
            others = sorted(
                name
                for changed_route, changed in self.changed_stages(commit).items()
                if changed_route == route and changed
                for name in changed - {stage}
            )
            if others:
                findings.append(
                    Finding(
                        "scope",
                        commit.oid,
                        f"changes what {', '.join(others)} of {route} serves, but its trailers "
                        f"name stage {stage}",
                    )
                )
            allowed = {f"routes/{route}.yaml"}
            extra = [
                p for _, p in commit.changes
                if p not in allowed and not p.startswith(f"evals/{route}/")
            ]  # fmt: skip
            if extra:
                findings.append(
                    Finding(
                        "scope", commit.oid, f"lifecycle commit also changes {', '.join(extra)}"
                    )
                )
            # On a detached HEAD (a CI checkout) the branch is unknown: nothing to compare.
            if t.get("ref") and branch != "HEAD" and t["ref"] != branch:
                findings.append(
                    Finding(
                        "scope",
                        commit.oid,
                        f"was made for {t['ref']} but is on {branch} (a commit moved between branches)",
                    )
                )
            if len(commit.parents) > 1:
                findings.append(Finding("scope", commit.oid, "lifecycle commit is a merge"))
        s.last_time = max(s.last_time or commit.time, commit.time)
        return True

    def _creates_registry(self, commit: _Commit) -> bool:
        """Whether `commit` is one that creates the registry (`modelctl init`, the setup commit
        of an import): it adds modelctl.yaml, and every route file it touches it adds, binding
        no stage. Known from what it changes, never from its message: such a commit has no
        lifecycle event to attest, and nothing else is exempt."""
        if ("A", refs.SETTINGS_FILE) not in commit.changes:
            return False
        routes = [(status, p) for status, p in commit.changes if _route_of(p) is not None]
        if any(status != "A" for status, _ in routes):
            return False
        changed = self.changed_stages(commit)
        return all(changed.get(_route_of(p) or "") == frozenset() for _, p in routes)


_STRICTNESS = {"off": 0, "optional": 1, "required": 2}


def _strictest(modes: list[str]) -> str:
    return max(modes, key=lambda mode: _STRICTNESS.get(mode, 2))


def _route_of(path: str) -> str | None:
    """The route whose file `path` is, or None."""
    if not path.startswith("routes/") or refs.classify_path(path) is None:
        return None
    return path.removeprefix("routes/").removesuffix(".yaml")


# --- signatures ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _trust_files(loc: Location, blobs: set[str]) -> Iterator[dict[str, Path]]:
    with contextlib.ExitStack() as stack:
        contents = loc.store.read_blobs(blobs)
        yield {
            oid: stack.enter_context(loc.store.scratch_file(data, prefix=f"verify-{oid[:12]}-"))
            for oid, data in contents.items()
        }


def _workers() -> int:
    return os.cpu_count() or 1


def _parallel(
    jobs: list[Callable[[], Any]],
    advance: Callable[[int], None] | None = None,
    weights: list[int] | None = None,
) -> list[Any]:
    """Run `jobs` on a thread per CPU; `advance(weight)` after each (a progress bar)."""
    weighted = list(zip(jobs, weights or [1] * len(jobs), strict=True))

    def run(item: tuple[Callable[[], Any], int]) -> Any:
        result = item[0]()
        if advance is not None:
            advance(item[1])
        return result

    workers = max(1, min(len(jobs), _workers()))
    if workers == 1:
        return [run(item) for item in weighted]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, weighted))


def _commit_signatures(
    loc: Location,
    wanted: dict[str, str | None],
    trust: dict[str, Path],
    advance: Callable[[int], None] | None = None,
) -> dict[str, Signature]:
    """Check commits in parallel chunks, each against its own trust file."""
    by_trust: dict[str | None, list[str]] = {}
    for oid, blob in wanted.items():
        by_trust.setdefault(blob, []).append(oid)
    jobs: list[Callable[[], Any]] = []
    weights: list[int] = []
    # A few chunks per worker keep every CPU busy to the end; more only cost git start-ups
    # (an unsigned commit costs git almost nothing, so 100,000 of them need not be 1,500 runs).
    chunk = max(64, -(-len(wanted) // (_workers() * 4)))
    for blob, oids in by_trust.items():
        path = trust.get(blob) if blob else None
        for i in range(0, len(oids), chunk):
            part = oids[i : i + chunk]
            jobs.append(partial(loc.store.commit_signatures, part, path))
            weights.append(len(part))
    found: dict[str, Signature] = {}
    for result in _parallel(jobs, advance, weights):
        found.update(result)
    return found


def _unpinned(sig: Signature, pins: tuple[str, ...]) -> bool:
    """A good GPG signature by a key `gpg_signers` does not list (when it lists any)."""
    return bool(pins) and sig.gpg and not ({sig.key.upper(), sig.primary.upper()} & set(pins))


def _describe(sig: Signature) -> str:
    if sig.good:  # good, but not by a pinned key
        return f"is signed by GPG key {sig.key}, which gpg_signers in modelctl.yaml does not list"
    return _DESCRIBE.get(sig.status, "has signature status " + sig.status)


_DESCRIBE = {
    "N": "is not signed",
    "B": "has a bad signature (changed after signing, revoked key or wrong namespace)",
    "U": "is signed by a key that is not in the allowed-signers file (or is expired or untrusted)",
    "X": "has an expired signature",
    "Y": "is signed by an expired key",
    "R": "is signed by a revoked key",
    "E": "has a signature that cannot be checked (missing key)",
}


def _check_signatures(
    loc: Location,
    lifecycle: list[_Commit],
    trust: dict[str, tuple[str, str | None]],
    findings: list[Finding],
    notes: list[Finding],
    trust_changes: set[str],
    gpg_pins: dict[str, tuple[str, ...]],
    late: dict[str, int],
) -> None:
    # A change to the trust settings is held to `signing: required` only (in force in its
    # parent); an optional registry promises nothing about who edits its settings.
    wanted = {
        c.oid: trust[c.oid][1]
        for c in lifecycle
        if trust[c.oid][0] == "required"
        or (trust[c.oid][0] == "optional" and c.oid not in trust_changes)
    }
    blobs = {b for b in wanted.values() if b}
    checking = progress.bar("checking commit signatures", total=len(wanted))
    with _trust_files(loc, blobs) as files, checking as advance:
        sigs = _commit_signatures(loc, wanted, files, advance)
        expired = _expired_when_seen(loc, wanted, sigs, files, late)
    for oid in wanted:
        mode = trust[oid][0]
        sig = sigs.get(oid, Signature("N", "", ""))
        what = (
            "commit changing the signing settings or allowed signers"
            if oid in trust_changes
            else "lifecycle commit"
        )
        if oid in expired:
            findings.append(
                Finding(
                    "signature",
                    oid,
                    f"{what} is signed by a key ({sig.signer or sig.key}) that had expired by "
                    f"{history.iso(expired[oid])}, when verify last checked the branch and the "
                    "commit was not on it: its committer date was set back into the key's "
                    "lifetime",
                )
            )
            continue
        if sig.good and not _unpinned(sig, gpg_pins.get(oid, ())):
            continue
        text = f"{what} {_describe(sig)}"
        if sig.status == "N" and mode == "optional":
            notes.append(Finding("signature", oid, text + " (signing: optional)"))
        else:
            findings.append(Finding("signature", oid, text))


def _expired_when_seen(
    loc: Location,
    wanted: dict[str, str | None],
    sigs: dict[str, Signature],
    files: dict[str, Path],
    late: dict[str, int],
) -> dict[str, int]:
    """Commits git found good whose SSH key had expired by the time they reached the branch
    (-> that time).

    git checks `valid-before` at the committer date, which the signer picks; `late` holds, for
    commits that reached the branch after a checkpoint although their date is earlier, the
    checkpoint's time: they cannot have been on the branch before it. Only a trust file with a
    key lifetime needs the check, so registries without one pay nothing.
    """
    out: dict[str, int] = {}
    lifetimes: dict[Path, bool] = {}
    for oid, bound in late.items():
        blob, sig = wanted.get(oid), sigs.get(oid)
        path = files.get(blob) if blob else None
        if sig is None or not sig.good or sig.gpg or path is None:
            continue
        if path not in lifetimes:
            lifetimes[path] = b"valid-before" in path.read_bytes()
        if not lifetimes[path]:
            continue
        if loc.store.ssh_key_valid_at(oid, path, bound) is False:
            out[oid] = bound
    return out


# --- tags ---------------------------------------------------------------------------------------


# A tag with a problem: (object the ref points at, the object that tag object points at or ""
# when it is not a tag object, the problem, whether the problem is "not a lifecycle commit on
# the branch": the one verdict that can change as the branch grows past a checkpoint).
_BadTag = tuple[str, str, str, bool]


@dataclass
class _Tags:
    """The verdict on every lifecycle tag ref."""

    fine: dict[str, str] = field(default_factory=dict)  # "<ref> <object>" -> target commit
    bad: dict[str, _BadTag] = field(default_factory=dict)
    ahead: list[str] = field(default_factory=list)  # refs past the tip: not judged (not saved)


class _Undecided(Exception):
    """A resumed run met a tag it cannot judge without the whole history."""


_TAG_FIELDS = ("%(refname)", "%(objecttype)", "%(tag)", "%(*objectname)", "%(objectname)")


def _tag_rows(loc: Location, names: list[str] | None = None) -> Iterator[list[str]]:
    """(ref, object type, tag header, target, object) of lifecycle tags: all, or `names`."""
    patterns = [f"refs/tags/{refs.TAG_PREFIX}/"] if names is None else names
    for i in range(0, len(patterns), 500):
        yield from loc.store.ref_fields(_TAG_FIELDS, patterns[i : i + 500])


def _judge_tag(
    row: list[str], by_commit: dict[str, _Commit], known: set[str] | None, branch: str
) -> str | _BadTag:
    """The structural checks of one tag: its target commit when it is fine.

    `known`: every commit the audit saw, when it did not see the whole branch (a target
    outside them cannot be judged: `_Undecided`).
    """
    ref, objtype, header, target, oid = row
    name = ref.removeprefix("refs/tags/")
    try:
        tag = refs.parse_lifecycle_tag(name)
    except Exception:
        return (oid, target, "is under modelctl/ but is not a lifecycle tag name", False)
    if objtype != "tag":
        return (oid, target, "is a lightweight tag; lifecycle tags are annotated", False)
    if header != name:
        return (oid, target, f"holds a tag object named {header!r} (a tag moved to another name)", False)  # fmt: skip
    commit = by_commit.get(target)
    if commit is None:
        if known is not None and target not in known:
            raise _Undecided(ref)
        return (oid, target, f"points at {target[:12]}, not a lifecycle commit on {branch}", True)
    t = commit.trailers
    if (t.get("route"), t.get("stage"), t.get("seq")) != (tag.route, tag.stage, str(tag.seq)):
        problem = f"points at a commit for {t.get('route')} {t.get('stage')} #{t.get('seq')}"
        return (oid, target, problem, False)
    return target


def _judge_tags(
    loc: Location, audit: _Audit, tip: str, known: set[str] | None, cached: _Tags | None
) -> _Tags:
    """Every lifecycle tag's verdict.

    Only tags on the history being verified are judged. A tag whose commit is not on it is
    reported, unless that commit comes after `tip` (the tip is one of its ancestors): then it
    belongs to a later state of the same history that is simply not checked out or pulled here
    (a clone that is behind, an older detached checkout, tags fetched with a newer branch),
    and it is judged when the branch gets there. A commit beside the history, not after it,
    is foreign however it got here.

    With `cached` verdicts (from a checkpoint whose commit is on the branch) a tag whose ref
    still holds the same object keeps its verdict: all checks but "is it on the branch" depend
    on the object alone, and a branch only grows past its checkpoint. An off-branch verdict is
    judged again when its target is among the commits seen.
    """
    by_commit = {c.oid: c for c in audit.lifecycle}
    tags = _Tags()
    off: dict[str, tuple[_BadTag | None, str]] = {}  # ref -> (verdict or None: undecided, target)

    def judge(row: list[str]) -> None:
        try:
            verdict = _judge_tag(row, by_commit, known, audit.branch)
        except _Undecided:
            off[row[0]] = (None, row[3])
            return
        if isinstance(verdict, str):
            tags.fine[f"{row[0]} {row[4]}"] = verdict
        elif verdict[3]:
            off[row[0]] = (verdict, verdict[1])
        else:
            tags.bad[row[0]] = verdict

    def settle() -> _Tags:
        if not off:
            return tags
        ahead = loc.store.refs_containing(
            tip, sorted(off) if len(off) <= 500 else [f"refs/tags/{refs.TAG_PREFIX}/"]
        )
        for ref, (verdict, _target) in sorted(off.items()):
            if ref in ahead:
                tags.ahead.append(ref)
            elif verdict is None:
                raise _Undecided(ref)
            else:
                tags.bad[ref] = verdict
        return tags

    if cached is None:
        for row in _tag_rows(loc):
            judge(row)
        return settle()
    listing = loc.store.ref_objects(f"refs/tags/{refs.TAG_PREFIX}/")
    listed = {f"{ref} {oid}" for ref, oid in listing.items()}  # as `fine` is keyed
    kept = listed & cached.fine.keys()
    tags.fine = cached.fine if len(kept) == len(cached.fine) else {k: cached.fine[k] for k in kept}
    again: list[str] = []
    for line in listed - kept:
        ref, _, oid = line.partition(" ")
        bad = cached.bad.get(ref)
        if bad is not None and bad[0] == oid and not (bad[3] and known and bad[1] in known):
            tags.bad[ref] = bad
            continue
        again.append(ref)
    if again:
        tags.fine = dict(tags.fine)  # never add to the checkpoint's own dict
        wanted = set(again)
        for row in _tag_rows(loc, again if len(again) <= 2000 else None):
            if row[0] in wanted:
                judge(row)
                wanted.discard(row[0])
        if wanted:
            raise _Undecided(wanted.pop())  # it changed between the two listings
    return settle()


def _check_tags(loc: Location, audit: _Audit, tags: _Tags) -> int:
    findings, notes, trust = audit.findings, audit.notes, audit.trust
    checked_ids = {c.oid for c in audit.checked_lifecycle}
    tagged: set[str] = set()  # checked commits that have a tag
    to_verify: list[tuple[str, str, str | None, str]] = []  # (ref, tag object, blob, mode)
    pins: list[tuple[str, ...]] = []  # the GPG fingerprints pinned for each of to_verify
    for ref, (_oid, _target, problem, _off) in tags.bad.items():
        findings.append(Finding("tag", ref, problem))
    if tags.ahead:
        count = len(tags.ahead)
        notes.append(
            Finding(
                "tag",
                tags.ahead[0] if count == 1 else f"{count} tags",
                f"{'points' if count == 1 else 'point'} at commits after {audit.branch}'s tip, "
                "not checked out or pulled here: judged when the branch gets there",
            )
        )
    for key, target in [(k, t) for k, t in tags.fine.items() if t in checked_ids]:
        ref, _, oid = key.partition(" ")
        tagged.add(target)
        mode, blob = trust[target]
        if mode != "off":
            to_verify.append((ref, oid, blob, mode))
            pins.append(audit.gpg_pins.get(target, ()))
    for commit in audit.checked_lifecycle:
        if commit.oid not in tagged:
            t = commit.trailers
            findings.append(
                Finding(
                    "tag",
                    commit.oid,
                    f"lifecycle commit has no tag modelctl/{t.get('route')}/{t.get('stage')}/{t.get('seq')}",
                )
            )
    results = _tag_signatures(loc, to_verify)
    for (ref, _oid, _blob, mode), sig, pinned in zip(to_verify, results, pins, strict=True):
        if sig.good and not _unpinned(sig, pinned):
            continue
        text = f"tag {_describe(sig)}"
        if sig.status == "N" and mode == "optional":
            notes.append(Finding("signature", ref, text + " (signing: optional)"))
        else:
            findings.append(Finding("signature", ref, text))
    return len(tags.fine) + len(tags.bad)


def _tag_signatures(
    loc: Location, to_verify: list[tuple[str, str, str | None, str]]
) -> list[Signature]:
    """The signature status of each tag, as `git verify-tag` reports it.

    A tag object in which no line starts a signature block (`-----BEGIN ...`) is one
    `verify-tag` would answer "no signature found" for; reading them all with one
    `cat-file --batch` spares a git process per unsigned tag. Tags signed with SSH alone are
    verified many to a `verify-tag` process (it tells which verified, not why the others did
    not); every other signed tag, and each SSH tag that did not verify, gets its own.
    """
    objects = loc.store.read_blobs(oid for _, oid, _, _ in to_verify)
    results: list[Signature | None] = [
        None if b"-----BEGIN " in objects[oid] else Signature("N", "", "")
        for _, oid, _, _ in to_verify
    ]
    ssh: dict[str | None, list[int]] = {}  # trust blob -> tags signed with SSH only
    single: list[int] = []
    for i, found in enumerate(results):
        if found is None:
            data = objects[to_verify[i][1]]
            if data.count(b"-----BEGIN ") == 1 and b"\n-----BEGIN SSH SIGNATURE-----" in data:
                ssh.setdefault(to_verify[i][2], []).append(i)
            else:
                single.append(i)
    blobs = {b for i, found in enumerate(results) if found is None and (b := to_verify[i][2])}
    total = sum(len(group) for group in ssh.values()) + len(single)
    with (
        _trust_files(loc, blobs) as files,
        progress.bar("checking tag signatures", total=total) as advance,
    ):
        batches: list[Callable[[], Any]] = []
        members: list[list[int]] = []
        size = max(16, min(500, -(-total // (_workers() * 4))))
        for blob, group in ssh.items():
            path = files.get(blob) if blob else None
            for start in range(0, len(group), size):
                part = group[start : start + size]
                refs_ = [to_verify[i][0] for i in part]
                batches.append(partial(loc.store.good_ssh_tags, refs_, path))
                members.append(part)
        weights = [len(part) for part in members]
        for part, good in zip(members, _parallel(batches, advance, weights), strict=True):
            for i in part:
                if to_verify[i][0] in good:
                    results[i] = Signature("G", "", "")
                else:
                    single.append(i)
        jobs: list[Callable[[], Any]] = []
        for i in single:
            ref, _, blob, _ = to_verify[i]
            jobs.append(partial(loc.store.tag_signature, ref, files.get(blob) if blob else None))
        for i, sig in zip(single, _parallel(jobs), strict=True):
            results[i] = sig
    return [sig or Signature("N", "", "") for sig in results]


# --- the checkpoint -----------------------------------------------------------------------------


@dataclass
class _Checkpoint:
    tip: str
    base: str | None  # the commit `state` is current after (None: before the first commit)
    state: _State
    window: list[_Commit]  # the commits after `base`, up to `tip`
    tags: _Tags


def _checkpoint_path(loc: Location) -> Path:
    return loc.store.state_dir / "verify-checkpoint.json"


def _load_checkpoint(loc: Location, branch: str) -> _Checkpoint | None:
    try:
        data = json.loads(_checkpoint_path(loc).read_text())
        if (data["format"], data["branch"], data["prefix"]) != (
            CHECKPOINT_FORMAT,
            branch,
            loc.prefix,
        ):
            return None
        window = [
            _Commit(
                oid,
                list(parents),
                int(ctime),
                dict(trailers),
                [(s, p) for s, p in changes],
                {str(k): str(v) for k, v in added.items()},
            )
            for oid, parents, ctime, trailers, changes, added in data["window"]
        ]
        fine = data["fine"]
        if not isinstance(fine, dict) or not all(isinstance(v, str) for v in fine.values()):
            return None
        bad = {
            str(ref): (str(oid), str(target), str(problem), bool(off))
            for ref, (oid, target, problem, off) in data["bad"].items()
        }
        tags = _Tags(fine, bad)
        tip, base = str(data["tip"]), data["base"]
        if (window[-1].oid if window else base) != tip:
            return None
        return _Checkpoint(tip, base, _State.from_json(data["state"]), window, tags)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save_checkpoint(loc: Location, branch: str, checkpoint: _Checkpoint) -> None:
    payload = {
        "format": CHECKPOINT_FORMAT,
        "branch": branch,
        "prefix": loc.prefix,
        "tip": checkpoint.tip,
        "base": checkpoint.base,
        "state": checkpoint.state.to_json(),
        "window": [
            [c.oid, c.parents, c.time, c.trailers, c.changes, c.added] for c in checkpoint.window
        ],
        "fine": checkpoint.tags.fine,
        "bad": checkpoint.tags.bad,
    }
    write_cache(_checkpoint_path(loc), json.dumps(payload, separators=(",", ":")))


def _extend(loc: Location, old: str, tip: str) -> list[_Commit] | None:
    """The first-parent commits after `old` up to `tip`; None when `old` is not on that history."""
    if old == tip:
        return []
    if not loc.store.is_ancestor(old, tip):
        return None
    new = _commits(loc, f"{old}..{tip}")
    # `old..tip` stops at `old` only if `old` is on tip's first-parent line (and not, say,
    # merged in as a second parent): then the oldest new commit is its child.
    return new if new and new[0].parents[:1] == [old] else None


# --- the trust anchors: rollback and freeze --------------------------------------------------
#
# The speed checkpoint above may be thrown away at any time (a new format, a rewrite); the
# anchor may not. After every run without findings on a branch with lifecycle events (not on a
# detached HEAD: a CI checkout of any commit), `verify-anchor.json` records
# the commit verified, when, and each route and stage's last sequence number. A later run whose
# branch no longer contains that commit, or whose sequences are lower, fails until the user
# accepts the rewrite by naming the commit (`--accept-rewrite`) or deletes the file on purpose.

ANCHOR_FORMAT = 1
_LATE_KEPT = 10_000  # late commits an anchor remembers (only lifecycle commits dated too early)


@dataclass
class Guard:
    """What verify holds the history to besides its own consistency."""

    pins: list[str] = field(default_factory=list)  # commits that must be in the history
    roots: list[str] = field(default_factory=list)  # the root commit the history must start at
    accept_rewrite: str | None = None  # the checkpoint commit the user accepts losing


@dataclass
class _Anchor:
    commit: str
    verified_at: int
    seqs: dict[tuple[str, str], int]
    # Signed-for commits that reached the branch after an earlier anchor although their
    # committer date is earlier -> that anchor's time: the earliest they were on the branch.
    late: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        seqs = [[route, stage, n] for (route, stage), n in sorted(self.seqs.items())]
        return {
            "commit": self.commit,
            "verified_at": self.verified_at,
            "seqs": seqs,
            "late": self.late,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Anchor:
        commit, when = data["commit"], data["verified_at"]
        if not isinstance(commit, str) or not isinstance(when, int):
            raise ValueError("malformed anchor")
        seqs = {(str(route), str(stage)): int(n) for route, stage, n in data["seqs"]}
        late = {str(k): int(v) for k, v in data["late"].items()}
        return cls(commit, when, seqs, late)


def _anchor_path(loc: Location) -> Path:
    return loc.store.state_dir / "verify-anchor.json"


def _load_anchors(loc: Location) -> dict[str, _Anchor]:
    """Every branch's anchor; a file that exists but cannot be read is an error, not a miss."""
    path = _anchor_path(loc)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise _anchor_error(path, exc.strerror or str(exc)) from None
    try:
        data = json.loads(text)
        if data["format"] != ANCHOR_FORMAT:
            raise ValueError(f"format {data['format']!r}, this modelctl reads {ANCHOR_FORMAT}")
        return {str(k): _Anchor.from_json(v) for k, v in data["anchors"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _anchor_error(path, str(exc) or type(exc).__name__) from None


def _anchor_error(path: Path, why: str) -> Exception:
    from modelctl.errors import GitError

    return GitError(
        f"the verify checkpoint {path} cannot be read ({why}): the last verified state of the "
        "registry is unknown",
        hint="restore the file; or, if it was removed or replaced on purpose, delete it and run "
        "verify again (the next clean run records a new checkpoint)",
    )


def _save_anchors(loc: Location, anchors: dict[str, _Anchor]) -> None:
    payload = {"format": ANCHOR_FORMAT, "anchors": {k: a.to_json() for k, a in anchors.items()}}
    with contextlib.suppress(OSError):  # a read-only git dir: nothing to compare next time
        _anchor_path(loc).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(_anchor_path(loc), json.dumps(payload, separators=(",", ":")))


def _anchor_key(loc: Location, branch: str) -> str:
    return f"{branch}\0{loc.prefix}"


def _late(loc: Location, tip: str, anchor: _Anchor | None, audit: _Audit) -> dict[str, int]:
    """The anchor's late commits, plus the signed-for commits (lifecycle and trust changes)
    new since it but dated before it."""
    if anchor is None:
        return {}
    late = dict(anchor.late)
    checked = [*audit.checked_lifecycle, *audit.checked_trust]
    early = [c for c in checked if c.time < anchor.verified_at]
    if early and anchor.commit != tip and loc.store.is_ancestor(anchor.commit, tip):
        new = set(loc.store.first_parent_ids(anchor.commit, tip))
        late.update({c.oid: anchor.verified_at for c in early if c.oid in new})
    return late


def _check_anchor(
    loc: Location, branch: str, tip: str, anchor: _Anchor, audit: _Audit, accept: str | None
) -> bool:
    """Findings when the history lost the anchor's commit or a sequence went back.

    Returns whether such a loss was accepted (`--accept-rewrite` naming the commit): then they
    are notes instead.
    """
    name = branch.removeprefix("refs/heads/")
    when = history.iso(anchor.verified_at)
    accepted = accept is not None and _names(accept, anchor.commit)
    out = audit.notes if accepted else audit.findings
    how = (
        "accepted with --accept-rewrite"
        if accepted
        else "if this was intended, accept it: modelctl verify --accept-rewrite "
        f"{anchor.commit[:12]}"
    )
    lost = False
    if anchor.commit != tip and not loc.store.is_ancestor(anchor.commit, tip):
        lost = True
        dropped = loc.store.count_only_in(anchor.commit, tip)
        gone = (
            f"{dropped} commit(s) of the verified history are not on it"
            if dropped is not None
            else "its objects are not in this clone"
        )
        out.append(
            Finding(
                "checkpoint",
                anchor.commit,
                f"the history of {name} no longer contains {anchor.commit[:12]}, which verify "
                f"accepted at {when}: {gone}; the branch was reset, rebuilt or force-pushed "
                f"(a rollback or freeze attack, or a rewrite); {how}",
            )
        )
    for (route, stage), seq in sorted(anchor.seqs.items()):
        now = audit.state.last_seq.get((route, stage), 0)
        if now < seq:
            lost = True
            out.append(
                Finding(
                    "checkpoint",
                    f"{refs.TAG_PREFIX}/{route}/{stage}",
                    f"{route} {stage}: the sequence went back from {seq} to {now} since verify "
                    f"accepted {anchor.commit[:12]} at {when}: lifecycle events were dropped; "
                    f"{how}",
                )
            )
    return accepted and lost


def _names(prefix: str, commit: str) -> bool:
    text = prefix.strip().lower()
    return len(text) >= 7 and commit.startswith(text)


def _check_pins(loc: Location, branch: str, tip: str, guard: Guard, audit: _Audit) -> None:
    """Findings for pinned commits missing from the history and a root that is not pinned."""
    name = branch.removeprefix("refs/heads/")
    for rev in dict.fromkeys(guard.pins):
        commit = loc.store.resolve(rev)
        if commit is None:
            audit.findings.append(
                Finding(
                    "anchor",
                    rev,
                    f"the pinned commit {rev} is not in this repository: the history was "
                    "rebuilt without it, or this clone lacks it (a shallow clone: fetch the "
                    "whole history)",
                )
            )
        elif not loc.store.is_ancestor(commit, tip):
            audit.findings.append(
                Finding(
                    "anchor",
                    commit,
                    f"the pinned commit {commit[:12]} ({rev}) is not in the history of {name}: "
                    "it was rewritten or rolled back past it",
                )
            )
    if guard.roots:
        roots = loc.store.root_commits(tip)
        for pinned in dict.fromkeys(guard.roots):
            if not any(_names(pinned, root) for root in roots):
                starts = ", ".join(r[:12] for r in roots)
                audit.findings.append(
                    Finding(
                        "anchor",
                        pinned,
                        f"the history of {name} starts at {starts}, not at the pinned root "
                        f"{pinned[:12]}: it was rebuilt from a new root",
                    )
                )


def pinned_guard(loc: Location, trust: list[str], accept_rewrite: str | None) -> Guard:
    """`--trust` revisions plus the clone's `modelctl.trust` and `modelctl.trustRoot` config."""
    config = [(k, v.strip()) for k, v in loc.store.config_values(r"^modelctl\.trust(root)?$")]
    pins = [*trust, *(value for key, value in config if key == "modelctl.trust" and value)]
    roots = [value for key, value in config if key == "modelctl.trustroot" and value]
    return Guard(pins, roots, accept_rewrite)


# --- verify -------------------------------------------------------------------------------------


def verify(loc: Location, since: str | None = None, guard: Guard | None = None) -> VerifyResult:
    started = time.perf_counter()
    guard = guard or Guard()
    branch, tip = history.branch_tip(loc)
    anchors = _load_anchors(loc)
    anchor = anchors.get(_anchor_key(loc, branch)) if branch != "HEAD" else None
    if guard.accept_rewrite is not None and (
        anchor is None or not _names(guard.accept_rewrite, anchor.commit)
    ):
        from modelctl.errors import UsageError

        where = f"is {anchor.commit}" if anchor else "does not exist"
        raise UsageError(
            f"--accept-rewrite {guard.accept_rewrite}: the verify checkpoint of "
            f"{branch.removeprefix('refs/heads/')} {where}",
            hint="name the commit the checkpoint finding reports (at least 7 characters)",
        )
    context = (guard, anchors, anchor)
    base = None
    if since is not None:
        base = loc.store.resolve(since)
        if base is None:
            from modelctl.errors import UsageError

            raise UsageError(f"--since {since!r} is not a commit or tag")
        resumed = _resume(loc, branch, tip, base)
        if resumed is not None:
            return _result(branch, tip, started, *resumed, context)
    commits = _commits(loc, tip)
    start_index = 0
    if base is not None:
        index = {c.oid: i for i, c in enumerate(commits)}
        if base not in index:
            from modelctl.errors import UsageError

            raise UsageError(f"--since {since} is not on {branch}'s first-parent history")
        start_index = index[base] + 1
    audit = _Audit(loc, branch, _State())
    window_start, window_state = audit.run(commits, start_index)
    verdicts = _judge_tags(loc, audit, tip, None, None)
    base_oid = commits[window_start - 1].oid if window_start else None
    checkpoint = _Checkpoint(tip, base_oid, window_state, commits[window_start:], verdicts)
    count = len(commits) - start_index
    return _result(branch, tip, started, audit, verdicts, count, checkpoint, context)


def _resume(
    loc: Location, branch: str, tip: str, base: str
) -> tuple[_Audit, _Tags, int, _Checkpoint | None] | None:
    """The `--since base` audit from the checkpoint, or None when it cannot be used."""
    old = _load_checkpoint(loc, branch)
    if old is None:
        return None
    new = _extend(loc, old.tip, tip)
    if new is None:
        return None
    commits = old.window + new
    if base == old.base:
        start_index = 0
    else:
        index = {c.oid: i for i, c in enumerate(commits)}
        if base not in index:
            return None  # before the window (or not on the branch: the full run says which)
        start_index = index[base] + 1
    audit = _Audit(loc, branch, old.state.copy())
    window_start, window_state = audit.run(commits, start_index)
    try:
        verdicts = _judge_tags(loc, audit, tip, {c.oid for c in commits}, old.tags)
    except _Undecided:
        return None
    checkpoint = None
    if tip != old.tip or verdicts.fine != old.tags.fine or verdicts.bad != old.tags.bad:
        base_oid = commits[window_start - 1].oid if window_start else old.base
        checkpoint = _Checkpoint(tip, base_oid, window_state, commits[window_start:], verdicts)
    return audit, verdicts, len(commits) - start_index, checkpoint


def _result(
    branch: str,
    tip: str,
    started: float,
    audit: _Audit,
    verdicts: _Tags,
    commits: int,
    checkpoint: _Checkpoint | None,
    context: tuple[Guard, dict[str, _Anchor], _Anchor | None],
) -> VerifyResult:
    loc = audit.loc
    guard, anchors, anchor = context
    late = _late(loc, tip, anchor, audit)
    _check_signatures(
        loc,
        [*audit.checked_lifecycle, *audit.checked_trust],
        audit.trust,
        audit.findings,
        audit.notes,
        audit.trust_changes,
        audit.gpg_pins,
        late,
    )
    tag_count = _check_tags(loc, audit, verdicts)
    _check_pins(loc, branch, tip, guard, audit)
    accepted = anchor is not None and _check_anchor(
        loc, branch, tip, anchor, audit, guard.accept_rewrite
    )
    if checkpoint is not None:
        _save_checkpoint(loc, branch, checkpoint)
    # Only a branch with lifecycle history is anchored: rebasing one without (a pull request's
    # branch of new manifests) is ordinary work, not a rollback.
    if not audit.findings and branch != "HEAD" and (audit.state.last_seq or anchor is not None):
        if accepted:  # what reached the branch since the old anchor is not known: none late
            late = {}
        seqs = dict(audit.state.last_seq)
        if anchor is not None and not accepted:  # never lower than what was seen before
            for key, seq in anchor.seqs.items():
                seqs[key] = max(seq, seqs.get(key, 0))
        kept = dict(list(late.items())[-_LATE_KEPT:])
        anchors[_anchor_key(loc, branch)] = _Anchor(tip, int(time.time()), seqs, kept)
        _save_anchors(loc, anchors)
    return VerifyResult(
        branch.removeprefix("refs/heads/"),
        tip,
        commits,
        len(audit.checked_lifecycle),
        tag_count,
        round(time.perf_counter() - started, 3),
        sorted(set(audit.findings), key=_finding_order),
        sorted(set(audit.notes), key=_finding_order),
    )
