"""Gates that run before a binding lands on a stage: references, policy, and the eval gate.

The eval gate asks for a passing EvalRun whose candidate is the binding being promoted, whose
baseline is what the stage serves now (explicit, never "last week"), whose dataset digest
still matches the dataset manifest and whose judge pins still exist. When it refuses, it says
which runs came close and why each does not count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from modelctl import refs
from modelctl.errors import CheckFailed
from modelctl.registry import Snapshot

if TYPE_CHECKING:
    from modelctl.policy import CommittedFiles

_SHOWN = 5  # problems a refusal lists


@dataclass
class GateResult:
    gate: str  # references, policy, eval
    passed: bool
    detail: str
    eval_id: str | None = None


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
    from modelctl.policy import _binding_refs, check_closure

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
    from modelctl.policy import _binding_problems

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


def _eval_reasons(
    snapshot: Snapshot,
    run: dict[str, Any],
    candidate: dict[str, Any],
    baselines: list[dict[str, Any] | None],
    stage: str,
    max_age_days: int | None,
) -> list[str]:
    reasons = []
    if run.get("stage") not in (None, stage):
        reasons.append(f"it gates stage {run['stage']}, not {stage}")
    if run["candidate"] != candidate:
        reasons.append(f"its candidate is {summary(run['candidate'])}")
    if run["baseline"] not in baselines:
        reasons.append(
            f"its baseline is {summary(run['baseline'])} but {stage} serves "
            f"{summary(baselines[0])} now (a stale baseline)"
        )
    if run["verdict"] != "pass":
        reasons.append(f"its verdict is {run['verdict']}")
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
        from modelctl.policy import check_closure  # a judge pin is checked as validate would

        problems = check_closure(snapshot, [(refs.Kind.JUDGE, judge)], None)[1]
        if problems:
            reasons.append(f"its judge {judge} is invalid: {problems[0]}")
    if max_age_days is not None:
        created = datetime.fromisoformat(run["created"].replace("Z", "+00:00"))
        age = (datetime.now(UTC) - created).days
        if age > max_age_days:
            reasons.append(f"it is {age} days old (max_age_days: {max_age_days})")
    return reasons


def check_eval(
    snapshot: Snapshot,
    route: str,
    stage: str,
    candidate: dict[str, Any],
    baselines: list[dict[str, Any] | None],
) -> GateResult | None:
    """The eval gate of `stage`, or None when the stage has none.

    `baselines[0]` is what the stage serves now; later entries are also accepted (the binding
    before a canary started, so completing a canary can use the eval that started it).
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
    runs = [
        e.data
        for e in snapshot.artifacts("evals")
        if e.data is not None and e.data["route"] == route
    ]
    runs.sort(key=lambda r: r["created"], reverse=True)
    near: list[str] = []
    for run in runs:
        reasons = _eval_reasons(
            snapshot, run, candidate, baselines, stage, gate.get("max_age_days")
        )
        if not reasons:
            detail = f"eval {run['id']} passed: candidate vs baseline on {run['dataset']['ref']}"
            return GateResult("eval", True, detail, eval_id=run["id"])
        if run["candidate"] == candidate:
            near.append(f"eval {run['id']} does not count: " + "; ".join(reasons))
    wanted = (
        f"a passing eval run for route {route} with candidate {summary(candidate)} "
        f"and baseline {summary(baselines[0])}"
    )
    detail = f"{stage} requires {wanted}"
    if near:
        detail += ". " + ". ".join(near[:3])
    else:
        detail += f"; run one with: modelctl eval run {route} --to {stage} ..."
    return GateResult("eval", False, detail)


def run_gates(
    snapshot: Snapshot,
    route: str,
    stage: str,
    binding: dict[str, Any],
    baselines: list[dict[str, Any] | None],
    *,
    candidate: dict[str, Any] | None = None,
    with_eval: bool = True,
    files: CommittedFiles | None = None,
) -> GateReport:
    """Gates for `binding` landing on `stage`; the eval gate judges `candidate` (default: the
    binding itself; for a canary, what is being rolled out beside the current targets).
    `files` reads the registry files committed in `snapshot`, for the pinned-file checks."""
    report = GateReport(route, stage)
    report.results.append(check_references(snapshot, binding, files))
    report.results.append(check_policy(snapshot, route, stage, binding))
    if with_eval:
        result = check_eval(snapshot, route, stage, candidate or binding, baselines)
        if result is not None:
            report.results.append(result)
    return report
