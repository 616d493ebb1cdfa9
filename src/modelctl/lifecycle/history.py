"""Lifecycle history: events per route and stage, timelines, and point-in-time resolution.

Everything comes from the registry branch's first-parent history: each commit that touches
`routes/<route>.yaml` is read once (its trailers and the route file's blob), and a stage's
event is a commit after which that stage's binding differs from before. Commits made by
modelctl carry `Modelctl-*` trailers; a change without them is an *unattested* event.

Per-route records are cached in `.git/modelctl/events/` keyed by the commit they are current
to and extended incrementally (`git log OLD..NEW`, used only when OLD is on NEW's first-parent
history), so a warm query on one route costs one `rev-parse` whatever the size of the rest of
the registry.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from modelctl.errors import GitError, UsageError
from modelctl.gitstore.atomic import write_cache
from modelctl.registry import refs
from modelctl.registry.snapshot import Location

CACHE_FORMAT = 4  # 3: read with replace objects and grafts ignored; 4: trailers decoded
LIFECYCLE_ACTIONS = ("deploy", "promote", "rollback", "import")
_FIELDS = ("%H", "%P", "%ct", "%an", "%ae", "%cn", "%ce", "%(trailers:only,unfold)")
# One commit of `git log --raw`: its fields (as _FIELDS) and the raw diff lines after them.
LogEntry = tuple[list[str], str]


@dataclass
class Record:
    """One commit that touched a route file, as read from git (cached)."""

    commit: str
    parent: str | None
    time: int  # committer time, seconds since the epoch
    author: str
    email: str
    committer: str
    trailers: dict[str, str]
    blob: str | None  # the route file's blob after the commit; None when it was deleted
    stages: dict[str, Any] | None  # stage -> binding, parsed from the blob; None if unreadable


@dataclass
class Event:
    """A change of what one stage of one route serves."""

    route: str
    stage: str
    action: str  # deploy, promote, rollback, import, or unattested
    seq: int | None
    commit: str
    time: int
    author: str
    email: str
    binding: dict[str, Any] | None  # None: the stage serves nothing after this event
    previous: dict[str, Any] | None
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return f"modelctl/{self.route}/{self.stage}/{self.seq}" if self.seq is not None else None

    @property
    def when(self) -> str:
        return iso(self.time)

    @property
    def eval_id(self) -> str | None:
        """The EvalRun that gated this change (`Modelctl-Eval`)."""
        return self.trailers.get("eval")

    @property
    def reason(self) -> str | None:
        """`Modelctl-Reason`, with anything credential-shaped redacted: modelctl refuses to
        write one, but a commit made by hand may hold it, and history must not print it."""
        from modelctl.registry.secretscan import redact

        text = self.trailers.get("reason")
        return redact(text) if text is not None else None

    @property
    def canary(self) -> int | None:
        """The canary percentage of a canary promotion (`Modelctl-Canary`)."""
        text = self.trailers.get("canary")
        return int(text) if text and text.isdigit() else None


def gating_event(stage_events: list[Event]) -> Event | None:
    """The event whose eval gated what the stage serves after the last of `stage_events`:
    that event when it carries an eval, else, for a rollback, the event it restored
    (`Modelctl-Restores`, followed through rollbacks of rollbacks); None when the stage
    serves nothing or what it serves was not gated."""
    by_tag = {e.tag: e for e in stage_events if e.tag}
    event = stage_events[-1] if stage_events else None
    for _ in range(len(stage_events)):  # a cycle of restores cannot loop forever
        if event is None or event.binding is None:
            return None
        if event.eval_id:
            return event
        restores = event.trailers.get("restores")
        event = by_tag.get(restores) if event.action == "rollback" and restores else None
    return None


def canary_start(stage_events: list[Event]) -> int | None:
    """The index of the event that started the canary the stage is running after the last of
    `stage_events` (the trailing run of canary promotions); None when none is running."""
    start = None
    for index in range(len(stage_events) - 1, -1, -1):
        event = stage_events[index]
        if event.action != "promote" or event.canary is None:
            break
        start = index
    return start


def release_start(stage_events: list[Event]) -> int:
    """The index of the event that started the release the last of `stage_events` belongs
    to: the first canary of a canary that the last promotion completed (or continues), else
    the last event itself. -1 when there are no events."""
    k = len(stage_events) - 1
    while k > 0 and stage_events[k].action == "promote":
        before = stage_events[k - 1]
        if before.action != "promote" or before.canary is None:
            break
        k -= 1
    return k


_LATEST = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold


def commit_epoch(text: str) -> int:
    """A commit's `%ct` as seconds since the epoch. git prints nothing for a date it cannot
    parse, and any number a hand-made object holds: read as 0, or held to what a datetime can
    show, so a commit someone else wrote cannot crash a reader (verify reports its date)."""
    text = text.strip()
    return min(int(text), _LATEST) if text.isascii() and text.isdigit() else 0


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def parse_trailers(text: str) -> dict[str, str]:
    """`Key: value` lines (as git prints `%(trailers:only,unfold)`); Modelctl-* keys kept,
    their values decoded as `commits.trailers` encoded them.

    Lines end at a newline only, as git reads them: a carriage return or any other separator
    inside a value is part of that value, never the start of another trailer.
    """
    from modelctl.registry.commits import decode_value

    out: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition(": ")
        if sep and key.startswith("Modelctl-"):
            out[key.removeprefix("Modelctl-").lower()] = decode_value(value.strip())
    return out


# --- reading records from git ---------------------------------------------------------------


def _parse_log(entries: list[LogEntry], route_paths: dict[str, str]) -> list[tuple[str, Record]]:
    """(route, record) pairs from `git log --raw` entries, newest first."""
    out: list[tuple[str, Record]] = []
    for head, tail in entries:
        changes = []  # the raw lines of route files; most commits of a range touch none
        for line in tail.splitlines():
            if not line.startswith(":"):
                continue
            meta, _, path = line.partition("\t")
            fields = meta.split()
            route = route_paths.get(path)
            if route is not None and len(fields) >= 5:
                changes.append((route, fields))
        if not changes:
            continue
        commit, parents, ctime, an, ae, cn, _ce, trailers = head
        parent = parents.split()[0] if parents.strip() else None
        parsed_trailers = parse_trailers(trailers)
        for route, fields in changes:
            new_blob = fields[3]
            blob = None if fields[4].startswith("D") or set(new_blob) == {"0"} else new_blob
            out.append(
                (
                    route,
                    Record(
                        commit, parent, commit_epoch(ctime), an, ae, cn, parsed_trailers, blob, None
                    ),
                )
            )
    return out


def _log(loc: Location, revisions: str, *pathspec: str) -> list[LogEntry]:
    """`git log --raw` of the first-parent commits in `revisions`, newest first."""
    return loc.store.first_parent_log(_FIELDS, revisions, pathspec)


def _log_since(loc: Location, since: str, tip: str) -> list[LogEntry] | None:
    """The log of the first-parent commits after `since` up to `tip`, or None when `since` is
    not on tip's first-parent history (then records cached for it do not describe tip's).

    Not limited to a path: the oldest commit it lists must be a child of `since`. When
    `since` is only a second-parent ancestor (a side branch merged in), `since..tip` also
    stops at it, yet its own first-parent commits are not on tip's history.
    """
    if not loc.store.is_ancestor(since, tip):
        return None
    entries = _log(loc, f"{since}..{tip}")
    parents = entries[-1][0][1].split() if entries else []
    return entries if parents[:1] == [since] else None


def _parse_stages(raw: bytes, label: str) -> dict[str, Any] | None:
    """The `stages` of a route file; None when it is not a valid route.

    No secret scan: history reports what a committed file said; `validate` and the hooks are
    where a secret in it is refused.
    """
    from modelctl.registry import validation

    data, problems = validation.check_file(label, raw, "routes", secrets=False)
    return dict(data.get("stages", {})) if data is not None and not problems else None


def _fill_stages(
    loc: Location, records: list[Record], route: str, blobs: dict[str, bytes] | None = None
) -> None:
    if blobs is None:
        blobs = loc.store.read_blobs(r.blob for r in records if r.blob and r.stages is None)
    parsed: dict[str, dict[str, Any] | None] = {}
    for record in records:
        if record.blob is None:
            record.stages = {}
        elif record.stages is None:
            if record.blob not in parsed:
                parsed[record.blob] = _parse_stages(blobs[record.blob], str(refs.route_path(route)))
            record.stages = parsed[record.blob]


# --- the per-route cache -------------------------------------------------------------------


def _cache_file(loc: Location, route: str) -> Path:
    return loc.store.state_dir / "events" / f"{route}.json"


def _load_cache(path: Path) -> dict[str, Any] | None:
    try:
        payload: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload if payload.get("format") == CACHE_FORMAT else None


def _save_cache(path: Path, tip: str, records: list[Record]) -> None:
    payload = {"format": CACHE_FORMAT, "tip": tip, "records": [r.__dict__ for r in records]}
    write_cache(path, json.dumps(payload, separators=(",", ":")))


def route_records(loc: Location, route: str, tip: str) -> list[Record]:
    """Every commit on the first-parent history up to `tip` that touched the route, oldest first."""
    refs.check_name(route, "route name")
    path = _cache_file(loc, route)
    cached = _load_cache(path)
    records: list[Record] = []
    repo_path = loc.repo_path(str(refs.route_path(route)))
    raw = None
    if cached is not None:
        old = [Record(**r) for r in cached["records"]]
        if cached["tip"] == tip:
            return old
        raw = _log_since(loc, cached["tip"], tip)
        if raw is not None:
            records = old
    if raw is None:
        raw = _log(loc, tip, repo_path)
    fresh = [r for _, r in _parse_log(raw, {repo_path: route})]
    fresh.reverse()
    known = {r.commit for r in records}
    records += [r for r in fresh if r.commit not in known]
    _fill_stages(loc, records, route)
    _save_cache(path, tip, records)
    return records


def all_route_records(loc: Location, tip: str) -> dict[str, list[Record]]:
    """Records of every route that ever existed, with one `git log` for all routes."""
    prefix = loc.repo_path("routes/")
    marker = loc.store.state_dir / "events" / "_tip"
    try:
        since = marker.read_text().strip()
    except OSError:
        since = ""
    routes: dict[str, list[Record]] = {}
    if since != tip:
        raw = _log_since(loc, since, tip) if since else None
        if raw is None:
            since = ""
            raw = _log(loc, tip, prefix)
        paths = _route_paths_in(raw, prefix)
        fresh: dict[str, list[Record]] = {}
        for route, record in _parse_log(raw, paths):
            fresh.setdefault(route, []).append(record)
        pending: dict[str, list[Record]] = {}
        for route, new in fresh.items():
            cached = _load_cache(_cache_file(loc, route))
            if since and cached is not None and cached["tip"] != since:
                # Cached for another commit (say, by a query about an older one): not known
                # to hold every record up to `since`, so it brings itself up to date alone.
                routes[route] = route_records(loc, route, tip)
                continue
            old = [Record(**r) for r in cached["records"]] if cached and since else []
            known = {r.commit for r in old}
            pending[route] = old + [r for r in reversed(new) if r.commit not in known]
        # Every route's new blobs in one cat-file, not one process per route.
        blobs = loc.store.read_blobs(
            r.blob for merged in pending.values() for r in merged if r.blob and r.stages is None
        )
        for route, merged in pending.items():
            _fill_stages(loc, merged, route, blobs)
            _save_cache(_cache_file(loc, route), tip, merged)
            routes[route] = merged
        write_cache(marker, tip)
        unchanged = since  # routes not in `fresh` did not change after it
    else:
        unchanged = ""
    folder = loc.store.state_dir / "events"
    for cache in folder.glob("*.json") if folder.is_dir() else []:
        route = cache.stem
        if route in routes:
            continue
        cached = _load_cache(cache) if unchanged else None
        if cached is not None and cached["tip"] == unchanged:
            # Up to date as it is: spare it a merge-base and a log of its own.
            routes[route] = [Record(**r) for r in cached["records"]]
            _save_cache(cache, tip, routes[route])
        else:
            routes[route] = route_records(loc, route, tip)
    return routes


def _route_paths_in(entries: list[LogEntry], prefix: str) -> dict[str, str]:
    paths: dict[str, str] = {}
    for _, tail in entries:
        for line in tail.splitlines():
            if line.startswith(":") and "\t" in line:
                path = line.split("\t", 1)[1]
                name = path[len(prefix) :].removesuffix(".yaml")
                if (
                    path.startswith(prefix)
                    and path.endswith(".yaml")
                    and refs.name_problem(name) is None
                ):
                    paths[path] = name
    return paths


# --- events and timelines --------------------------------------------------------------------


def _seq(trailers: dict[str, str]) -> int | None:
    try:
        return int(trailers["seq"])
    except (KeyError, ValueError):
        return None


def _effective_time(committed: int, trailers: dict[str, str]) -> int:
    """When an event took effect: its commit time, except for history imported from another
    registry, which took effect when it originally happened (`Modelctl-Original-Date`).

    Never later than its commit: what a message says can move an imported event back to when
    it happened, never hide a change that was already in force.
    """
    if trailers.get("action") != "import" or not trailers.get("original-date"):
        return committed
    parsed = parse_time(trailers["original-date"])
    return min(int(parsed[0].timestamp()), committed) if parsed else committed


def events(route: str, records: list[Record], stage: str | None = None) -> list[Event]:
    """Stage events in order: a record after which a stage's binding differs from before."""
    out: list[Event] = []
    current: dict[str, Any] = {}
    for record in records:
        if record.stages is None:
            continue  # an unreadable route file changes nothing we can attribute
        for name in sorted(set(current) | set(record.stages)):
            if stage is not None and name != stage:
                continue
            before, after = current.get(name), record.stages.get(name)
            if before == after:
                continue
            t = record.trailers
            attested = (
                t.get("route") == route
                and t.get("stage") == name
                and t.get("action") in LIFECYCLE_ACTIONS
            )
            out.append(
                Event(
                    route=route,
                    stage=name,
                    action=t["action"] if attested else "unattested",
                    seq=_seq(t) if attested else None,
                    commit=record.commit,
                    time=_effective_time(record.time, t) if attested else record.time,
                    author=record.author,
                    email=record.email,
                    binding=after,
                    previous=before,
                    trailers=t if attested else {},
                )
            )
        current = dict(record.stages)
    return out


