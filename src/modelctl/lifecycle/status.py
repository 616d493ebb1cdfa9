"""Questions the lifecycle history answers: status, history of a route, what was live at T."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl.errors import UsageError
from modelctl.gitstore import Signature
from modelctl.gitstore.atomic import write_cache
from modelctl.lifecycle import gates, history
from modelctl.registry import refs, suggest
from modelctl.registry.snapshot import Entry, Location, check_route, files_at, routes_at


@dataclass
class EventView:
    route: str
    stage: str
    seq: int | None
    tag: str | None
    action: str
    commit: str
    time: str
    author: str
    email: str
    summary: str
    binding: dict[str, Any] | None
    previous: dict[str, Any] | None
    reason: str | None = None
    eval_id: str | None = None
    source_stage: str | None = None
    canary: int | None = None
    rollback_of: str | None = None
    restores: str | None = None
    detected_at: str | None = None
    signature: str | None = None  # git's %G? letter; None when not checked
    signer: str | None = None


def view(event: history.Event, signature: Signature | None = None) -> EventView:
    t = event.trailers
    return EventView(
        route=event.route,
        stage=event.stage,
        seq=event.seq,
        tag=event.tag,
        action=event.action,
        commit=event.commit,
        time=event.when,
        author=event.author,
        email=event.email,
        summary=gates.summary(event.binding),
        binding=event.binding,
        previous=event.previous,
        reason=event.reason,
        eval_id=event.eval_id,
        source_stage=t.get("from"),
        canary=event.canary,
        rollback_of=t.get("rollback-of"),
        restores=t.get("restores"),
        detected_at=t.get("detected-at"),
        signature=signature.status if signature else None,
        signer=(signature.signer or None) if signature else None,
    )


# --- signatures, cached by commit and trust file ----------------------------------------------


def trust_blob(loc: Location, commit: str) -> str | None:
    """The blob of the registry's allowed-signers file as it stands at `commit`."""
    settings = files_at(loc, commit, {refs.SETTINGS_FILE: "settings"})[refs.SETTINGS_FILE]
    path = ((settings.data if settings else None) or {}).get(
        "allowed_signers", ".modelctl/allowed_signers"
    )
    return loc.store.object_at(commit, loc.repo_path(path))


@contextlib.contextmanager
def trust_file(loc: Location, oid: str | None) -> Iterator[Path | None]:
    """The allowed-signers blob `oid` as a temporary file, for git to read."""
    if oid is None:
        yield None
        return
    data = loc.store.read_blobs([oid])[oid]
    with loc.store.scratch_file(data, prefix="allowed-signers-") as path:
        yield path


def signatures(loc: Location, commits: Iterable[str], tip: str) -> dict[str, Signature]:
    """Signature status of `commits`, checked against the allowed signers at `tip`."""
    wanted = list(dict.fromkeys(commits))
    if not wanted:
        return {}
    cache_path = loc.store.state_dir / "signatures.json"
    try:
        cache: dict[str, list[str]] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    oid = trust_blob(loc, tip)
    trust = oid or "none"
    found = {c: Signature(*cache[f"{c}:{trust}"]) for c in wanted if f"{c}:{trust}" in cache}
    missing = [c for c in wanted if c not in found]
    if missing:  # only then does git need the file
        with trust_file(loc, oid) as path:
            fresh = loc.store.commit_signatures(missing, path)
        found.update(fresh)
        cache.update({f"{c}:{trust}": [s.status, s.signer, s.key] for c, s in fresh.items()})
        write_cache(cache_path, json.dumps(cache, separators=(",", ":")))
    return found


# --- status ------------------------------------------------------------------------------------


@dataclass
class CanaryView:
    """A canary the stage is running: the candidate's share and what it is."""

    percent: int | None
    candidate: str  # its targets, as `summary` writes them
    targets: list[dict[str, Any]]
    started: str | None  # the tag of the promotion that started it
    source_stage: str | None


@dataclass
class StageStatus:
    stage: str
    summary: str
    binding: dict[str, Any] | None
    event: EventView | None
    canary: CanaryView | None = None


