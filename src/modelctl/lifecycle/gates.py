"""Gates that run before a binding lands on a stage: references, policy, and the eval gate.

The eval gate asks for a passing EvalRun whose candidate is the binding being promoted, whose
baseline is what the stage serves now (explicit, never "last week"), whose dataset digest
still matches the dataset manifest and whose judge pins still exist. It remembers what came
after a pass: for each baseline and dataset the newest run (in the order the branch received
them) decides, and a candidate a rollback took off the stage needs a run recorded after that
rollback. When it refuses, it says which runs came close and why each does not count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelctl.errors import CheckFailed
from modelctl.lifecycle import history
from modelctl.registry import manifests, refs
from modelctl.registry.snapshot import Location, Snapshot

if TYPE_CHECKING:
    from modelctl.registry.policy import CommittedFiles

_SHOWN = 5  # problems a refusal lists


@dataclass
class RunNote:
    """An eval run as the gate names it: its id, verdict and dataset."""

    id: str
    verdict: str
    dataset: str


@dataclass
class GateResult:
    gate: str  # references, policy, eval
    passed: bool
    detail: str
    eval_id: str | None = None
    # The eval gate: the run that decided, the older runs it overrode, and the rollback after
    # which the candidate needs a fresh eval.
    decided_by: RunNote | None = None
    overridden: list[RunNote] = field(default_factory=list)
    rollback: str | None = None


@dataclass
class GateReport:
    route: str
    stage: str
    results: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def eval_id(self) -> str | None:
        return next((r.eval_id for r in self.results if r.eval_id), None)


class GateFailed(CheckFailed):
    """A gate refused the change; nothing was written."""

    def __init__(self, report: GateReport) -> None:
        failed = [r for r in report.results if not r.passed]
        lines = "\n".join(f"  {r.gate}: {r.detail}" for r in failed)
        super().__init__(
            f"gates refused {report.route} {report.stage}; nothing was written:\n{lines}",
            hint="fix what the gates name, then run the command again",
        )
        self.report = report


def summary(binding: dict[str, Any] | None) -> str:
    """`support-gpt@2026-05+support-system@4 (90), ...; fallback: ...` for messages."""
    if not binding:
        return "nothing"

    def one(item: dict[str, Any]) -> str:
        text = item["model"] + (f"+{item['prompt']}" if item.get("prompt") else "")
        return f"{text} ({item['weight']})" if "weight" in item else text

    targets = ", ".join(one(t) for t in binding.get("targets", []))
    if len(binding.get("targets", [])) == 1:
        targets = one({k: v for k, v in binding["targets"][0].items() if k != "weight"})
    chain = " -> ".join(one(s) for s in binding.get("fallback", []))
    policy = binding.get("policy")
    out = targets + (f"; fallback: {chain}" if chain else "")
    return out + (f"; policy: {policy}" if policy and policy != "weighted" else "")


def _stage_settings(snapshot: Snapshot, stage: str) -> dict[str, Any]:
    for item in (snapshot.settings or {}).get("stages", []):
        if item["name"] == stage:
            return dict(item)
    return {}


def check_references(
    snapshot: Snapshot, binding: dict[str, Any], files: CommittedFiles | None = None
) -> GateResult:
    """Every model and prompt the binding names exists and is valid as `modelctl validate`
    checks it, and so is everything they name in turn; with `files` (the snapshot's committed
    files), pinned template and data files are checked against their digests too."""
    from modelctl.registry.policy import _binding_refs, check_closure

    roots = [(kind, text) for _, kind, text in _binding_refs(binding, "binding")]
    missing, problems = check_closure(snapshot, roots, files)
    if missing:
        return GateResult("references", False, "not in the registry: " + ", ".join(missing))
    if problems:
        where = f"commit {snapshot.commit[:12]}" if snapshot.commit else snapshot.label
        shown = "; ".join(str(p) for p in problems[:_SHOWN])
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        return GateResult(
            "references",
            False,
            f"invalid in {where}: {shown}{more}; fix them in a new version "
            "(modelctl validate lists every problem)",
        )
    return GateResult("references", True, "every model and prompt exists and is valid")


def check_policy(snapshot: Snapshot, route: str, stage: str, binding: dict[str, Any]) -> GateResult:
    from modelctl.registry.policy import _binding_problems

    settings = _stage_settings(snapshot, stage)
    problems = list(
        _binding_problems(
            f"routes/{route}.yaml",
            f"stages.{stage}",
            binding,
            bool(settings.get("require_fallback")),
        )
    )
    if problems:
        return GateResult("policy", False, "; ".join(f"{p.field}: {p.message}" for p in problems))
    return GateResult("policy", True, "binding satisfies the stage's policy")


@dataclass
class EvalLedger:
    """Where a route's eval runs and a stage's events sit in the branch's commit order.

    `order` maps an EvalRun's registry path to the position of the first-parent commit that
    added it, `positions` maps each commit that touched the route or its evals to its
    position; a higher position is newer. `stage_events` are the stage's events, oldest first.
    """

    order: dict[str, int] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    stage_events: list[history.Event] = field(default_factory=list)
    # A dataset version's registry path -> the position of the commit that added it: of two
    # versions of one dataset, the later added is the newer question.
    datasets: dict[str, int] = field(default_factory=dict)


def eval_ledger(
    loc: Location, route: str, tip: str, stage_events: list[history.Event]
) -> EvalLedger:
    """The commit order of `route`'s eval runs and route changes on the history up to `tip`
    (one `git log`)."""
    evals = loc.repo_path(f"{refs.eval_path(route, 'x').parent.as_posix()}/")
    route_file = loc.repo_path(str(refs.route_path(route)))
    datasets = loc.repo_path(f"{refs.manifest_path(refs.Kind.DATASET, 'x', 'y').parent.parent}/")
    ledger = EvalLedger(stage_events=stage_events)
    changes = loc.store.first_parent_changes(tip, [evals, route_file, datasets])
    for position, (commit, paths) in enumerate(changes):
        ledger.positions[commit] = position
        for status, path in paths:
            if status == "A" and path.startswith(evals):
                ledger.order[path.removeprefix(loc.prefix)] = position
            elif status == "A" and path.startswith(datasets):
                ledger.datasets[path.removeprefix(loc.prefix)] = position
    return ledger


def _targets(binding: dict[str, Any] | None) -> set[tuple[str, str | None]]:
    return {(t["model"], t.get("prompt")) for t in (binding or {}).get("targets", [])}


def rolled_back(
    candidate: dict[str, Any], stage_events: list[history.Event]
) -> history.Event | None:
    """The last rollback that took `candidate` off the stage: one whose stage served the
    candidate before it (or a canary of it, whose candidate targets the rollback removed)."""
    wanted = _targets(candidate)
    for event in reversed(stage_events):
        if event.action != "rollback" or event.previous is None:
            continue
        if event.previous == candidate:
            return event
        before, after = _targets(event.previous), _targets(event.binding)
        if wanted and wanted <= before and not wanted <= after:
            return event
    return None


def _eval_reasons(
    snapshot: Snapshot,
    run: dict[str, Any],
    candidate: dict[str, Any],
    baselines: list[dict[str, Any] | None],
    stage: str,
) -> list[str]:
    """Why `run` says nothing about `candidate` replacing what `stage` serves (empty: it does)."""
    reasons = []
    if run.get("stage") not in (None, stage):
        reasons.append(f"it gates stage {run['stage']}, not {stage}")
    if run["candidate"] != candidate:
        reasons.append(f"its candidate is {summary(run['candidate'])}")
    if run["candidate"] == run["baseline"]:
        reasons.append(
            "it compares the candidate with itself (its baseline is the same binding), which "
            "shows nothing; record a run against what the stage serves (--baseline-from)"
        )
    elif run["baseline"] not in baselines:
        reasons.append(
            f"its baseline is {summary(run['baseline'])} but {stage} serves "
            f"{summary(baselines[0])} now (a stale baseline)"
        )
    lenient = _laxer(run.get("gate"), _stage_settings(snapshot, stage).get("eval_gate"))
    if lenient:
        reasons.append(
            f"it was judged more leniently than {stage} now asks ({'; '.join(lenient)}): "
            f"record a new run: modelctl eval run {run['route']} --to {stage} ..."
        )
    pinned = run["dataset"]
    dataset = snapshot.get(refs.parse_ref(pinned["ref"], refs.Kind.DATASET))
    if dataset is None or dataset.data is None:
        reasons.append(f"its dataset {pinned['ref']} is not in the registry")
    elif dataset.data["sha256"] != pinned["sha256"]:
        reasons.append(f"its dataset digest does not match dataset {pinned['ref']}")
    for judge in run.get("judges", []):
        if snapshot.get(refs.parse_ref(judge, refs.Kind.JUDGE)) is None:
            reasons.append(f"its judge {judge} no longer exists")
            continue
        from modelctl.registry.policy import (
            check_closure,  # a judge pin is checked as validate would
        )

        problems = check_closure(snapshot, [(refs.Kind.JUDGE, judge)], None)[1]
        if problems:
            reasons.append(f"its judge {judge} is invalid: {problems[0]}")
    return reasons


def _laxer(recorded: dict[str, Any] | None, current: dict[str, Any] | None) -> list[str]:
    """How the thresholds a run was judged with (`recorded`, its `gate`) are laxer than the
    stage's eval gate now (`current`): a verdict reached with a larger tolerated regression,
    fewer samples or less confidence says nothing about the gate as it stands."""
    if recorded is None or current is None:
        return []
    defaults = manifests.EvalGate().model_dump()
    was, now = {**defaults, **recorded}, {**defaults, **current}
    found = []
    if float(was["max_regression"]) > float(now["max_regression"]):
        found.append(f"max_regression {was['max_regression']}, now {now['max_regression']}")
    if int(was["min_samples"]) < int(now["min_samples"]):
        found.append(f"min_samples {was['min_samples']}, now {now['min_samples']}")
    if float(was["confidence"]) < float(now["confidence"]):
        found.append(f"confidence {was['confidence']}, now {now['confidence']}")
    return found


def _age_days(run: dict[str, Any]) -> int:
    created = datetime.fromisoformat(run["created"].replace("Z", "+00:00"))
    return (datetime.now(UTC) - created).days


def _note(run: dict[str, Any]) -> RunNote:
    return RunNote(run["id"], run["verdict"], run["dataset"]["ref"])


def _names(runs: list[dict[str, Any]]) -> str:
    return ", ".join(f"eval {r['id']} ({r['verdict']})" for r in runs)


def _event_name(event: history.Event) -> str:
    return event.tag or f"commit {event.commit[:12]}"


def check_eval(
    snapshot: Snapshot,
    route: str,
    stage: str,
    candidate: dict[str, Any],
    baselines: list[dict[str, Any] | None],
    ledger: Callable[[], EvalLedger] | None = None,
) -> GateResult | None:
    """The eval gate of `stage`, or None when the stage has none.

    `baselines[0]` is what the stage serves now; later entries are also accepted (the binding
    before a canary started, so completing a canary can use the eval that started it).

    For each (baseline, dataset name) the newest run of the candidate decides, newest by the order
    the runs were committed on the branch (`ledger`), never by their `created` text: a later
    failing run vetoes an earlier pass. Among a dataset's versions the newest committed one
    decides first: a later run on an older version does not answer a newer version's fail. A candidate that was rolled back from the stage needs
    a passing run committed after that rollback.
    """
    gate = _stage_settings(snapshot, stage).get("eval_gate")
    if gate is None:
        return None
    if baselines[0] is None:
        # Nothing is served yet, so nothing can regress: the first binding of a gated stage
        # bootstraps it. Every later change needs a passing eval against what it replaces.
        return GateResult(
            "eval", True, f"{stage} serves nothing yet on {route}: nothing to regress against"
        )
    book = ledger() if ledger is not None else EvalLedger()
    runs = sorted(
        (
            (book.order.get(e.path, -1), e.data)
            for e in snapshot.artifacts("evals")
            if e.data is not None and e.data["route"] == route
        ),
        # Oldest first. Runs added by one commit have no order among them: a fail is taken
        # as the newer, so that it is never hidden behind a pass committed beside it.
        key=lambda item: (item[0], item[1]["verdict"] == "fail", item[1]["id"]),
    )
    near: list[str] = []
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for position, run in runs:
        reasons = _eval_reasons(snapshot, run, candidate, baselines, stage)
        if reasons:
            if run["candidate"] == candidate:
                near.append(f"eval {run['id']} does not count: " + "; ".join(reasons))
            continue
        # Versions of one dataset are one question asked again: a newer version's run answers
        # (and can veto) an older version's, so a fix to a dataset is not blocked forever by a
        # fail on the version it replaces. Another dataset is another question.
        dataset = refs.parse_ref(run["dataset"]["ref"], refs.Kind.DATASET).name
        key = json.dumps([run["baseline"], dataset], sort_keys=True)
        groups.setdefault(key, []).append((position, run))
    near.reverse()  # newest first

    def version_added(run: dict[str, Any]) -> int:
        ref = refs.parse_ref(run["dataset"]["ref"], refs.Kind.DATASET)
        return book.datasets.get(
            str(refs.manifest_path(refs.Kind.DATASET, ref.name, ref.version)), -1
        )

    for group in groups.values():
        # The newest version of the dataset asks the question: a later run on an older
        # version (an easier question) does not answer a newer version's fail.
        group.sort(key=lambda item: version_added(item[1]))
    # Per (baseline, dataset name): (position, the deciding run, the older runs it overrides).
    deciders = sorted(
        ((g[-1][0], g[-1][1], [r for _, r in g[:-1]]) for g in groups.values()),
        key=lambda d: d[0],
    )
    rollback = rolled_back(candidate, book.stage_events)
    since = -1
    if rollback is not None:
        since = book.positions.get(rollback.commit, len(book.positions))
    failing = [d for d in deciders if d[1]["verdict"] != "pass"]
    if failing:
        _, run, older = failing[-1]
        lines = [
            f"decided by eval {r['id']} (fail), the newest run of the candidate against "
            f"{summary(r['baseline'])} on {r['dataset']['ref']}"
            + (f"; it overrides {_names(o)}" if o else "")
            for _, r, o in reversed(failing)
        ]
        detail = (
            f"{stage} refuses candidate {summary(candidate)}: "
            + ". ".join(lines)
            + f". Fix the regression and record a newer run: modelctl eval run {route} --to {stage} ..."
        )
        return GateResult(
            "eval", False, detail, decided_by=_note(run), overridden=[_note(r) for r in older]
        )
    fresh: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
    before_rollback: list[dict[str, Any]] = []
    for position, run, older in deciders:
        if position <= since:
            before_rollback += [*older, run]  # every run of the group came before it
            continue
        max_age = gate.get("max_age_days")
        if max_age is not None and _age_days(run) > max_age:
            near.insert(0, f"eval {run['id']} does not count: it is {_age_days(run)} days old "
                        f"(max_age_days: {max_age})")  # fmt: skip
            continue
        fresh.append((position, run, older))
    if fresh:
        _, run, older = fresh[-1]
        detail = (
            f"eval {run['id']} passed: candidate vs baseline on {run['dataset']['ref']}; "
            f"decided by eval {run['id']}, the newest run of this candidate, baseline and dataset"
            + (f"; overrides {_names(older)}" if older else "")
        )
        return GateResult(
            "eval", True, detail, eval_id=run["id"], decided_by=_note(run),
            overridden=[_note(r) for r in older],
        )  # fmt: skip
    wanted = (
        f"a passing eval run for route {route} with candidate {summary(candidate)} "
        f"and baseline {summary(baselines[0])}"
    )
    detail = f"{stage} requires {wanted}"
    rollback_name = None
    if rollback is not None:
        rollback_name = _event_name(rollback)
        of = rollback.trailers.get("rollback-of")
        why = rollback.reason or "no reason given"
        detail += (
            f". The candidate was rolled back from {stage} by {rollback_name} "
            f"({f'rollback of {of}; ' if of else ''}reason: {why}; {rollback.when}): it needs "
            "an eval recorded after that rollback"
        )
        if before_rollback:
            detail += f"; {_names(before_rollback)} came before it"
    if near:
        detail += ". " + ". ".join(near[:3])
    if rollback is not None or not near:
        detail += f"; run one with: modelctl eval run {route} --to {stage} ..."
    return GateResult(
        "eval", False, detail, rollback=rollback_name,
        overridden=[_note(r) for r in before_rollback],
    )  # fmt: skip


def run_gates(
    snapshot: Snapshot,
    route: str,
    stage: str,
    binding: dict[str, Any],
    baselines: list[dict[str, Any] | None],
    *,
    candidate: dict[str, Any] | None = None,
    with_eval: bool = True,
    ledger: Callable[[], EvalLedger] | None = None,
    files: CommittedFiles | None = None,
) -> GateReport:
    """Gates for `binding` landing on `stage`; the eval gate judges `candidate` (default: the
    binding itself; for a canary, what is being rolled out beside the current targets).
    `files` reads the registry files committed in `snapshot`, for the pinned-file checks."""
    report = GateReport(route, stage)
    report.results.append(check_references(snapshot, binding, files))
    report.results.append(check_policy(snapshot, route, stage, binding))
    if with_eval:
        result = check_eval(snapshot, route, stage, candidate or binding, baselines, ledger)
        if result is not None:
            report.results.append(result)
    return report