def last_seq(route: str, stage: str, records: list[Record]) -> int:
    """The highest sequence number a lifecycle commit used for (route, stage), 0 when none.

    Counted as verify counts them: a commit whose trailers name no lifecycle action is not
    one, whatever `Modelctl-Seq` it carries.
    """
    best = 0
    for record in records:
        t = record.trailers
        if (
            t.get("route") == route
            and t.get("stage") == stage
            and t.get("action") in LIFECYCLE_ACTIONS
        ):
            seq = _seq(t)
            if seq is not None and seq > best:
                best = seq
    return best


# --- time -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointInTime:
    epoch: float
    label: str  # as the user should read it back
    assumed_utc: bool = False
    commit: str | None = None


CLOCK_SKEW = 300  # seconds a time may lie ahead of this machine's clock (verify, rollback)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])\s+ago", re.ASCII)


def parse_duration(text: str) -> float | None:
    """`45s`, `30m`, `2h`, `1d` or plain seconds -> seconds; None when it is none of those."""
    text = text.strip()
    try:
        value = float(text[:-1]) * _UNITS[text[-1]] if text[-1:] in _UNITS else float(text)
    except ValueError:
        return None
    return value if 0 <= value < float("inf") else None


def parse_time(text: str, now: datetime | None = None) -> tuple[datetime, bool] | None:
    """An ISO 8601 date or time; (value, True) when no offset was given and UTC was assumed.

    With `now` (times a user types, never times read from data), also `now` and
    `<N><s|m|h|d> ago` (`30m ago`, `2h ago`, `1d ago`), counted back from `now`.
    """
    if now is not None:
        lowered = text.strip().lower()
        if lowered == "now":
            return now.astimezone(UTC), False
        match = _RELATIVE.fullmatch(lowered)
        if match is not None:
            ago = float(match[1]) * _UNITS[match[2]]
            with contextlib.suppress(OverflowError):
                return now.astimezone(UTC) - timedelta(seconds=ago), False
            return None
    candidate = text.strip().replace(" ", "T", 1) if "T" not in text else text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC), True
    return value, False