def canary_view(stage_events: list[history.Event]) -> CanaryView | None:
    """The canary running after the last of `stage_events`, or None."""
    start = history.canary_start(stage_events)
    if start is None:
        return None
    from modelctl.lifecycle.actions import target_keys

    first, last = stage_events[start], stage_events[-1]
    before = target_keys(first.previous)
    targets = [
        t
        for t in (last.binding or {}).get("targets", [])
        if (t["model"], t.get("prompt")) not in before
    ]
    return CanaryView(
        last.canary,
        gates.summary({"targets": targets}),
        targets,
        first.tag,
        last.trailers.get("from"),
    )


@dataclass
class RouteStatus:
    route: str
    stages: list[StageStatus]
    problems: list[str] = field(default_factory=list)


@dataclass
class StatusResult:
    branch: str
    commit: str
    routes: list[RouteStatus]


def _status_cache(loc: Location, tip: str) -> Path:
    key = hashlib.sha1(f"{loc.prefix}\0{tip}".encode(), usedforsecurity=False).hexdigest()
    return loc.store.state_dir / "status" / f"{key}.json"


def _from_cache(branch: str, tip: str, payload: dict[str, Any]) -> StatusResult:
    routes = []
    for r in payload["routes"]:
        stages = [
            StageStatus(
                s["stage"],
                s["summary"],
                s["binding"],
                EventView(**s["event"]) if s["event"] else None,
                CanaryView(**s["canary"]) if s.get("canary") else None,
            )
            for s in r["stages"]
        ]
        routes.append(RouteStatus(r["route"], stages, r["problems"]))
    return StatusResult(branch.removeprefix("refs/heads/"), tip, routes)


def _cached_routes(loc: Location, tip: str) -> str | None:
    """The cached JSON text of every route's status at `tip`, or None."""
    try:
        header, _, routes = _status_cache(loc, tip).read_text(encoding="utf-8").partition("\n")
        return routes if json.loads(header) == {"format": _STATUS_FORMAT} and routes else None
    except (OSError, ValueError):
        return None


def status(loc: Location, route: str | None = None) -> StatusResult:
    branch, tip = history.branch_tip(loc)
    if route is None:
        # Everything at one commit is a pure function of that commit: cache it by the commit.
        cached = _cached_routes(loc, tip)
        if cached is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return _from_cache(branch, tip, {"routes": json.loads(cached)})
        result = _status(loc, branch, tip, None)
        # Encoded as `--json` encodes it, so that a warm `status --json` can print the
        # routes as they are stored (`status_json`).
        routes = json.dumps([dataclasses.asdict(r) for r in result.routes], ensure_ascii=False)
        header = json.dumps({"format": _STATUS_FORMAT})
        write_cache(_status_cache(loc, tip), f"{header}\n{routes}")
        return result
    return _status(loc, branch, tip, route)


def status_json(loc: Location) -> str | None:
    """`status --json` of every route, compact, straight from the cache; None on a miss.

    The same text `render.dumps(status(loc))` makes, without decoding the cache into objects
    and encoding them again: at 1,000 routes that was half of a warm run."""
    branch, tip = history.branch_tip(loc)
    routes = _cached_routes(loc, tip)
    if routes is None:
        return None
    head = json.dumps({"branch": branch.removeprefix("refs/heads/"), "commit": tip})
    return f'{head[:-1]}, "routes": {routes}}}'


_STATUS_FORMAT = (
    4  # a header line, then routes as --json encodes them (canaries shown), as committed
)


