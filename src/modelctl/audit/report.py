"""`modelctl report`: the five maturity signals (DESIGN.md section 5) from history and traces.

1. trace-to-version coverage (with traces);
2. time to rollback, p50 and p95: from `Modelctl-Detected-At` (or the failing eval run) to the
   rollback commit, and with traces to the first span served by the restored binding;
3. regression-eval pass rate per release into the last stage of the path;
4. fallback hit rate per million requests per route (with traces);
5. dataset-version drift: days between the dataset snapshot of the eval that gated what
   the last stage serves now and the newest production traffic (or now).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modelctl.lifecycle import history
from modelctl.lifecycle.actions import target_keys
from modelctl.registry import refs
from modelctl.registry.snapshot import Location, Snapshot, snapshot_at


@dataclass
class Rollback:
    route: str
    stage: str
    tag: str | None
    rolled_back_at: str
    detected_at: str | None
    detected_from: str | None  # trailer or eval run id
    minutes: float | None
    restored_traffic_at: str | None = None
    minutes_to_traffic: float | None = None
    problem: str | None = None  # why its detection time is not counted (then minutes is None)


@dataclass
class Release:
    route: str
    stage: str
    tag: str | None
    time: str
    eval_id: str | None
    verdict: str | None
    candidate_rate: float | None
    baseline_rate: float | None
    cohorts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Drift:
    route: str
    stage: str
    eval_id: str | None  # None: what the stage serves now was not gated by an eval
    dataset: str | None
    snapshot_at: str | None
    newest_traffic: str
    days: float | None


@dataclass
class Report:
    generated_at: str
    branch: str
    commit: str
    production_stage: str
    coverage: dict[str, Any] | None
    rollbacks: list[Rollback]
    rollback_p50_minutes: float | None
    rollback_p95_minutes: float | None
    traffic_p50_minutes: float | None
    traffic_p95_minutes: float | None
    releases: list[Release]
    eval_pass_rate: float | None  # share of releases gated by a passing eval
    fallback: list[dict[str, Any]]
    drift: list[Drift]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (no interpolation, so it is always an observed value)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 2)


def _when(text: str | None) -> float | None:
    if not text:
        return None
    parsed = history.parse_time(text)
    return parsed[0].timestamp() if parsed else None


def _evals(snapshot: Snapshot) -> list[dict[str, Any]]:
    return [e.data for e in snapshot.artifacts("evals") if e.data is not None]


def report(loc: Location, trace_files: list[str] | None = None, since: str | None = None,
           fmt: str = "auto", default_stage: str = "production",
           epoch_unit: float | None = None) -> Report:  # fmt: skip
    branch, tip = history.branch_tip(loc)
    snapshot = snapshot_at(loc, tip)
    stages = [s["name"] for s in (snapshot.settings or {}).get("stages", [])]
    production = stages[-1] if stages else "production"
    since_t = history.point_in_time(loc, since, "--since").epoch if since else None
    records = history.all_route_records(loc, tip)
    routes = sorted(e.path[len("routes/") : -len(".yaml")] for e in snapshot.artifacts("routes"))
    cov = None
    coverage_data: dict[str, Any] | None = None
    if trace_files:
        from modelctl.traces.coverage import coverage

        cov = coverage(
            loc, trace_files, fmt=fmt, strict=True, default_stage=default_stage,
            epoch_unit=epoch_unit, snapshot=snapshot, records=records,
        )  # fmt: skip
        coverage_data = {
            "spans": cov.spans,
            "name_pct": round(cov.name_pct, 2),
            "strict_pct": round(cov.strict_pct, 2),
            "blind_spots": [
                {
                    "route": g.route,
                    "stage": g.stage,
                    "model": g.model_string,
                    "version": g.model,
                    "prompt": g.prompt,
                    "reason": g.reason,
                    "count": g.count,
                }
                for g in cov.blind_spots[:10]
            ],
        }
    evals = _evals(snapshot)
    rollbacks: list[Rollback] = []
    releases: list[Release] = []
    drift: list[Drift] = []
    newest = cov.newest if cov and cov.newest else datetime.now(UTC).timestamp()
    for route in routes:
        route_events = history.events(route, records.get(route, []))
        by_stage: dict[str, list[history.Event]] = {}
        for event in route_events:
            by_stage.setdefault(event.stage, []).append(event)
        for stage, stage_events in by_stage.items():
            for index, event in enumerate(stage_events):
                if since_t is not None and event.time < since_t:
                    continue
                if event.action == "rollback":
                    # When the release it rolls back went live (a canary's first step).
                    before = stage_events[:index]
                    released = before[history.release_start(before)].time if before else None
                    rollbacks.append(_rollback(route, stage, index, event, released, evals, cov))
                if stage == production and event.action in ("promote", "deploy") and event.binding:
                    releases.append(_release(route, stage, event, snapshot))
        live = by_stage.get(production, [])
        if live and live[-1].binding:
            gated = history.gating_event(live)
            drift.append(
                _drift(route, production, gated, snapshot, newest)
                if gated is not None
                else Drift(route, production, None, None, None, history.iso(int(newest)), None)
            )
    minutes = [r.minutes for r in rollbacks if r.minutes is not None]
    traffic = [r.minutes_to_traffic for r in rollbacks if r.minutes_to_traffic is not None]
    gated_ok = [r for r in releases if r.verdict == "pass"]
    return Report(
        generated_at=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        branch=branch.removeprefix("refs/heads/"),
        commit=tip,
        production_stage=production,
        coverage=coverage_data,
        rollbacks=rollbacks,
        rollback_p50_minutes=percentile(minutes, 50),
        rollback_p95_minutes=percentile(minutes, 95),
        traffic_p50_minutes=percentile(traffic, 50),
        traffic_p95_minutes=percentile(traffic, 95),
        releases=releases,
        eval_pass_rate=round(100.0 * len(gated_ok) / len(releases), 2) if releases else None,
        fallback=[
            {
                "route": r.route,
                "stage": r.stage,
                "requests": r.requests,
                "fallbacks": r.fallbacks,
                "per_million": round(r.per_million, 1),
            }
            for r in (cov.fallback_rates if cov else [])
        ],
        drift=drift,
    )


def _rollback(route: str, stage: str, index: int, event: history.Event, released: float | None,
              evals: list[dict[str, Any]], cov: Any) -> Rollback:  # fmt: skip
    """Detected at: the `Modelctl-Detected-At` trailer, else the latest failing eval of the
    route and stage created after the rolled-back release went live (`released`) and before
    the rollback, whose candidate is what the rollback took off the stage; an older failing
    eval, or one of another candidate (the next one on its way), judged something else."""
    detected = _when(event.trailers.get("detected-at"))
    source: str | None = "Modelctl-Detected-At" if detected is not None else None
    if detected is None:
        removed = target_keys(event.previous) - target_keys(event.binding)
        failing = [
            e for e in evals
            if e["route"] == route and e["verdict"] == "fail" and e.get("stage") in (None, stage)
            and (released or 0) <= (_when(e["created"]) or 0) <= event.time
            and (e["candidate"] == event.previous or target_keys(e["candidate"]) & removed)
        ]  # fmt: skip
        if failing:
            latest = max(failing, key=lambda e: e["created"])
            detected, source = _when(latest["created"]), f"eval {latest['id']}"
    text = event.trailers.get("detected-at")
    unreadable = f"Modelctl-Detected-At {text!r} is not a time" if text and source is None else None
    detected, problem = _bounded(detected, released, event.time)
    problem = problem or unreadable
    result = Rollback(
        route, stage, event.tag, event.when,
        history.iso(int(detected)) if detected is not None else None, source,
        round((event.time - detected) / 60, 2) if detected is not None else None,
        problem=problem,
    )  # fmt: skip
    if cov is not None and event.binding:
        restored = {t["model"] for t in event.binding.get("targets", [])}
        first = [
            g.first for g in cov.groups
            if g.route == route and g.stage == stage and g.interval == index
            and g.model in restored and g.first is not None and g.first >= event.time
        ]  # fmt: skip
        if first:
            t = min(first)
            result.restored_traffic_at = history.iso(int(t))
            start = detected if detected is not None else event.time
            result.minutes_to_traffic = round((t - start) / 60, 2)
    return result


def _bounded(
    detected: float | None, released: float | None, rolled_back: float
) -> tuple[float | None, str | None]:
    """A detection time within [release, rollback], or (None, why) when it lies outside them
    by more than the clock skew `rollback --detected-at` allows (a hand-made trailer): never a
    negative time to rollback, nor one counted from before the release."""
    if detected is None:
        return None, None
    skew = history.CLOCK_SKEW
    if released is not None and detected < released - skew:
        when = history.iso(int(detected))
        return (
            None,
            f"detected at {when}, before the release went live ({history.iso(int(released))})",
        )
    if detected > rolled_back + skew:
        when = history.iso(int(detected))
        return None, f"detected at {when}, after the rollback ({history.iso(int(rolled_back))})"
    low = released if released is not None else detected
    return min(max(detected, low), rolled_back), None


def _release(route: str, stage: str, event: history.Event, snapshot: Snapshot) -> Release:
    eval_id = event.trailers.get("eval")
    run = None
    if eval_id:
        entry = snapshot.entries.get(str(refs.eval_path(route, eval_id)))
        run = entry.data if entry else None
    cohorts = []
    if run:
        for comp in run.get("comparisons", []):
            if comp.get("evaluator") is None and comp.get("cohort"):
                cohorts.append({"cohort": comp["cohort"], "candidate": comp["candidate"]["rate"],
                                "baseline": comp["baseline"]["rate"], "delta": comp["delta"],
                                "status": comp["status"]})  # fmt: skip
    return Release(
        route, stage, event.tag, event.when, eval_id,
        run["verdict"] if run else None,
        run["overall"]["candidate"]["rate"] if run else None,
        run["overall"]["baseline"]["rate"] if run else None,
        cohorts,
    )  # fmt: skip


def _drift(
    route: str, stage: str, event: history.Event, snapshot: Snapshot, newest: float
) -> Drift:
    eval_id = event.trailers["eval"]
    entry = snapshot.entries.get(str(refs.eval_path(route, eval_id)))
    if entry is None or entry.data is None:  # the eval run named in the trailer is missing
        return Drift(route, stage, eval_id, None, None, history.iso(int(newest)), None)
    dataset_ref = entry.data["dataset"]["ref"]
    dataset = snapshot.get(refs.parse_ref(dataset_ref, refs.Kind.DATASET))
    snap = dataset.data.get("snapshot_at") if dataset and dataset.data else None
    taken = _when(snap)
    days = round((newest - taken) / 86400, 1) if taken is not None else None
    return Drift(route, stage, eval_id, dataset_ref, snap, history.iso(int(newest)), days)