TIME_EXAMPLES = "e.g. 2026-02-14T09:30:00Z, 2026-02-14, now, 45s ago, 30m ago, 2h ago, 1d ago"


def user_time(text: str, flag: str, now: datetime | None = None) -> tuple[datetime, bool]:
    """A time typed on the command line: ISO 8601 (UTC when no offset is given), `now` or a
    relative `30m ago` counted back from `now` (default: this machine's clock)."""
    parsed = parse_time(text, now or datetime.now(UTC))
    if parsed is None:
        raise UsageError(
            f"{flag} {text!r} is not an ISO 8601 time, 'now' or 'N[s|m|h|d] ago'",
            hint=TIME_EXAMPLES,
        )
    return parsed


def point_in_time(loc: Location, text: str, flag: str = "--at") -> PointInTime:
    """`--at`: a time (ISO 8601, `now`, `2h ago`), or a commit or tag (what was live as of
    that commit)."""
    parsed = parse_time(text, datetime.now(UTC))
    if parsed is not None:
        value, assumed = parsed
        label = value.isoformat() + (" (no offset given: UTC assumed)" if assumed else "")
        return PointInTime(value.timestamp(), label, assumed)
    commit = loc.store.resolve(text)
    if commit is None:
        raise UsageError(
            f"{flag} {text!r} is neither an ISO 8601 time nor a commit or tag "
            "(relative times: 'now', 'N[s|m|h|d] ago')",
            hint=f"{TIME_EXAMPLES}, or a commit or tag",
        )
    ctime = commit_time(loc, commit)
    return PointInTime(ctime, f"commit {commit[:12]} ({iso(ctime)})", commit=commit)


