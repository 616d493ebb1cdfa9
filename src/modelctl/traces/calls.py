"""From a batch of spans to counted model calls: the leaf rule, route and stage from the span,
its resource and its ancestors, and failed-sibling fallbacks (docs/traces.md).

A batch (one export request) is handled as a unit. Across batches a bounded `Memory` carries
what a later batch may need: the route/stage keys of recent spans (for a child read after its
parent), calls whose ancestors have not arrived yet (a child read before its parent: they
wait), and marks on missing parents of counted calls (so that a wrapper read later is not
counted twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from modelctl.traces.fields import Call, Keys
from modelctl.traces.spans import Batch, ReadStats, Span, normalise_id, otlp_parent, otlp_start

MAX_HOPS = 64  # ancestor walks stop here (a cycle in broken data must not loop forever)
DECISIONS = 4096  # route/stage decisions cached by the keys they were made from


class Resolver(Protocol):
    """Maps what spans say to registry names (implemented by attribution.Context)."""

    def route(self, candidates: list[tuple[int, int, str, str]]) -> tuple[str | None, str, int]:
        """(route, how it was found, rank of the deciding key) or (None, reason, rank/-1)."""
        ...

    def stage(self, value: str | None) -> str:
        """The registry stage for an environment name (aliases mapped), or the default."""
        ...


# --- memory across batches ----------------------------------------------------------------------


@dataclass(slots=True)
class Parked:
    """A call waiting for an ancestor that may name its route or stage (or a bare mark)."""

    trace_id: str
    call: Call | None  # None: a mark (a counted call lies below the missing span)
    scopes: list[Keys | None]  # keys of the span, its resource and the ancestors seen so far


class Memory:
    """Bounded state between batches (docs/traces.md, "Bounded memory").

    * recent keys: route/stage keys (and parent) of spans that carry any, in two generations
      of at least `keys_limit` entries each (a batch is added whole), by span id (the trace
      id is checked on recall);
    * waiting: calls and marks waiting for a span id, first in first out, at most
      `waiting_limit`; beyond it the oldest calls are decided with what is known.
    """

    def __init__(self, keys_limit: int = 4096, waiting_limit: int = 10_000) -> None:
        self.keys_limit = keys_limit
        self.waiting_limit = waiting_limit
        self.keys_new: dict[str, tuple[str, Keys, str | None]] = {}  # as Batch.keys
        self.keys_old: dict[str, tuple[str, Keys, str | None]] = {}
        self.waiting: dict[str, list[Parked]] = {}
        self.waiting_count = 0
        self.evicted = 0  # calls decided early because the waiting room was full
        # (chain complete?, keys of span, resource, ancestors...) -> _decide's answer
        self.decisions: dict[tuple[Any, ...], tuple[str | None, str, str, bool]] = {}

    def recall(self, trace_id: str, span_id: str) -> tuple[Keys, str | None] | None:
        found = self.keys_new.get(span_id) or self.keys_old.get(span_id)
        if found is None or found[0] != trace_id:
            return None
        return found[1], found[2]

    def wait(self, span_id: str, parked: Parked, resolver: Resolver, out: list[Call]) -> None:
        self.waiting.setdefault(span_id, []).append(parked)
        self.waiting_count += 1
        while self.waiting_count > self.waiting_limit:
            oldest = next(iter(self.waiting))
            for item in self.waiting.pop(oldest):
                self.waiting_count -= 1
                if item.call is not None:
                    self.evicted += 1
                    out.append(_decided(item, resolver))

    def drain(self, resolver: Resolver) -> list[Call]:
        """At the end of input: every waiting call, decided with what is known."""
        out = [_decided(p, resolver) for items in self.waiting.values() for p in items if p.call]
        self.waiting.clear()
        self.waiting_count = 0
        return out


def remember(batch: Batch, memory: Memory) -> None:
    """Keep the route and stage keys of a batch's spans for their children in later batches."""
    recent = memory.keys_new
    if len(recent) >= memory.keys_limit:
        memory.keys_old, recent = recent, {}
        memory.keys_new = recent
    recent.update(batch.keys)


