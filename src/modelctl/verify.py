"""`modelctl verify`: audit the registry branch's whole history.

Findings (each fails verify):
- a lifecycle commit or tag not signed with a good signature by a key in the allowed-signers
  file *as it stood in the commit's parent* (a change to that file cannot approve itself);
  any status but `G` fails, including GPG's "good but untrusted";
- a lifecycle tag that is lightweight, whose tag header differs from its ref name (a signed
  tag moved to another name), or whose commit's trailers name another route, stage or
  sequence; a lifecycle commit without its tag;
- sequence numbers per route and stage with a gap, a reuse or a decrease;
- committer dates that go backwards along lifecycle history (or below any earlier commit's,
  which catches a lifecycle commit backdated into an expired key's validity window), or lie
  in the future;
- a committed version file modified or deleted later;
- a lifecycle commit touching more than its route file (and eval records), or made for
  another branch (`Modelctl-Ref`);
- route-file changes made outside modelctl (unattested).
Unsigned lifecycle commits in a registry with `signing: optional` are listed as notes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from modelctl import history, refs
from modelctl.gitstore import Signature
from modelctl.registry import VERSIONED, Location

FUTURE_SKEW = 300  # seconds a committer date may lie ahead of this machine's clock
_VERSIONED_PREFIXES = tuple(f"{c}/" for c in VERSIONED)


@dataclass(frozen=True, order=True)
class Finding:
    check: str  # signature, tag, sequence, date, immutable, scope, unattested
    where: str  # a commit id or a ref
    message: str


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


_FORMAT = "%x1e%H%x00%P%x00%ct%x00%(trailers:only,unfold)%x00"


def _commits(loc: Location, tip: str) -> list[_Commit]:
    """Every first-parent commit up to `tip`, oldest first, with the paths each changed.

    A merge's changes are those against its first parent: what it brought onto the branch.
    """
    raw = loc.store.git(
        "log", "--no-show-signature", "--first-parent", "--no-renames", "--raw", "--no-abbrev",
        "--diff-merges=first-parent", "--reverse",
        f"--format={_FORMAT}", "--end-of-options", tip,
    ).stdout  # fmt: skip
    out = []
    for chunk in raw.split(b"\x1e"):
        if not chunk.strip():
            continue
        oid, parents, ctime, trailers, rest = chunk.decode("utf-8", "replace").split("\x00", 4)
        changes = []
        for line in rest.splitlines():
            if not line.startswith(":") or "\t" not in line:
                continue
            meta, _, path = line.partition("\t")
            status = meta.split()[-1][0]
            if path.startswith(loc.prefix):
                changes.append((status, path[len(loc.prefix) :]))
        out.append(
            _Commit(oid, parents.split(), int(ctime), history.parse_trailers(trailers), changes)
        )
    return out


def _trust_blobs(
    loc: Location, commits: list[_Commit], trust_changes: set[str]
) -> dict[str, tuple[str, str | None]]:
    """For each commit: (signing mode, allowed-signers blob) as they stood in its parent.

    The mode is the one for the commit's stage: a stage's `require_signed` overrides the
    registry's setting there, as it does when modelctl writes (`commits.decide_signing`).
    Commits that change `modelctl.yaml` or the allowed-signers file are added to
    `trust_changes`: they are held to the registry's mode too, or one unsigned commit could
    add a key or turn signing off.
    """
    from modelctl.registry import parse_entry

    settings_path = refs.SETTINGS_FILE
    mode, signers_path, blob = "optional", ".modelctl/allowed_signers", None
    stage_modes: dict[str, str] = {}
    # One ls-tree per commit would be slow; the raw log already says when each file changed.
    out: dict[str, tuple[str, str | None]] = {}
    for commit in commits:
        stage = commit.trailers.get("stage", "")
        touched = {path for _, path in commit.changes}
        if settings_path in touched or signers_path in touched:
            trust_changes.add(commit.oid)
            out[commit.oid] = (mode, blob)
        else:
            out[commit.oid] = (stage_modes.get(stage, mode), blob)
        if settings_path in touched:
            oid = loc.store.object_at(commit.oid, loc.repo_path(settings_path))
            if oid is not None:
                raw = loc.store.read_blobs([oid])[oid]
                entry = parse_entry(settings_path, raw, oid, "settings")
                if entry.data is not None:
                    mode = entry.data.get("signing", "optional")
                    signers_path = entry.data.get("allowed_signers", signers_path)
                    stage_modes = {
                        item["name"]: "required" if item["require_signed"] else "optional"
                        for item in entry.data.get("stages", [])
                        if item.get("require_signed") is not None
                    }
        if signers_path in touched or settings_path in touched:
            blob = loc.store.object_at(commit.oid, loc.repo_path(signers_path))
    return out


@contextlib.contextmanager
def _trust_files(loc: Location, blobs: set[str]) -> Iterator[dict[str, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="verify-", dir=_state(loc)))
    try:
        files = {}
        contents = loc.store.read_blobs(blobs)
        for oid, data in contents.items():
            files[oid] = folder / oid
            files[oid].write_bytes(data)
        yield files
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()


def _state(loc: Location) -> Path:
    loc.store.state_dir.mkdir(parents=True, exist_ok=True)
    return loc.store.state_dir


def _parallel(jobs: list[Callable[[], Any]]) -> list[Any]:
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    if workers == 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def _commit_signatures(
    loc: Location, wanted: dict[str, str | None], trust: dict[str, Path]
) -> dict[str, Signature]:
    """Check commits in parallel chunks, each against its own trust file."""
    by_trust: dict[str | None, list[str]] = {}
    for oid, blob in wanted.items():
        by_trust.setdefault(blob, []).append(oid)
    jobs: list[Callable[[], Any]] = []
    chunk = 64
    for blob, oids in by_trust.items():
        path = trust.get(blob) if blob else None
        for i in range(0, len(oids), chunk):
            part = oids[i : i + chunk]
            jobs.append(partial(loc.store.commit_signatures, part, path))
    found: dict[str, Signature] = {}
    for result in _parallel(jobs):
        found.update(result)
    return found


_DESCRIBE = {
    "N": "is not signed",
    "B": "has a bad signature (changed after signing, revoked key or wrong namespace)",
    "U": "is signed by a key that is not in the allowed-signers file (or is expired or untrusted)",
    "X": "has an expired signature",
    "Y": "is signed by an expired key",
    "R": "is signed by a revoked key",
    "E": "has a signature that cannot be checked (missing key)",
}


def verify(loc: Location, since: str | None = None) -> VerifyResult:
    started = time.perf_counter()
    branch, tip = history.branch_tip(loc)
    commits = _commits(loc, tip)
    start_index = 0
    if since is not None:
        base = loc.store.resolve(since)
        if base is None:
            from modelctl.errors import UsageError

            raise UsageError(f"--since {since!r} is not a commit or tag")
        index = {c.oid: i for i, c in enumerate(commits)}
        if base not in index:
            from modelctl.errors import UsageError

            raise UsageError(f"--since {since} is not on {branch}'s first-parent history")
        start_index = index[base] + 1
    findings: list[Finding] = []
    notes: list[Finding] = []
    trust_changes: set[str] = set()
    trust = _trust_blobs(loc, commits, trust_changes)

    lifecycle: list[_Commit] = []
    last_seq: dict[tuple[str, str], int] = {}
    last_time: int | None = None
    latest: int | None = None  # the latest committer date of any commit so far
    now = time.time()
    for position, commit in enumerate(commits):
        checked = position >= start_index
        floor, latest = latest, max(latest or commit.time, commit.time)
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
        if not is_lifecycle:
            if route_changes and checked and action != "init":
                findings.append(
                    Finding(
                        "unattested",
                        commit.oid,
                        f"changes {', '.join(route_changes)} without modelctl trailers "
                        "(made outside deploy/promote/rollback)",
                    )
                )
            continue
        lifecycle.append(commit)
        route, stage = t.get("route", ""), t.get("stage", "")
        try:
            seq = int(t.get("seq", ""))
        except ValueError:
            seq = -1
        key = (route, stage)
        expected = last_seq.get(key, 0) + 1
        if checked and seq != expected:
            problem = "reuses" if 0 < seq < expected else ("skips to" if seq > expected else "has")
            findings.append(
                Finding(
                    "sequence",
                    commit.oid,
                    f"{route} {stage}: {problem} sequence {seq}; expected {expected}",
                )
            )
        last_seq[key] = max(seq, last_seq.get(key, 0))
        if checked:
            if last_time is not None and commit.time < last_time:
                findings.append(
                    Finding(
                        "date",
                        commit.oid,
                        f"committer date {history.iso(commit.time)} is earlier than the previous "
                        f"lifecycle commit's ({history.iso(last_time)})",
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
            if commit.time > now + FUTURE_SKEW:
                findings.append(
                    Finding(
                        "date",
                        commit.oid,
                        f"committer date {history.iso(commit.time)} is in the future",
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
            if t.get("ref") and t["ref"] != branch:
                findings.append(
                    Finding(
                        "scope",
                        commit.oid,
                        f"was made for {t['ref']} but is on {branch} (a commit moved between branches)",
                    )
                )
            if len(commit.parents) > 1:
                findings.append(Finding("scope", commit.oid, "lifecycle commit is a merge"))
        last_time = max(last_time or commit.time, commit.time)

    order = {c.oid: i for i, c in enumerate(commits)}
    checked_lifecycle = [c for c in lifecycle if order[c.oid] >= start_index]
    checked_trust = [
        c for c in commits
        if c.oid in trust_changes and order[c.oid] >= start_index and c not in checked_lifecycle
    ]  # fmt: skip
    _check_signatures(
        loc, [*checked_lifecycle, *checked_trust], trust, findings, notes, trust_changes
    )
    tag_count = _check_tags(loc, branch, lifecycle, checked_lifecycle, trust, findings, notes)
    return VerifyResult(
        branch.removeprefix("refs/heads/"),
        tip,
        len(commits) - start_index,
        len(checked_lifecycle),
        tag_count,
        round(time.perf_counter() - started, 3),
        sorted(set(findings)),
        sorted(set(notes)),
    )


def _check_signatures(
    loc: Location,
    lifecycle: list[_Commit],
    trust: dict[str, tuple[str, str | None]],
    findings: list[Finding],
    notes: list[Finding],
    trust_changes: set[str],
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
    with _trust_files(loc, blobs) as files:
        sigs = _commit_signatures(loc, wanted, files)
    for oid in wanted:
        mode = trust[oid][0]
        sig = sigs.get(oid, Signature("N", "", ""))
        if sig.good:
            continue
        what = (
            "commit changing the signing settings or allowed signers"
            if oid in trust_changes
            else "lifecycle commit"
        )
        text = f"{what} {_DESCRIBE.get(sig.status, 'has signature status ' + sig.status)}"
        if sig.status == "N" and mode == "optional":
            notes.append(Finding("signature", oid, text + " (signing: optional)"))
        else:
            findings.append(Finding("signature", oid, text))


def _check_tags(
    loc: Location,
    branch: str,
    lifecycle: list[_Commit],
    checked: list[_Commit],
    trust: dict[str, tuple[str, str | None]],
    findings: list[Finding],
    notes: list[Finding],
) -> int:
    raw = loc.store.out(
        "for-each-ref",
        "--format=%(refname)%00%(objecttype)%00%(tag)%00%(*objectname)%00%(objectname)",
        f"refs/tags/{refs.TAG_PREFIX}/",
    )
    by_commit = {c.oid: c for c in lifecycle}
    checked_ids = {c.oid for c in checked}
    tagged: set[str] = set()
    to_verify: list[tuple[str, str, str | None, str]] = []
    count = 0
    for line in raw.splitlines():
        ref, objtype, header, target, _oid = line.split("\x00")
        count += 1
        name = ref.removeprefix("refs/tags/")
        try:
            tag = refs.parse_lifecycle_tag(name)
        except Exception:
            findings.append(
                Finding("tag", ref, "is under modelctl/ but is not a lifecycle tag name")
            )
            continue
        if objtype != "tag":
            findings.append(
                Finding("tag", ref, "is a lightweight tag; lifecycle tags are annotated")
            )
            continue
        if header != name:
            findings.append(
                Finding(
                    "tag", ref, f"holds a tag object named {header!r} (a tag moved to another name)"
                )
            )
            continue
        commit = by_commit.get(target)
        if commit is None:
            findings.append(
                Finding("tag", ref, f"points at {target[:12]}, not a lifecycle commit on {branch}")
            )
            continue
        t = commit.trailers
        if (t.get("route"), t.get("stage"), t.get("seq")) != (tag.route, tag.stage, str(tag.seq)):
            findings.append(
                Finding(
                    "tag",
                    ref,
                    f"points at a commit for {t.get('route')} {t.get('stage')} #{t.get('seq')}",
                )
            )
            continue
        tagged.add(target)
        mode, blob = trust[target]
        if target in checked_ids and mode != "off":
            to_verify.append((ref, target, blob, mode))
    for commit in checked:
        if commit.oid not in tagged:
            t = commit.trailers
            findings.append(
                Finding(
                    "tag",
                    commit.oid,
                    f"lifecycle commit has no tag modelctl/{t.get('route')}/{t.get('stage')}/{t.get('seq')}",
                )
            )
    blobs = {b for _, _, b, _ in to_verify if b}
    with _trust_files(loc, blobs) as files:
        jobs: list[Callable[[], Any]] = [
            partial(loc.store.tag_signature, ref, files.get(blob) if blob else None)
            for ref, _, blob, _ in to_verify
        ]
        results = _parallel(jobs)
    for (ref, _target, _blob, mode), sig in zip(to_verify, results, strict=True):
        if sig.good:
            continue
        text = f"tag {_DESCRIBE.get(sig.status, 'has signature status ' + sig.status)}"
        if sig.status == "N" and mode == "optional":
            notes.append(Finding("signature", ref, text + " (signing: optional)"))
        else:
            findings.append(Finding("signature", ref, text))
    return count