def clock(loc: Location) -> datetime:
    """The time a commit made now will carry: this machine's clock, unless git is told
    otherwise (`GIT_COMMITTER_DATE`)."""
    with contextlib.suppress(GitError, ValueError, IndexError):  # no identity: the write says so
        stamp = int(loc.store.identity().split()[-2])
        return datetime.fromtimestamp(stamp, UTC)
    return datetime.now(UTC)


def commit_time(loc: Location, commit: str) -> int:
    """A commit's committer time, seconds since the epoch."""
    return commit_epoch(loc.store.committer_time(commit))


def live_at(stage_events: list[Event], epoch: float) -> Event | None:
    """The event in force at `epoch` (inclusive), from events sorted by time."""
    times = [e.time for e in stage_events]
    index = bisect.bisect_right(times, epoch)
    return stage_events[index - 1] if index else None


def branch_tip(loc: Location) -> tuple[str, str]:
    """(branch ref, commit) the history is read from: the checked-out branch, or `HEAD` when
    it is detached (CI checkouts are), read-only questions work there too."""
    ref = loc.store.head_ref() or "HEAD"
    tip = loc.store.ref_oid(ref)
    if tip is None:
        raise GitError(f"{ref} has no commits yet", hint="add something first: modelctl init")
    return ref, tip