# --- route and stage ----------------------------------------------------------------------------


def _decide(scopes: list[Keys | None], complete: bool,
            resolver: Resolver) -> tuple[str | None, str, str, bool]:  # fmt: skip
    """(route, how, registry stage, final?) from scopes nearest first (the span, its resource,
    its ancestors): for each key in priority order, the nearest scope that has it. Final
    when the whole chain to the root was seen, or when the deciding keys are the top ones
    (modelctl.route and modelctl.stage), which nothing farther away can outrank."""
    routes: list[tuple[int, int, str, str]] = []
    stage: tuple[int, int, str] | None = None
    for i, keys in enumerate(scopes):
        if keys is None:
            continue
        for rank, key, value in keys[0]:
            routes.append((rank, i, key, value))
        if keys[1]:
            first = keys[1][0]  # each scope's stage keys are sorted by rank
            if stage is None or first[0] < stage[0]:
                stage = (first[0], i, first[2])
    if routes:
        routes.sort()
        route, how, rank = resolver.route(routes)
    else:
        route, how, rank = None, "no-route", -1
    final = complete or (rank == 0 and stage is not None and stage[0] == 0)
    return route, how, resolver.stage(stage[2] if stage else None), final


def _decided(parked: Parked, resolver: Resolver) -> Call:
    call = parked.call
    assert call is not None
    call.route, call.route_how, call.stage, _ = _decide(parked.scopes, True, resolver)
    return call


def _parent(node: Any, stats: ReadStats, canonical: bool) -> str | None:
    if isinstance(node, Span):
        return node.parent_id
    if canonical:  # the common case, inlined: the parent id as it is
        return node.get("parentSpanId") or None
    return otlp_parent(node, stats)


def _walk(trace_id: str, parent: str | None, batch: Batch, model_ids: set[str],
          memory: Memory, stats: ReadStats) -> tuple[list[Keys | None], str | None, list[str]]:  # fmt: skip
    """(keys of the ancestors nearest first, the first ancestor not found, ancestors that are
    model spans). Ancestors are looked up in the batch, then among remembered keys."""
    found_keys: list[Keys | None] = []
    models: list[str] = []
    nodes, keys, canonical = batch.nodes, batch.keys, batch.canonical
    hops = 0
    while parent and hops < MAX_HOPS:
        hops += 1
        node = nodes.get(parent)
        if node is None and batch.index_all(stats):  # a span without keys, not indexed yet
            node = nodes.get(parent)
        if node is not None:
            if parent in model_ids:
                models.append(parent)
            found = keys.get(parent)
            if found is not None:
                found_keys.append(found[1])
                parent = found[2]
            else:
                found_keys.append(None)
                parent = _parent(node, stats, canonical)
            continue
        remembered = memory.recall(trace_id, parent)
        if remembered is None:
            return found_keys, parent, models
        found_keys.append(remembered[0])
        parent = remembered[1]
    return found_keys, None, models


def _ancestor_time(
    call: Call, batch: Batch, now: float, stats: ReadStats, start: str | None
) -> None:
    """A call whose span has no usable time takes its nearest ancestor's start."""
    batch.index_all(stats)
    parent, hops = start, 0
    while parent and hops < MAX_HOPS:
        node = batch.nodes.get(parent)
        if node is None:
            return
        t = node.start if isinstance(node, Span) else otlp_start(node, now, stats)
        if t is not None:
            call.time, call.time_source = t, "ancestor"
            return
        parent, hops = _parent(node, stats, batch.canonical), hops + 1


# --- a batch -------------------------------------------------------------------------------------