def _status(loc: Location, branch: str, tip: str, route: str | None) -> StatusResult:
    routes: dict[str, Entry | None]
    if route is not None:
        # One route: read its file and the settings alone, whatever the registry's size.
        refs.check_name(route, "route name")
        path = str(refs.route_path(route))
        files = files_at(loc, tip, {refs.SETTINGS_FILE: "settings", path: "routes"})
        settings = files[refs.SETTINGS_FILE]
        if files[path] is None:
            check_route(loc, tip, route, exists=False, label=_label(branch, tip))
        routes = {route: files[path]}
        records = {route: history.route_records(loc, route, tip)}
        settings_data = settings.data if settings else None
    else:
        settings, every = routes_at(loc, tip)
        routes = dict(every)
        records = history.all_route_records(loc, tip)
        settings_data = settings.data if settings else None
    stage_order = [s["name"] for s in (settings_data or {}).get("stages", [])]
    out = []
    for name, entry in routes.items():
        assert entry is not None
        current = (entry.data or {}).get("stages", {})
        by_stage: dict[str, list[history.Event]] = {}
        for event in history.events(name, records.get(name, [])):
            by_stage.setdefault(event.stage, []).append(event)
        order = stage_order + sorted(s for s in current if s not in stage_order)
        stages = []
        for s in order:
            known = by_stage.get(s, []) if current.get(s) is not None else []
            stages.append(
                StageStatus(
                    s,
                    gates.summary(current.get(s)),
                    current.get(s),
                    view(known[-1]) if known else None,
                    canary_view(known),
                )
            )
        problems = [str(p) for p in entry.problems]
        out.append(RouteStatus(name, stages, problems))
    return StatusResult(branch.removeprefix("refs/heads/"), tip, out)


# --- history of a route ------------------------------------------------------------------------


@dataclass
class HistoryResult:
    route: str
    stage: str | None
    branch: str
    commit: str
    events: list[EventView]


def route_history(
    loc: Location, route: str, stage: str | None = None, *, check_signatures: bool = True
) -> HistoryResult:
    branch, tip = history.branch_tip(loc)
    records = history.route_records(loc, route, tip)
    _check_asked(loc, tip, branch, route, records, stage)
    found = history.events(route, records, stage)
    sigs = signatures(loc, (e.commit for e in found), tip) if check_signatures else {}
    return HistoryResult(
        route,
        stage,
        branch.removeprefix("refs/heads/"),
        tip,
        [view(e, sigs.get(e.commit)) for e in found],
    )


def _label(branch: str, tip: str) -> str:
    return f"{branch.removeprefix('refs/heads/')} ({tip[:7]})"


def _check_asked(
    loc: Location, tip: str, branch: str, route: str, records: list[history.Record],
    stage: str | None,
) -> None:  # fmt: skip
    """The route and stage a question names exist: a misspelt name is a usage error with the
    nearest names, never an empty answer. A stage that left `modelctl.yaml` but is in the
    route's history still counts: its past is still a fair question."""
    if not records:
        check_route(loc, tip, route, label=_label(branch, tip))
        raise UsageError(
            f"route {route!r} has no history on {branch.removeprefix('refs/heads/')}",
            hint=f"its first deploy starts it: modelctl deploy {route} --stage STAGE ...",
        )
    if stage is None:
        return
    past = {name for r in records for name in (r.stages or {})}
    if stage not in past:  # only then is modelctl.yaml read: a stage with history is known
        settings = files_at(loc, tip, {refs.SETTINGS_FILE: "settings"})[refs.SETTINGS_FILE]
        suggest.check_stage(settings.data if settings else None, stage, also=sorted(past))


# --- what was live at T ------------------------------------------------------------------------


@dataclass
class ResolveResult:
    route: str
    stage: str
    at: str
    assumed_utc: bool
    binding: dict[str, Any] | None
    summary: str
    event: EventView | None


def resolve(loc: Location, route: str, stage: str, at: str) -> ResolveResult:
    refs.check_name(route, "route name")
    refs.check_name(stage, "stage name")
    branch, tip = history.branch_tip(loc)
    records = history.route_records(loc, route, tip)
    _check_asked(loc, tip, branch, route, records, stage)
    when = history.point_in_time(loc, at)
    if when.commit is not None:
        # As of a commit: that commit's own history, whatever the clock said.
        if not loc.store.is_ancestor(when.commit, tip):
            raise UsageError(f"--at {at} is not on {branch}'s history")
        keep = set(loc.store.first_parent_history(when.commit))
        stage_events = history.events(route, [r for r in records if r.commit in keep], stage)
        event = stage_events[-1] if stage_events else None
    else:
        event = history.live_at(history.events(route, records, stage), when.epoch)
    binding = event.binding if event else None
    sig = signatures(loc, [event.commit], tip).get(event.commit) if event else None
    return ResolveResult(
        route,
        stage,
        when.label,
        when.assumed_utc,
        binding,
        gates.summary(binding),
        view(event, sig) if event else None,
    )
