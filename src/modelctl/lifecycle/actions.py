"""deploy, promote and rollback: each one commit on the route file plus one annotated tag.

Each command is an *intent* that is planned on the branch tip it will be committed on: the
sequence number, the gates and (for promote) the binding being copied are computed from what
is really there. When another writer wins the race the intent is planned again (see
`modelctl.registry.commits`); a promote whose source binding changed meanwhile stops instead of
promoting something the user did not ask for.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modelctl.errors import ConflictError, ManifestError, UsageError
from modelctl.gitstore import TagSpec
from modelctl.lifecycle import gates, history
from modelctl.registry import commits, manifests, policy, refs, suggest
from modelctl.registry.snapshot import Location, Snapshot

Binding = dict[str, Any]


@dataclass
class LifecycleResult:
    action: str
    route: str
    stage: str
    binding: Binding | None
    previous: Binding | None
    seq: int | None = None
    tag: str | None = None
    commit: str | None = None
    signed: bool = False
    eval_id: str | None = None
    dry_run: bool = False
    noop: bool = False  # the stage already served this binding: nothing was written
    attempts: int = 0
    pushed: str | None = None
    gates: list[gates.GateResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    restore: Restore | None = None  # rollback: which event it restored and why


@dataclass
class Skipped:
    """An event a rollback went past on its way to the binding it restores."""

    event: str  # its tag, or `commit <sha>` for an unattested change
    action: str
    summary: str
    why: str


@dataclass
class Restore:
    """What a rollback restored, why that event, and why not the ones in between."""

    mode: str  # last-good (plain rollback), abort-canary, or to (--to)
    event: str
    seq: int | None
    time: str
    why: str
    rolled_back: list[str]  # the targets (model+prompt) being rolled back
    skipped: list[Skipped] = field(default_factory=list)


class _AlreadyServes(Exception):
    def __init__(self, binding: Binding | None) -> None:
        self.binding = binding


# --- bindings -------------------------------------------------------------------------------


def make_binding(
    targets: list[dict[str, Any]], fallback: list[dict[str, Any]], policy: str | None
) -> Binding:
    """A canonical binding (as route files hold it) from command-line parts."""
    from modelctl.registry.validation import pydantic_problems

    fields: dict[str, Any] = {"targets": targets, "fallback": fallback}
    if policy:
        fields["policy"] = policy
    try:
        model = manifests.Binding.model_validate(fields)
    except ValidationError as exc:
        raise ManifestError(pydantic_problems("command line", exc, None)) from None
    data: Binding = model.model_dump(mode="json", exclude_defaults=True)
    return data


def parse_pair(text: str, flag: str) -> dict[str, Any]:
    """`MODEL@VER[,PROMPT@VER]` -> {model, prompt}; errors name `flag` and what was given."""
    model, _, prompt = text.partition(",")
    try:
        out: dict[str, Any] = {
            "model": refs.format_ref(
                refs.parse_ref(model.strip(), refs.Kind.MODEL), with_kind=False
            )
        }
        if prompt.strip():
            out["prompt"] = refs.format_ref(
                refs.parse_ref(prompt.strip(), refs.Kind.PROMPT), with_kind=False
            )
    except UsageError as exc:
        raise UsageError(f"{flag} {text!r}: {exc.message}", hint=exc.hint) from None
    return out


def parse_target(text: str) -> dict[str, Any]:
    """`MODEL@VER[,PROMPT@VER][:WEIGHT]` -> a target."""
    body, colon, weight = text.rpartition(":") if ":" in text else (text, "", "")
    target = parse_pair(body, "--target")
    try:
        target["weight"] = int(weight) if colon else 100
    except ValueError:
        raise UsageError(f"--target {text!r}: weight {weight!r} is not an integer") from None
    return target


def _key(item: dict[str, Any]) -> tuple[str, str | None]:
    return item["model"], item.get("prompt")


def _scale(weights: list[int], total: int) -> list[int]:
    """Integer shares of `total` in proportion to `weights` (largest remainder, at least 1)."""
    whole = sum(weights)
    raw = [w * total / whole for w in weights]
    out = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in order[: total - sum(out)]:
        out[i] += 1
    return [max(1, x) for x in out]


def canary_binding(current: Binding, candidate: Binding, percent: int) -> tuple[Binding, Binding]:
    """(current with `candidate`'s targets added at `percent`%, the pre-canary binding)."""
    keys = {_key(t) for t in candidate["targets"]}
    old = [t for t in current["targets"] if _key(t) not in keys]
    if not old:
        raise UsageError(
            "the stage already serves only the candidate; there is nothing to canary against",
            hint="promote without --canary to complete it",
        )
    old_weights = _scale([t["weight"] for t in old], 100 - percent)
    new_weights = _scale([t["weight"] for t in candidate["targets"]], percent)
    targets = [{**t, "weight": w} for t, w in zip(old, old_weights, strict=True)]
    targets += [{**t, "weight": w} for t, w in zip(candidate["targets"], new_weights, strict=True)]
    merged = {k: v for k, v in current.items() if k != "targets"}
    merged["targets"] = targets
    before = {**current, "targets": [{**t} for t in old]}
    # The stage keeps its own fallback chain while the canary runs.
    return make_binding(targets, merged.get("fallback", []), merged.get("policy")), before


# --- the route file -------------------------------------------------------------------------


def _route_data(snapshot: Snapshot, route: str) -> dict[str, Any]:
    entry = snapshot.route(route)
    if entry is None:
        return {"apiVersion": manifests.API_VERSION, "kind": "Route", "name": route, "stages": {}}
    if entry.data is None:
        problems = "; ".join(str(p) for p in entry.problems[:3])
        raise UsageError(
            f"routes/{route}.yaml is invalid at {snapshot.label}: {problems}",
            hint="fix it (modelctl validate) before changing what it serves",
        )
    return dict(entry.data)


def _stage_names(snapshot: Snapshot) -> list[str]:
    settings = snapshot.settings
    if settings is None:
        raise UsageError("modelctl.yaml is missing or invalid", hint="run modelctl validate")
    return [s["name"] for s in settings["stages"]]


def _check_stage(snapshot: Snapshot, stage: str, flag: str) -> None:
    _stage_names(snapshot)  # modelctl.yaml must be valid to change what a stage serves
    suggest.check_stage(snapshot.settings, stage, flag)


def _check_refs(snapshot: Snapshot, binding: Binding) -> None:
    """Every version the command line names exists: a typo is a usage error with the nearest
    versions, not a failed gate."""
    from modelctl.registry.policy import _binding_refs

    for _field, kind, text in _binding_refs(binding, "binding"):
        if snapshot.get(refs.parse_ref(text, kind)) is None:
            raise snapshot.unknown_ref(text, kind)


def _render_route(data: dict[str, Any], order: list[str]) -> bytes:
    from modelctl.registry.authoring import render_manifest

    stages = data.get("stages", {})
    data = {**data, "stages": {s: stages[s] for s in order if s in stages}}
    data["stages"].update({s: b for s, b in stages.items() if s not in data["stages"]})
    model = manifests.Route.model_validate(data)
    return render_manifest(model, str(refs.route_path(data["name"])))


# --- planning ---------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Shared state of one intent across attempts."""

    action: str
    route: str
    stage: str
    intent: str = field(default_factory=lambda: uuid.uuid4().hex)
    binding: Binding | None = None
    previous: Binding | None = None
    seq: int | None = None
    eval_id: str | None = None
    gates: list[gates.GateResult] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    branch: str = ""  # the registry branch, looked up on the first attempt
    restore: Restore | None = None
    warnings: list[str] = field(default_factory=list)

    def branch_of(self, loc: Location) -> str:
        if not self.branch:
            self.branch = commits.registry_branch(loc)
        return self.branch


def _change(
    loc: Location,
    plan: _Plan,
    snapshot: Snapshot,
    records: list[history.Record],
    binding: Binding,
    extra_trailers: dict[str, str | int | None],
    title: str,
) -> commits.Change:
    order = _stage_names(snapshot)
    data = _route_data(snapshot, plan.route)
    current = data.get("stages", {}).get(plan.stage)
    if current == binding:
        raise _AlreadyServes(binding)
    seq = history.last_seq(plan.route, plan.stage, records) + 1
    data["stages"] = {**data.get("stages", {}), plan.stage: binding}
    branch = plan.branch_of(loc)
    values: dict[str, str | int | None] = {
        "action": plan.action,
        "route": plan.route,
        "stage": plan.stage,
        "seq": seq,
        **extra_trailers,
        "eval": plan.eval_id,
        "ref": branch,
        "promotion_id": plan.intent,
    }
    trailer_text = commits.trailers(**values)
    body = f"{gates.summary(current)}\n  -> {gates.summary(binding)}"
    message = f"{title}\n\n{body}\n\n{trailer_text}\n"
    tag = refs.lifecycle_tag(plan.route, plan.stage, seq)
    tag_message = f"{title}\n\n{trailer_text}\n"
    plan.binding, plan.previous, plan.seq = binding, current, seq
    plan.trailers = {k: str(v) for k, v in values.items() if v not in (None, "")}
    path = str(refs.route_path(plan.route))
    return commits.Change(
        {path: _render_route(data, order)},
        message,
        [TagSpec(str(tag), tag_message)],
        stage=plan.stage,
        guard=[path],
    )


def _finish(
    loc: Location, plan: _Plan, planner: commits.Plan, dry_run: bool, push: str | None
) -> LifecycleResult:
    result = LifecycleResult(plan.action, plan.route, plan.stage, None, None, dry_run=dry_run)
    try:
        outcome = commits.write(loc, planner, dry_run=dry_run, push=push, intent=plan.intent)
    except _AlreadyServes as exc:
        result.noop = True
        result.binding = result.previous = exc.binding
        result.gates = plan.gates
        return result
    result.binding, result.previous, result.seq = plan.binding, plan.previous, plan.seq
    result.eval_id, result.gates, result.trailers = plan.eval_id, plan.gates, plan.trailers
    result.attempts, result.pushed = outcome.attempts, push
    result.warnings = [*plan.warnings, *outcome.warnings]
    result.restore = plan.restore
    if plan.seq is not None:
        result.tag = str(refs.lifecycle_tag(plan.route, plan.stage, plan.seq))
    if outcome.result is not None:
        result.commit = outcome.result.commit
        result.signed = outcome.result.signed
    if outcome.already_landed:
        result.warnings.append("this change had already landed (found by its promotion id)")
    return result


def _ledger(
    loc: Location, route: str, stage: str, tip: str | None, records: list[history.Record]
) -> Callable[[], gates.EvalLedger] | None:
    """The eval gate's view of history, read only when a gate needs it."""
    if tip is None:
        return None
    return lambda: gates.eval_ledger(loc, route, tip, history.events(route, records, stage))


def _enforce(report: gates.GateReport, plan: _Plan) -> None:
    plan.gates = report.results
    plan.eval_id = report.eval_id
    if not report.passed:
        raise gates.GateFailed(report)


def deploy(
    loc: Location,
    route: str,
    stage: str,
    binding: Binding,
    *,
    reason: str | None = None,
    dry_run: bool = False,
    push: str | None = None,
) -> LifecycleResult:
    """Set what `stage` serves on `route` (creating the route when it is new)."""
    refs.check_name(route, "route name")
    refs.check_name(stage, "stage name")
    plan = _Plan("deploy", route, stage)

    def planner(snapshot: Snapshot, tip: str | None) -> commits.Change:
        _check_stage(snapshot, stage, "--stage")
        _check_refs(snapshot, binding)
        records = history.route_records(loc, route, tip) if tip else []
        current = _route_data(snapshot, route).get("stages", {}).get(stage)
        if current == binding:
            raise _AlreadyServes(binding)
        ledger = _ledger(loc, route, stage, tip, records)
        files = policy.CommittedFiles(loc, snapshot)
        report = gates.run_gates(
            snapshot, route, stage, binding, [current], ledger=ledger, files=files
        )
        _enforce(report, plan)
        title = f"modelctl: deploy {route} {stage}"
        return _change(loc, plan, snapshot, records, binding, {"reason": reason}, title)

    return _finish(loc, plan, planner, dry_run, push)


def _source_stage(snapshot: Snapshot, target: str, source: str | None, allow_skip: bool) -> str:
    names = _stage_names(snapshot)
    if source is not None:
        suggest.check_stage(snapshot.settings, source, "--from")
    index = names.index(target)
    if index == 0:
        raise UsageError(
            f"{target} is the first stage; there is nothing to promote from",
            hint=f"deploy to it instead: modelctl deploy ROUTE --stage {target} --model NAME@VER",
        )
    previous = names[index - 1]
    if source is None or source == previous:
        return previous
    if source not in names[:index]:
        raise UsageError(
            f"--from {source} does not come before {target} (path: {' -> '.join(names)})"
        )
    if not allow_skip:
        raise UsageError(
            f"promoting from {source} to {target} skips {', '.join(names[names.index(source) + 1 : index])}",
            hint="promote through each stage in turn, or set allow_stage_skip: true in modelctl.yaml",
        )
    return source


def promote(
    loc: Location,
    route: str,
    target: str,
    *,
    canary: int | None = None,
    source: str | None = None,
    reason: str | None = None,
    dry_run: bool = False,
    push: str | None = None,
) -> LifecycleResult:
    """Copy the previous stage's binding to `target` (or add it beside, at `canary`%)."""
    refs.check_name(route, "route name")
    refs.check_name(target, "stage name")
    if canary is not None and not 0 < canary < 100:
        raise UsageError(f"--canary {canary}: give a percentage between 1 and 99")
    plan = _Plan("promote", route, target)
    pinned: dict[str, Binding] = {}

    def planner(snapshot: Snapshot, tip: str | None) -> commits.Change:
        _check_stage(snapshot, target, "--to")
        snapshot.require_route(route)
        allow = bool((snapshot.settings or {}).get("allow_stage_skip"))
        src = _source_stage(snapshot, target, source, allow)
        stages = _route_data(snapshot, route).get("stages", {})
        candidate = stages.get(src)
        if candidate is None:
            raise UsageError(
                f"{src} serves nothing on route {route}; there is nothing to promote",
                hint=f"deploy there first: modelctl deploy {route} --stage {src} --model NAME@VER",
            )
        # The intent is "promote what the source served when I asked", not whatever it serves
        # by the time a retry runs.
        if pinned.setdefault("candidate", candidate) != candidate:
            raise ConflictError(
                f"{src} changed on route {route} while promoting (now {gates.summary(candidate)})",
                hint="check what it serves (modelctl status) and promote again",
            )
        current = stages.get(target)
        records = history.route_records(loc, route, tip) if tip else []
        if canary is not None:
            if current is None:
                raise UsageError(
                    f"{target} serves nothing on route {route}, so there is nothing to canary beside",
                    hint=f"promote without --canary: modelctl promote {route} --to {target}",
                )
            binding, before = canary_binding(current, candidate, canary)
            baselines = [current, before]
        else:
            binding = candidate
            baselines = [current, *_pre_canary(history.events(route, records, target))]
        if current == binding:
            raise _AlreadyServes(binding)
        ledger = _ledger(loc, route, target, tip, records)
        files = policy.CommittedFiles(loc, snapshot)
        report = gates.run_gates(
            snapshot,
            route,
            target,
            binding,
            baselines,
            candidate=candidate,
            ledger=ledger,
            files=files,
        )
        _enforce(report, plan)
        what = f"canary {canary}% of {src}" if canary is not None else f"from {src}"
        title = f"modelctl: promote {route} {target} ({what})"
        extra: dict[str, str | int | None] = {"from": src, "canary": canary, "reason": reason}
        return _change(loc, plan, snapshot, records, binding, extra, title)

    return _finish(loc, plan, planner, dry_run, push)


def _pre_canary(stage_events: list[history.Event]) -> list[Binding]:
    """While a canary runs, the binding the stage served before it started.

    Completing a canary may use the eval run that compared the candidate against that binding
    (the canary's own mix was never evaluated as a baseline).
    """
    start = history.canary_start(stage_events)
    before = stage_events[start].previous if start is not None else None
    return [before] if before is not None else []


def rollback(
    loc: Location,
    route: str,
    stage: str,
    *,
    to: str | None = None,
    abort_canary: bool = False,
    reason: str | None = None,
    detected_at: str | None = None,
    dry_run: bool = False,
    push: str | None = None,
) -> LifecycleResult:
    """Restore the last good release of `stage`: the newest earlier binding without the
    targets its last release brought in (or, with `abort_canary`, the binding before the
    running canary; with `to`, the binding of that event)."""
    refs.check_name(route, "route name")
    refs.check_name(stage, "stage name")
    if to is not None and abort_canary:
        raise UsageError("--to and --abort-canary each choose what to restore; give one")
    now = history.clock(loc)
    detected = history.user_time(detected_at, "--detected-at", now)[0] if detected_at else None
    plan = _Plan("rollback", route, stage)

    def planner(snapshot: Snapshot, tip: str | None) -> commits.Change:
        if tip is None:
            raise UsageError("the registry has no history yet; there is nothing to roll back")
        records = history.route_records(loc, route, tip)
        if not records:
            snapshot.require_route(route)
        _check_stage(snapshot, stage, "--stage")
        stage_events = history.events(route, records, stage)
        if not stage_events:
            raise UsageError(f"{stage} on route {route} has no history; nothing to roll back")
        last = stage_events[-1]
        if abort_canary:
            restore = _abort_canary(stage_events, route, stage)
        elif to is not None:
            restore = _restore_to(stage_events, to, route, stage)
        else:
            restore = _last_good(stage_events, route, stage)
        event = stage_events[restore.index]
        if event.binding is None:
            raise UsageError(
                f"before {_name(last)} {stage} served nothing on route {route}; "
                "rolling back would leave it serving nothing",
                hint="deploy the binding you want instead",
            )
        _check_detected(detected, now, stage_events)
        # A rollback restores a binding that was live before; only references and policy
        # are re-checked (models are immutable), not the eval gate: it is the emergency exit.
        _enforce(
            gates.run_gates(
                snapshot,
                route,
                stage,
                event.binding,
                [last.binding],
                with_eval=False,
                files=policy.CommittedFiles(loc, snapshot),
            ),
            plan,
        )
        plan.restore = restore.info
        plan.warnings = _fallback_warnings(event.binding, restore.bad)
        title = f"modelctl: rollback {route} {stage} to {_name(event)}"
        extra: dict[str, str | int | None] = {
            "rollback_of": _name(last),
            "restores": _name(event),
            "reason": reason,
            "detected_at": _iso(detected) if detected is not None else None,
        }
        return _change(loc, plan, snapshot, records, event.binding, extra, title)

    return _finish(loc, plan, planner, dry_run, push)


def _name(event: history.Event) -> str:
    return event.tag or f"commit {event.commit[:12]}"


def _iso(value: datetime) -> str:
    return history.iso(int(value.timestamp()))


def target_keys(binding: Binding | None) -> set[tuple[str, str | None]]:
    """The (model, prompt) pairs a binding serves as targets: a prompt change is a change."""
    return {_key(t) for t in (binding or {}).get("targets", [])}


def _pair(key: tuple[str, str | None]) -> str:
    return key[0] + (f"+{key[1]}" if key[1] else "")


@dataclass
class _Restore:
    index: int  # of the event whose binding is restored
    info: Restore
    bad: set[tuple[str, str | None]]


def _restore(
    stage_events: list[history.Event],
    index: int,
    mode: str,
    why: str,
    bad: set[tuple[str, str | None]],
    skipped_why: Callable[[history.Event], str],
) -> _Restore:
    event = stage_events[index]
    skipped = [
        Skipped(_name(e), e.action, gates.summary(e.binding), skipped_why(e))
        for e in stage_events[index + 1 : -1]
    ]
    info = Restore(
        mode, _name(event), event.seq, event.when, why, sorted(_pair(k) for k in bad), skipped
    )
    return _Restore(index, info, bad)


def _only_one(stage_events: list[history.Event], route: str, stage: str) -> None:
    if len(stage_events) < 2:
        raise UsageError(
            f"{stage} on route {route} has had one binding only; there is nothing before it",
            hint="deploy the binding you want instead",
        )


def _last_good(stage_events: list[history.Event], route: str, stage: str) -> _Restore:
    """The newest earlier binding that serves none of the targets the last release brought in.

    The last release starts at the first canary when the last event completed (or continued)
    a canary, so completing a canary and rolling back does not land on the canary's mix.
    When the release brought in no new target (it changed weights, fallbacks or policy, or it
    was a rollback to a binding served just before), the binding before it is restored.

    A binding serving a target that a later rollback took off the stage is never restored: a
    second `rollback` (a retry, a second person on the incident, a lost race re-planned on the
    new tip) goes further back or refuses, instead of undoing the first and bringing the
    regression back past the eval gate's rule for rolled-back bindings (`--to` does that on
    purpose)."""
    _only_one(stage_events, route, stage)
    last = stage_events[-1]
    start = history.release_start(stage_events)
    bad = target_keys(last.binding) - target_keys(stage_events[start].previous)
    taken = _taken_off(stage_events)

    def rolled_back(index: int) -> history.Event | None:
        served = target_keys(stage_events[index].binding)
        found = (r for r, removed in taken if r > index and served & removed)
        return next((stage_events[r] for r in found), None)

    brought = ", ".join(sorted(_pair(k) for k in bad))
    by = _name(stage_events[start])
    blocked: history.Event | None = None
    for index in range(len(stage_events) - 2, -1, -1):
        event = stage_events[index]
        if event.binding is None or event.binding == last.binding:
            continue
        if bad and target_keys(event.binding) & bad:
            continue
        rollback = rolled_back(index)
        if rollback is not None:
            blocked = blocked or rollback
            continue
        if bad:
            why = f"the newest earlier binding without {brought} (brought in by {by})"
        elif index == len(stage_events) - 2:
            why = (
                f"{_name(last)} brought in no new target (it changed weights, fallbacks or "
                "policy): the binding before it"
            )
        else:
            why = (
                f"{_name(last)} brought in no new target: the newest earlier binding that no "
                "rollback took off"
            )

        def skipped_why(e: history.Event) -> str:
            r = rolled_back(stage_events.index(e))
            if r is not None and not (bad and target_keys(e.binding) & bad):
                return f"rolled back by {_name(r)}"
            return _serves_bad(e, bad) if bad else ""

        return _restore(stage_events, index, "last-good", why, bad, skipped_why)
    if blocked is not None:
        raise UsageError(
            f"every earlier binding of {stage} on route {route} either serves "
            f"{brought or 'what it serves now'} or was taken off by a rollback "
            f"({_name(blocked)}): a plain rollback never brings back what a rollback took off",
            hint=(
                f"to bring one back on purpose: modelctl rollback {route} --stage {stage} "
                f"--to SEQ|TAG (see modelctl history {route} --stage {stage}); or promote it "
                "again with a fresh eval"
            ),
        )
    raise UsageError(
        f"every earlier binding of {stage} on route {route} serves {brought}, which the last "
        "release brought in: there is no release without it to go back to",
        hint=(
            f"choose an event with --to SEQ|TAG (see modelctl history {route} --stage {stage}), "
            f"or deploy the binding you want: modelctl deploy {route} --stage {stage} ..."
        ),
    )


def _taken_off(stage_events: list[history.Event]) -> list[tuple[int, set[tuple[str, str | None]]]]:
    """(index, targets it took off the stage) for every rollback among `stage_events`."""
    return [
        (i, target_keys(e.previous) - target_keys(e.binding))
        for i, e in enumerate(stage_events)
        if e.action == "rollback" and e.previous is not None
    ]


def _serves_bad(event: history.Event, bad: set[tuple[str, str | None]]) -> str:
    if event.binding is None:
        return "served nothing"
    found = ", ".join(sorted(_pair(k) for k in target_keys(event.binding) & bad))
    return f"serves {found}" + (f" (canary {event.canary}%)" if event.canary else "")


def _abort_canary(stage_events: list[history.Event], route: str, stage: str) -> _Restore:
    start = history.canary_start(stage_events)
    last = stage_events[-1]
    if start is None:
        raise UsageError(
            f"{stage} on route {route} is not running a canary: its last change, "
            f"{_name(last)}, is a {last.action}"
            + (" without --canary" if last.action == "promote" else ""),
            hint=f"to go back to the last good release: modelctl rollback {route} --stage {stage}",
        )
    if start == 0:
        raise UsageError(f"{stage} on route {route} served nothing before the canary")
    candidate = target_keys(last.binding) - target_keys(stage_events[start].previous)
    why = f"the binding before the canary {_name(stage_events[start])} started"
    return _restore(stage_events, start - 1, "abort-canary", why, candidate,
                    lambda e: f"the canary being aborted ({e.canary}%)")  # fmt: skip


def _restore_to(stage_events: list[history.Event], to: str, route: str, stage: str) -> _Restore:
    text = to.removeprefix("refs/tags/")
    if text.isdigit():
        seq = int(text)
    else:
        tag = refs.parse_lifecycle_tag(text)
        if (tag.route, tag.stage) != (route, stage):
            raise UsageError(f"--to {to} belongs to {tag.route} {tag.stage}, not {route} {stage}")
        seq = tag.seq
    for index, event in enumerate(stage_events):
        if event.seq == seq:
            if event is stage_events[-1]:
                raise UsageError(f"--to {to} is what {stage} serves now; nothing to roll back")
            last = stage_events[-1]
            bad = target_keys(last.binding) - target_keys(event.binding)
            return _restore(stage_events, index, "to", f"chosen with --to {to}", bad,
                            lambda e: f"after --to {to}")  # fmt: skip
    raise UsageError(
        f"no event {seq} for {route} {stage}",
        hint=f"see the events: modelctl history {route} --stage {stage}",
    )


def _fallback_warnings(binding: Binding, bad: set[tuple[str, str | None]]) -> list[str]:
    chain = {_key(step) for step in binding.get("fallback", [])}
    return [
        f"the restored binding still falls back to {_pair(k)}, which is being rolled back"
        for k in sorted(chain & bad, key=_pair)
    ]


def _check_detected(
    detected: datetime | None, now: datetime, stage_events: list[history.Event]
) -> None:
    """`--detected-at` lies between the moment the release being rolled back went live and
    now, give or take the clock skew (`history.CLOCK_SKEW`)."""
    if detected is None:
        return
    live = stage_events[history.release_start(stage_events)]
    when, skew = detected.timestamp(), history.CLOCK_SKEW
    bounds = f"give a time between {live.when} and now ({_iso(now)})"
    if when < live.time - skew:
        raise UsageError(
            f"--detected-at {_iso(detected)} is before {_name(live)} went live ({live.when}): "
            "a regression cannot be detected before the release that brought it",
            hint=bounds,
        )
    if when > now.timestamp() + skew:
        raise UsageError(f"--detected-at {_iso(detected)} is in the future", hint=bounds)
