"""Trace-to-version coverage, fallback hit rate, and the raw material of the report.

Streaming: calls are reduced to groups as they are read (route, stage, binding interval,
model string, prompt, fallback evidence...), so memory grows with the number of distinct
groups, not with the number of spans; each group is then resolved once against the registry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelctl.registry import Location, snapshot_at
from modelctl.traces import spans as span_io
from modelctl.traces.attribution import Context, Verdict, attribute
from modelctl.traces.calls import Call, TraceMemory, calls_in

GroupKey = tuple[Any, ...]


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

    @property
    def name_pct(self) -> float:
        return 100.0 * self.name_covered / self.spans if self.spans else 100.0

    @property
    def strict_pct(self) -> float:
        return 100.0 * self.strict_covered / self.spans if self.spans else 100.0

    @property
    def coverage_pct(self) -> float:
        return self.strict_pct if self.strict else self.name_pct


class Aggregator:
    """Reduce calls to groups, and count requests per route and stage for fallback rates."""

    def __init__(self, ctx: Context, stage_filter: str | None) -> None:
        self.ctx = ctx
        self.stage_filter = stage_filter
        self.groups: dict[GroupKey, list[Any]] = {}  # key -> [count, first, last, sample call]
        self.requests: dict[tuple[str | None, str], int] = {}
        self.recent: OrderedDict[tuple[str | None, str, str], None] = OrderedDict()
        self.sources: dict[str, dict[str, int]] = {"route": {}, "model": {}, "time": {}}

    def add(self, call: Call) -> None:
        ctx = self.ctx
        route, how = ctx.route_of(call)
        stage = ctx.stage_of(call)
        if self.stage_filter is not None and stage != self.stage_filter:
            return
        t = call.time
        interval, in_grace = -1, False
        if route is not None and t is not None:
            interval = ctx.timelines.interval(route, stage, t)
            if ctx.grace and interval > 0:
                start = ctx.timelines.times[(route, stage)][interval]
                in_grace = t - start < ctx.grace
        key = (
            route, how if route is None else "", stage, interval, in_grace, call.provider,
            call.model, call.stamp, call.prompt_name, call.prompt_version, call.prompt_stamp,
            call.fallback, call.fallback_source, call.failed_sibling and call.model not in call.sibling_models,
            t is None,
        )  # fmt: skip
        slot = self.groups.get(key)
        if slot is None:
            self.groups[key] = [call.count, t, t, call]
        else:
            slot[0] += call.count
            if t is not None:
                slot[1] = t if slot[1] is None or t < slot[1] else slot[1]
                slot[2] = t if slot[2] is None or t > slot[2] else slot[2]
        for name, value in (
            ("route", how),
            ("model", call.model_key or "modelctl.model"),
            ("time", call.time_source),
        ):
            bucket = self.sources[name]
            bucket[value] = bucket.get(value, 0) + call.count
        # Requests: distinct traces per (route, stage); rows without a trace id are requests.
        if not call.trace_id:
            if not call.error:
                self.requests[(route, stage)] = self.requests.get((route, stage), 0) + call.count
            return
        seen = (route, stage, call.trace_id)
        if seen not in self.recent:
            self.recent[seen] = None
            if len(self.recent) > 200_000:  # bounded: a trace split far apart may count twice
                self.recent.popitem(last=False)
            self.requests[(route, stage)] = self.requests.get((route, stage), 0) + 1

    def resolve(self) -> tuple[list[Group], int]:
        out = []
        conflicts = 0
        for key, (count, first, last, call) in self.groups.items():
            route, how, stage, interval, in_grace = key[0], key[1], key[2], key[3], key[4]
            verdict: Verdict = attribute(
                self.ctx, route, how or "no-route", stage, interval, in_grace, call
            )
            conflicts += count if verdict.conflict else 0
            group = Group(
                route, stage, call.provider, call.model, verdict.model, verdict.prompt,
                verdict.reason, verdict.fallback, verdict.fallback_source, count, first, last,
                interval, verdict.name_ok,
            )  # fmt: skip
            out.append(group)
        return out, conflicts


def coverage(
    loc: Location,
    files: list[str],
    *,
    fmt: str = "auto",
    stage: str | None = None,
    strict: bool = False,
    default_stage: str = "production",
    grace: float = 0.0,
    skip_bad_lines: bool = False,
    lenient: bool = True,
    on_bytes: Callable[[int], None] | None = None,
) -> CoverageResult:
    snapshot = snapshot_at(loc)
    tip = snapshot.commit
    ctx = Context.build(loc, snapshot, tip, default_stage, grace)
    agg = Aggregator(ctx, stage)
    stats = span_io.ReadStats()
    memory = TraceMemory()
    dedupe: OrderedDict[tuple[str, str], None] = OrderedDict()
    for batch in span_io.read_batches(
        files, fmt, skip_bad_lines=skip_bad_lines, stats=stats, on_bytes=on_bytes
    ):
        unique = []
        for span in batch:
            if span.trace_id and span.span_id:
                key = (span.trace_id, span.span_id)
                if key in dedupe:
                    stats.duplicates += 1
                    continue
                dedupe[key] = None
                if len(dedupe) > 500_000:  # bounded window for Collector retries and overlaps
                    dedupe.popitem(last=False)
            unique.append(span)
        for call in calls_in(unique, memory, lenient=lenient):
            agg.add(call)
    groups, conflicts = agg.resolve()
    total = sum(g.count for g in groups)
    name_ok = sum(g.count for g in groups if g.name_ok)
    strict_ok = sum(g.count for g in groups if g.reason is None)
    blind = [g for g in groups if (g.reason is not None) if strict or not g.name_ok]
    blind = _merge_blind(blind)
    rates = _fallback_rates(groups, agg.requests)
    newest = max((g.last for g in groups if g.last is not None), default=None)
    return CoverageResult(
        total,
        name_ok,
        strict_ok,
        groups,
        blind,
        rates,
        stats,
        stage,
        strict,
        conflicts,
        agg.sources,
        newest,
    )


def _merge_blind(groups: list[Group]) -> list[Group]:
    """Blind spots by (route, stage, provider, model string, version, prompt, reason)."""
    merged: dict[tuple[Any, ...], Group] = {}
    for g in groups:
        key = (g.route, g.stage, g.provider, g.model_string, g.model, g.prompt, g.reason)
        if key in merged:
            m = merged[key]
            m.count += g.count
            m.first = (
                min(x for x in (m.first, g.first) if x is not None)
                if (m.first or g.first)
                else None
            )
            m.last = (
                max(x for x in (m.last, g.last) if x is not None) if (m.last or g.last) else None
            )
        else:
            merged[key] = Group(**{k: getattr(g, k) for k in Group.__dataclass_fields__})
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
