"""Trace-to-version coverage, fallback hit rate, and the raw material of the report.

Streaming: calls are reduced to groups as they are read (route, stage, binding interval,
model string, prompt, fallback evidence...), so memory grows with the number of distinct
groups, not with the number of spans; each group is then resolved once against the registry.
The only other state is bounded (docs/traces.md, "Bounded memory"): recent call ids for
de-duplication, recent (route, stage, trace) triples for request counting, and calls.Memory.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelctl.errors import UsageError
from modelctl.lifecycle.history import Record
from modelctl.registry.snapshot import Location, Snapshot, snapshot_at
from modelctl.traces import spans as span_io
from modelctl.traces.attribution import NEAR_NEXT, NEAR_PREVIOUS, Context, Verdict, attribute
from modelctl.traces.calls import Memory, calls_in, remember
from modelctl.traces.fields import Call

GroupKey = tuple[Any, ...]
WINDOW = 1 << 13  # entries per generation of the de-duplication and request windows


@dataclass
class Group:
    """Counted calls that resolve the same way."""

    route: str | None
    stage: str
    provider: str | None
    model_string: str | None
    model: str | None  # name@version
    prompt: str | None
    reason: str | None
    fallback: bool
    fallback_source: str | None
    count: int
    first: float | None
    last: float | None
    interval: int = -1
    name_ok: bool = False


@dataclass
class StageRate:
    route: str
    stage: str
    requests: int
    fallbacks: int

    @property
    def per_million(self) -> float:
        return self.fallbacks / self.requests * 1_000_000 if self.requests else 0.0


@dataclass
class CoverageResult:
    spans: int  # counted model calls
    name_covered: int
    strict_covered: int
    groups: list[Group]
    blind_spots: list[Group]
    fallback_rates: list[StageRate]
    read: span_io.ReadStats
    stage_filter: str | None
    strict: bool
    conflicts: int = 0
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    newest: float | None = None
    in_grace: int = 0  # calls covered only because of --grace or --skew
    waiting_evicted: int = 0  # calls decided before their ancestors arrived (memory bound)

    @property
    def name_pct(self) -> float:
        return 100.0 * self.name_covered / self.spans if self.spans else 100.0

    @property
    def strict_pct(self) -> float:
        return 100.0 * self.strict_covered / self.spans if self.spans else 100.0

    @property
    def coverage_pct(self) -> float:
        return self.strict_pct if self.strict else self.name_pct

    def meets(self, minimum: float) -> bool:
        """Whether coverage reaches `minimum` percent; never when no call was counted (a
        filter that matched nothing is not evidence of coverage)."""
        return self.spans > 0 and self.coverage_pct >= minimum


class Window:
    """Recently seen keys over a sliding window: two generations of `size` entries each, so
    at least the last `size` are kept and anything older may be forgotten. Keys are 64-bit
    hashes of ids (small, and no id string is kept alive); values are shared objects."""

    __slots__ = ("new", "old", "size")

    def __init__(self, size: int = WINDOW) -> None:
        self.size = size
        self.new: dict[Any, Any] = {}
        self.old: dict[Any, Any] = {}

    def add(self, key: Any, value: Any = None) -> bool:
        """True when (key, value) is new (and now remembered)."""
        if self.new.get(key, self) == value or self.old.get(key, self) == value:
            return False
        if len(self.new) >= self.size:
            self.old, self.new = self.new, {}
        self.new[key] = value
        return True

    def add_to(self, key: Any, value: Any) -> bool:
        """True when `value` is new among the values seen with `key` (now remembered)."""
        found = self.new.get(key)
        if found is None:
            found = self.old.get(key)
        if found is not None and (found == value or (type(found) is set and value in found)):
            return False
        if len(self.new) >= self.size:
            self.old, self.new = self.new, {}
        self.new[key] = (
            value if found is None else {value, *(found if type(found) is set else (found,))}
        )
        return True


class Aggregator:
    """Reduce calls to groups, and count requests per route and stage for fallback rates."""

    def __init__(self, ctx: Context, stage_filter: str | None, stats: span_io.ReadStats) -> None:
        self.ctx = ctx
        self.stage_filter = stage_filter
        self.stats = stats
        self.groups: dict[GroupKey, list[Any]] = {}  # key -> [count, first, last, sample call]
        self.requests: dict[tuple[str | None, str], int] = {}
        self.seen_calls = Window()
        self.seen_requests = Window()
        self._times = ctx.timelines.times
        # How long after a change the previous binding still counts (--grace, or --skew when
        # longer), and how long before a change the next one already does (--skew).
        self._near = (max(ctx.grace, ctx.skew), ctx.skew)
        self._last: tuple[str, tuple[str | None, str]] = ("", (None, ""))

    def add(self, call: Call) -> None:
        trace_id = call.trace_id
        if trace_id and call.span_id:  # Window.add, inlined: this runs for every call
            seen, seen_key = self.seen_calls, hash((trace_id, call.span_id))
            if seen_key in seen.new or seen_key in seen.old:
                self.stats.duplicates += 1
                return
            if len(seen.new) >= seen.size:
                seen.old, seen.new = seen.new, {}
            seen.new[seen_key] = None
        route, stage = call.route, call.stage
        if self.stage_filter is not None and stage != self.stage_filter:
            return
        t = call.time
        interval, near = -1, 0
        if route is not None and t is not None:
            times = self._times.get((route, stage))
            if times:
                interval = bisect_right(times, t) - 1
                after, before = self._near
                if after and interval > 0 and t - times[interval] < after:
                    near = NEAR_PREVIOUS
                if before and interval + 1 < len(times) and times[interval + 1] - t <= before:
                    near |= NEAR_NEXT
        key: GroupKey = (
            route, call.route_how, stage, interval, near, call.provider, call.model,
            call.model_key, call.stamp, call.prompt_name, call.prompt_version, call.prompt_stamp,
            call.fallback, call.fallback_source,
            call.failed_sibling and call.model not in call.sibling_models, call.time_source,
        )  # fmt: skip
        slot = self.groups.get(key)
        if slot is None:
            self.groups[key] = [call.count, t, t, call]
        else:
            slot[0] += call.count
            if t is not None:
                if slot[1] is None or t < slot[1]:
                    slot[1] = t
                if slot[2] is None or t > slot[2]:
                    slot[2] = t
        # Requests: distinct traces per (route, stage); rows without a trace id are requests.
        pair = (route, stage)
        if not trace_id:
            if not call.error:
                self.requests[pair] = self.requests.get(pair, 0) + call.count
        elif trace_id != self._last[0] or pair != self._last[1]:  # calls of a trace come together
            self._last = (trace_id, pair)
            if self.seen_requests.add_to(hash(trace_id), pair):
                self.requests[pair] = self.requests.get(pair, 0) + 1

    def resolve(self) -> tuple[list[Group], int, int, dict[str, dict[str, int]]]:
        out = []
        conflicts = graced = 0
        sources: dict[str, dict[str, int]] = {"route": {}, "model": {}, "time": {}}
        for key, (count, first, last, call) in self.groups.items():
            route, how, stage, interval, near = key[:5]
            verdict: Verdict = attribute(self.ctx, route, how, stage, interval, near, call)
            conflicts += count if verdict.conflict else 0
            graced += count if verdict.in_grace else 0
            out.append(
                Group(
                    route, stage, call.provider, call.model, verdict.model, verdict.prompt,
                    verdict.reason, verdict.fallback, verdict.fallback_source, count, first,
                    last, interval, verdict.name_ok,
                )
            )  # fmt: skip
            for name, value in (
                ("route", how),
                ("model", call.model_key or "modelctl.model"),
                ("time", call.time_source),
            ):
                bucket = sources[name]
                bucket[value] = bucket.get(value, 0) + count
        return out, conflicts, graced, sources


def coverage(
    loc: Location,
    files: list[str],
    *,
    fmt: str = "auto",
    stage: str | None = None,
    strict: bool = False,
    default_stage: str = "production",
    grace: float = 0.0,
    skew: float = 0.0,
    skip_bad_lines: bool = False,
    assume_time: float | None = None,
    on_bytes: Callable[[int], None] | None = None,
    epoch_unit: float | None = None,
    snapshot: Snapshot | None = None,
    records: dict[str, list[Record]] | None = None,
) -> CoverageResult:
    """Coverage of the model calls in `files`. Strict mode also turns off the lenient-only
    model keys (docs/traces.md, "Strict and name coverage"). `snapshot` and `records` are the
    registry at HEAD and its route records, for a caller that has read them already."""
    if fmt not in span_io.FORMATS:  # before any history is read
        raise UsageError(f"unknown --format {fmt!r}", hint=f"one of: {', '.join(span_io.FORMATS)}")
    snapshot = snapshot if snapshot is not None else snapshot_at(loc)
    ctx = Context.build(loc, snapshot, snapshot.commit, default_stage, grace, skew, records)
    ctx.default_stage = ctx.known_stage(default_stage, "--default-stage")
    if stage is not None:
        stage = ctx.known_stage(stage, "--stage")
    stats = span_io.ReadStats()
    agg = Aggregator(ctx, stage, stats)
    memory = Memory()
    now = datetime.now(UTC).timestamp()
    add = agg.add
    lenient = not strict

    def take(calls: list[Call]) -> None:
        for call in calls:
            if call.time is None and assume_time is not None:
                call.time, call.time_source = assume_time, "assumed"
            add(call)

    paused = gc.isenabled()
    gc.disable()  # parsed JSON is acyclic and freed by reference counting; see docs/traces.md
    try:
        for batch in span_io.read_call_batches(
            files, fmt, skip_bad_lines=skip_bad_lines, stats=stats, on_bytes=on_bytes,
            lenient=lenient, epoch_unit=epoch_unit,
        ):  # fmt: skip
            if batch.models or memory.waiting:
                take(calls_in(batch, memory, ctx, now=now, stats=stats))
            else:  # nothing to count: only remember the route and stage keys it carries
                remember(batch, memory)
        take(memory.drain(ctx))
    finally:
        if paused:
            gc.enable()
    groups, conflicts, graced, sources = agg.resolve()
    total = sum(g.count for g in groups)
    name_ok = sum(g.count for g in groups if g.name_ok)
    strict_ok = sum(g.count for g in groups if g.reason is None)
    blind = _merge_blind([g for g in groups if g.reason is not None and (strict or not g.name_ok)])
    rates = _fallback_rates(groups, agg.requests)
    newest = max((g.last for g in groups if g.last is not None), default=None)
    return CoverageResult(
        total, name_ok, strict_ok, groups, blind, rates, stats, stage, strict, conflicts,
        sources, newest, graced, memory.evicted,
    )  # fmt: skip


def _merge_blind(groups: list[Group]) -> list[Group]:
    """Blind spots by (route, stage, provider, model string, version, prompt, reason)."""
    merged: dict[tuple[Any, ...], Group] = {}
    for g in groups:
        key = (g.route, g.stage, g.provider, g.model_string, g.model, g.prompt, g.reason)
        m = merged.get(key)
        if m is None:
            merged[key] = Group(**{k: getattr(g, k) for k in Group.__dataclass_fields__})
            continue
        m.count += g.count
        firsts = [x for x in (m.first, g.first) if x is not None]
        lasts = [x for x in (m.last, g.last) if x is not None]
        m.first = min(firsts) if firsts else None
        m.last = max(lasts) if lasts else None
    return sorted(merged.values(), key=lambda g: (-g.count, str(g.reason), str(g.model_string)))


def _fallback_rates(
    groups: list[Group], requests: dict[tuple[str | None, str], int]
) -> list[StageRate]:
    fallbacks: dict[tuple[str | None, str], int] = {}
    for g in groups:
        if g.fallback:
            fallbacks[(g.route, g.stage)] = fallbacks.get((g.route, g.stage), 0) + g.count
    out = [
        StageRate(route, stage, count, fallbacks.get((route, stage), 0))
        for (route, stage), count in requests.items()
        if route is not None
    ]
    return sorted(out, key=lambda r: (r.route, r.stage))