def calls_in(batch: Batch, memory: Memory, resolver: Resolver, *, now: float = 0.0,
             stats: ReadStats | None = None) -> list[Call]:  # fmt: skip
    """The counted model calls decided by this batch: its own, and earlier ones whose
    ancestors arrived in it. The leaf rule applies: a model span with a model-span descendant
    is a wrapper (a framework span over the SDK span) and is not counted."""
    stats = stats if stats is not None else ReadStats()
    out: list[Call] = []
    models = batch.models
    model_ids = {c.span_id for c in models}
    wrappers: set[str] = set()
    if memory.waiting:
        batch.index_all(stats)  # what waits may wait for any span
        _resume(batch, memory, resolver, model_ids, wrappers, out, now, stats)
    walks = []
    seen: dict[tuple[str, str | None], tuple[list[Keys | None], str | None, list[str]]] = {}
    for call in models:
        where = (call.trace_id, call.parent_id)  # calls under one parent share their ancestors
        walk = seen.get(where)
        if walk is None:
            walk = seen[where] = _walk(
                call.trace_id, call.parent_id, batch, model_ids, memory, stats
            )
            if walk[2]:
                wrappers.update(walk[2])
        walks.append((call, walk))
    failed = False
    keys = batch.keys
    decisions = memory.decisions
    for call, (ancestors, missing, _) in walks:
        if wrappers and call.span_id in wrappers:
            continue
        failed = failed or call.error
        own = keys.get(call.span_id)
        scopes = [own[1] if own is not None else None, call.resource_keys, *ancestors]
        if call.time is None:
            _ancestor_time(call, batch, now, stats, call.parent_id)
        signature = (missing is None, *scopes)
        decision = decisions.get(signature)
        if decision is None:
            if len(decisions) >= DECISIONS:
                decisions.clear()
            decision = decisions[signature] = _decide(scopes, missing is None, resolver)
        route, how, stage, final = decision
        if not final and missing is not None:
            memory.wait(missing, Parked(call.trace_id, call, scopes), resolver, out)
            continue
        call.route, call.route_how, call.stage = route, how, stage
        out.append(call)
        if missing is not None:  # mark it: the wrapper may come in a later batch
            memory.wait(missing, Parked(call.trace_id, None, []), resolver, out)
    if failed:
        _sibling_fallbacks([c for c, _ in walks if c.span_id not in wrappers])
    remember(batch, memory)
    return out


def _trace_of(node: Any, stats: ReadStats) -> str:
    if isinstance(node, Span):
        return node.trace_id
    return normalise_id(node.get("traceId"), 32, stats)


def _resume(batch: Batch, memory: Memory, resolver: Resolver, model_ids: set[str],
            wrappers: set[str], out: list[Call], now: float, stats: ReadStats) -> None:  # fmt: skip
    """Spans of this batch that earlier calls (or marks) wait for."""
    waiting, nodes = memory.waiting, batch.nodes
    small, large = (waiting, nodes) if len(waiting) < len(nodes) else (nodes, waiting)
    for span_id in [s for s in small if s in large]:
        node = nodes[span_id]
        trace_id = _trace_of(node, stats)
        items = waiting.pop(span_id)
        memory.waiting_count -= len(items)
        # the arrived span is the first ancestor of what waits for it
        ancestors, missing, wrapped = _walk(trace_id, span_id, batch, model_ids, memory, stats)
        for parked in items:
            if parked.trace_id != trace_id:  # the same span id in another trace
                memory.wait(span_id, parked, resolver, out)
                continue
            wrappers.update(wrapped)
            call = parked.call
            if call is None:
                if missing is not None:
                    memory.wait(missing, parked, resolver, out)
                continue
            parked.scopes.extend(ancestors)
            if call.time is None:
                _ancestor_time(call, batch, now, stats, span_id)
            route, how, stage, final = _decide(parked.scopes, missing is None, resolver)
            if not final and missing is not None:
                memory.wait(missing, parked, resolver, out)
                continue
            call.route, call.route_how, call.stage = route, how, stage
            out.append(call)


def _sibling_fallbacks(calls: list[Call]) -> None:
    """Mark calls that come after a failed model call under the same parent."""
    groups: dict[tuple[str, str | None], list[Call]] = {}
    for call in calls:
        if call.trace_id:
            groups.setdefault((call.trace_id, call.parent_id), []).append(call)
    for siblings in groups.values():
        if len(siblings) < 2:
            continue
        siblings.sort(key=lambda c: c.time or 0.0)
        failed: list[str] = []
        for call in siblings:
            if failed and not call.error:
                call.failed_sibling = True
                call.sibling_models = tuple(failed)
            if call.error and call.model:
                failed.append(call.model)
