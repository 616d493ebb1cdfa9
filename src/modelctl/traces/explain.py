"""`modelctl explain TRACE_ID`: the whole chain behind one trace, from span to signed commit."""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, field
from typing import Any

from modelctl.errors import UsageError
from modelctl.lifecycle import gates, history
from modelctl.registry import refs
from modelctl.registry.snapshot import Location, snapshot_at
from modelctl.traces import spans as span_io
from modelctl.traces.attribution import Context, attribute, known_stage
from modelctl.traces.calls import Memory, calls_in
from modelctl.traces.fields import Call


@dataclass
class Attempt:
    span_id: str
    time: str | None
    model_string: str | None
    model: str | None
    prompt: str | None
    error: bool
    fallback: bool
    fallback_source: str | None
    answered: bool = False


@dataclass
class Explanation:
    trace_id: str
    route: str | None
    stage: str
    model: str | None
    model_string: str | None
    prompt: str | None
    fallback: bool
    fallback_source: str | None
    covered: bool
    reason: str | None
    binding: str  # summary of the binding live at the call's time
    event: dict[str, Any] | None  # the lifecycle event that made it live
    eval_run: dict[str, Any] | None  # the EvalRun that gated that event
    dataset: dict[str, Any] | None  # that eval's dataset version
    attempts: list[Attempt] = field(default_factory=list)


def _iso(t: float | None) -> str | None:
    from modelctl.lifecycle.history import iso

    return iso(int(t)) if t is not None else None


def _answer(calls: list[Call], by_id: dict[str, span_io.Span]) -> Call | None:
    """The successful call that ends last among those under no failed ancestor."""

    def clean(call: Call) -> bool:
        span = by_id.get(call.span_id)
        parent = span.parent_id if span else None
        hops = 0
        while parent and hops < 64:
            up = by_id.get(parent)
            if up is None:
                break
            if up.error:
                return False
            parent, hops = up.parent_id, hops + 1
        return True

    good = [c for c in calls if not c.error and clean(c)]
    if not good:
        return None
    return max(good, key=lambda c: (c.end or c.time or 0.0, c.time or 0.0))


def _needles(trace_id: str) -> tuple[str, ...]:
    """Strings one of which a line holding the trace must contain (hex, either case, or
    base64 as protobuf's JSON mapping writes ids)."""
    out = [trace_id, trace_id.upper()]
    with contextlib.suppress(ValueError):
        out.append(base64.b64encode(bytes.fromhex(trace_id)).decode())
    return tuple(out)


def explain(
    loc: Location,
    trace_id: str,
    files: list[str],
    fmt: str = "auto",
    default_stage: str = "production",
    epoch_unit: float | None = None,
) -> Explanation:
    snapshot = snapshot_at(loc)
    default_stage = known_stage(snapshot, default_stage, "--default-stage")
    wanted = trace_id.strip().lower()
    found: list[span_io.Span] = []
    batches = span_io.read_batches(files, fmt, needles=_needles(wanted), epoch_unit=epoch_unit)
    for batch in batches:
        found.extend(s for s in batch if s.trace_id == wanted)
    if not found:
        raise UsageError(
            f"trace {trace_id} is not in {', '.join(files)}", hint="check the id (32 hex digits)"
        )
    unique = {s.span_id: s for s in found}
    ctx = Context.build(loc, snapshot, snapshot.commit, default_stage)
    memory = Memory()
    calls = calls_in(span_io.batch_of(list(unique.values())), memory, ctx)
    calls += memory.drain(ctx)
    if not calls:
        raise UsageError(
            f"trace {trace_id} has no model calls", hint="see docs/traces.md for which spans count"
        )
    calls.sort(key=lambda c: (c.time or 0.0, c.end or 0.0))
    answer = _answer(calls, unique) or calls[-1]
    attempts = []
    verdicts = {}
    for call in calls:
        route, stage = call.route, call.stage
        interval = (
            ctx.timelines.interval(route, stage, call.time)
            if route and call.time is not None
            else -1
        )
        verdict = attribute(ctx, route, call.route_how, stage, interval, 0, call)
        verdicts[call.span_id] = (route, stage, verdict)
        attempts.append(
            Attempt(
                call.span_id,
                _iso(call.time),
                call.model,
                verdict.model,
                verdict.prompt,
                call.error,
                verdict.fallback,
                verdict.fallback_source,
                call is answer,
            )
        )
    route, stage, verdict = verdicts[answer.span_id]
    event = verdict.event
    event_info = eval_info = dataset_info = None
    if event is not None:
        from modelctl.lifecycle.status import signatures

        sig = signatures(loc, [event.commit], snapshot.commit or event.commit).get(event.commit)
        event_info = {
            "tag": event.tag,
            "action": event.action,
            "commit": event.commit,
            "time": event.when,
            "author": event.author,
            "reason": event.reason,
            "signature": sig.status if sig else None,
            "signer": (sig.signer or None) if sig else None,
        }
        # The eval that gated the binding; for a rollback, the one that gated what it restored.
        stage_events = ctx.timelines.events.get((route, stage), []) if route else []
        at = next((i for i, e in enumerate(stage_events) if e is event), None)
        gating = history.gating_event(stage_events[: at + 1] if at is not None else [event])
        eval_id = gating.eval_id if gating else None
        if eval_id and route:
            entry = snapshot.entries.get(str(refs.eval_path(route, eval_id)))
            if entry is not None and entry.data is not None:
                run = entry.data
                eval_info = {"id": run["id"], "verdict": run["verdict"], "created": run["created"],
                             "dataset": run["dataset"]["ref"], "overall": run["overall"]}  # fmt: skip
                ds = snapshot.get(refs.parse_ref(run["dataset"]["ref"], refs.Kind.DATASET))
                if ds is not None and ds.data is not None:
                    dataset_info = {
                        k: ds.data.get(k)
                        for k in ("name", "version", "sha256", "rows", "snapshot_at", "uri")
                    }
    return Explanation(
        trace_id=wanted,
        route=route,
        stage=stage,
        model=verdict.model,
        model_string=answer.model,
        prompt=verdict.prompt,
        fallback=verdict.fallback,
        fallback_source=verdict.fallback_source,
        covered=verdict.reason is None,
        reason=verdict.reason,
        binding=gates.summary(event.binding if event else None),
        event=event_info,
        eval_run=eval_info,
        dataset=dataset_info,
        attempts=attempts,
    )
