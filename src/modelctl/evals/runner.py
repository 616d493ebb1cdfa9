"""`modelctl eval run`: score candidate and baseline outputs on a pinned dataset, compare them
pairwise per cohort and per evaluator, and record the verdict as an immutable EvalRun."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelctl.errors import ManifestError, Problem, UsageError
from modelctl.evals import stats
from modelctl.evals.evaluators import EvaluatorSpec, builtin_check, run_external
from modelctl.lifecycle import history
from modelctl.registry import commits, manifests, refs, suggest
from modelctl.registry.snapshot import Location, Snapshot, snapshot_at

Binding = dict[str, Any]
ALL = "all"  # the combined evaluator: an example passes when every evaluator passes
Progress = Callable[[int], None]


@dataclass
class Bindings:
    candidate: Binding
    baseline: Binding
    candidate_from: str
    baseline_from: str


@dataclass
class Outcomes:
    """Per example: did each evaluator pass on each side? Plus what was missing or skipped."""

    ids: list[str]
    cohorts: dict[str, str]
    passed: dict[str, dict[str, tuple[bool, bool]]]  # evaluator -> id -> (candidate, baseline)
    missing: dict[str, int] = field(default_factory=dict)


@dataclass
class EvalResult:
    run: dict[str, Any]  # the EvalRun manifest data
    path: str
    committed: bool
    commit: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return str(self.run["verdict"])


# --- inputs ----------------------------------------------------------------------------------


def stage_bindings(
    snapshot: Snapshot,
    route: str,
    to: str,
    candidate_from: str | None,
    baseline_from: str | None,
    loc: Location | None = None,
) -> Bindings:
    """What is compared: the stage promote would copy from, against what `to` serves now.

    `baseline_from` names another stage, or a release from history (see `release_baseline`,
    which needs `loc`)."""
    settings = snapshot.settings or {}
    names = [s["name"] for s in settings.get("stages", [])]
    suggest.check_stage(snapshot.settings, to, "--to")
    if candidate_from is not None:
        suggest.check_stage(snapshot.settings, candidate_from, "--candidate-from")
    entry = snapshot.require_route(route)
    if entry.data is None:
        raise UsageError(
            f"routes/{route}.yaml is invalid at {snapshot.label}", hint="run modelctl validate"
        )
    stages = entry.data.get("stages", {})
    index = names.index(to)
    source = candidate_from or (names[index - 1] if index > 0 else None)
    if source is None:
        raise UsageError(
            f"{to} is the first stage; say what to evaluate with --candidate-from STAGE"
        )
    base_stage = baseline_from or to
    candidate, baseline = stages.get(source), stages.get(base_stage)
    if candidate is None:
        raise UsageError(
            f"{source} serves nothing on route {route}: there is no candidate to evaluate"
        )
    if baseline_from is not None and baseline_from not in names:
        # Not a stage: a release (sequence, tag, commit, time). When it is none of those either
        # and looks like a misspelt stage, the stage check's did-you-mean says so.
        if loc is None or suggest.nearest(baseline_from, names):
            suggest.check_stage(snapshot.settings, baseline_from, "--baseline-from")
        assert loc is not None  # check_stage raised otherwise
        baseline, base_stage = release_baseline(loc, route, to, baseline_from)
    if baseline is None:
        raise UsageError(
            f"{base_stage} serves nothing on route {route}: there is no baseline to compare with",
            hint="name an explicit baseline with --baseline-from STAGE",
        )
    return Bindings(candidate, baseline, source, base_stage)


def release_baseline(loc: Location, route: str, stage: str, value: str) -> tuple[Binding, str]:
    """The binding `--baseline-from VALUE` names when VALUE is not a stage, and a label for it.

    VALUE is an event sequence number of `stage` (`3`), a lifecycle tag
    (`modelctl/ROUTE/STAGE/3`): the binding that event put on its stage; or a commit or an
    ISO 8601 time: what `stage` served then, resolved as `modelctl resolve --at` does.
    """
    from modelctl.lifecycle import status

    forms = (
        f"give a stage name, an event sequence of {stage} (e.g. 3), a lifecycle tag "
        f"(modelctl/{route}/{stage}/3), a commit, or an ISO 8601 time"
    )
    text = value.removeprefix("refs/tags/")
    ref, tip = history.branch_tip(loc)
    branch = ref.removeprefix("refs/heads/")
    if text.isdigit() or text.startswith(f"{refs.TAG_PREFIX}/"):
        try:
            tag = refs.lifecycle_tag(route, stage, int(text)) if text.isdigit() else None
            tag = tag or refs.parse_lifecycle_tag(text)
        except UsageError as exc:
            raise UsageError(f"--baseline-from {value!r}: {exc.message}", hint=forms) from None
        if tag.route != route:
            raise UsageError(
                f"--baseline-from {value!r} is a tag of route {tag.route}, not {route}", hint=forms
            )
        records = history.route_records(loc, route, tip)
        events = history.events(route, records, tag.stage)
        event = next((e for e in events if e.seq == tag.seq), None)
        if event is None:
            raise UsageError(
                f"--baseline-from {value!r}: no event {tag.seq} for {route} {tag.stage} on {branch}",
                hint=f"see the events: modelctl history {route} --stage {tag.stage}",
            )
        if event.binding is None:
            raise UsageError(
                f"--baseline-from {value!r}: {tag.stage} served nothing on route {route} after it",
                hint=forms,
            )
        return event.binding, str(tag)
    try:
        when = history.point_in_time(loc, value)
    except UsageError:
        raise UsageError(
            f"--baseline-from {value!r} is neither a stage, an event sequence, a lifecycle tag, "
            "a commit nor a time",
            hint=forms,
        ) from None
    if when.commit is not None and not loc.store.is_ancestor(when.commit, tip):
        raise UsageError(
            f"--baseline-from {value!r}: commit {when.commit[:12]} is not on {branch}'s history",
            hint=forms,
        )
    resolved = status.resolve(loc, route, stage, value)
    if resolved.binding is None:
        raise UsageError(
            f"--baseline-from {value!r}: {stage} served nothing on route {route} at {resolved.at}",
            hint=forms,
        )
    return resolved.binding, f"{stage} at {resolved.at}"


def gate_settings(snapshot: Snapshot, stage: str) -> dict[str, Any]:
    for item in (snapshot.settings or {}).get("stages", []):
        if item["name"] == stage and item.get("eval_gate"):
            return dict(item["eval_gate"])
    return manifests.EvalGate().model_dump()


def read_jsonl(path: Path, label: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; ManifestError on the first bad one."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {label} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{label} {path} is not UTF-8 (byte {exc.start})") from None
    return _objects(text, str(path))


def _objects(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # json.loads on str skips the encoding sniffing it does for bytes (a third of the time).
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise ManifestError(
                    [Problem(source, "", f"not valid JSON: {exc}", number)]
                ) from None
            if not isinstance(item, dict):
                raise ManifestError(
                    [Problem(source, "", "each line must be a JSON object", number)]
                )
            yield number, item


def load_dataset(
    loc: Location,
    snapshot: Snapshot,
    ref_text: str,
    local_file: Path | None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The dataset manifest and its rows, after checking the file's digest against the pin.

    Rows are checked as `add dataset` checks them (a manifest added with --uri/--sha256 or
    --file never was): JSON objects, each with a unique string or integer `id`."""
    manifest = snapshot.require(ref_text, refs.Kind.DATASET)
    remote = manifest["uri"].startswith(manifests._REMOTE_SCHEMES)
    if local_file is None:
        if remote:
            raise UsageError(
                f"dataset {ref_text} lives at {manifest['uri']}",
                hint="download it and pass the local copy with --dataset-file FILE",
            )
        local_file = loc.root / manifest["uri"]
    digest = hashlib.sha256()
    rows: list[dict[str, Any]] = []
    try:
        with local_file.open("rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read dataset file {local_file}: {exc.strerror}") from None
    digest.update(data)
    if digest.hexdigest() != manifest["sha256"]:
        raise ManifestError(
            [
                Problem(
                    str(local_file),
                    "",
                    f"sha256 differs from the digest pinned in dataset {ref_text}",
                )
            ],
            hint="the data changed after it was registered: add a new dataset version",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"dataset file {local_file} is not UTF-8 (byte {exc.start})") from None
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, row in _objects(text, str(local_file)):
        rid = row.get("id")
        if not isinstance(rid, str | int) or isinstance(rid, bool):
            problems.append(
                Problem(str(local_file), "id", "every row needs an id (string or integer)", number)
            )
        elif str(rid) in seen:
            problems.append(Problem(str(local_file), "id", f"duplicate id {rid!r}", number))
        else:
            seen.add(str(rid))
        rows.append(row)
        if len(problems) >= 20:
            break
    if problems:
        raise ManifestError(problems, hint="fix these rows and register a new dataset version")
    return manifest, rows


def load_outputs(path: Path, known: set[str], label: str) -> tuple[dict[str, Any], list[Problem]]:
    """id -> output; unknown and duplicate ids are problems, never silently dropped."""
    outputs: dict[str, Any] = {}
    problems: list[Problem] = []
    for number, item in read_jsonl(path, label):
        if "id" not in item or "output" not in item:
            problems.append(Problem(str(path), "", "each line needs id and output", number))
            continue
        rid = str(item["id"])
        if rid in outputs:
            problems.append(Problem(str(path), "id", f"duplicate id {rid!r}", number))
        elif rid not in known:
            problems.append(Problem(str(path), "id", f"id {rid!r} is not in the dataset", number))
        else:
            outputs[rid] = item["output"]
    return outputs, problems


# --- scoring ---------------------------------------------------------------------------------


def score(
    rows: list[dict[str, Any]],
    cohort_field: str | None,
    candidate: dict[str, Any],
    baseline: dict[str, Any],
    specs: list[EvaluatorSpec],
    output_schema: dict[str, Any] | None,
    allow_missing: str | None,
    on_rows: Progress | None = None,
) -> Outcomes:
    missing_c = [str(r["id"]) for r in rows if str(r["id"]) not in candidate]
    missing_b = [str(r["id"]) for r in rows if str(r["id"]) not in baseline]
    if (missing_c or missing_b) and allow_missing is None:
        parts = []
        for side, missing in (("candidate", missing_c), ("baseline", missing_b)):
            if missing:
                parts.append(
                    f"{len(missing)} dataset row(s) have no {side} output (e.g. {', '.join(missing[:3])})"
                )
        raise UsageError(
            "; ".join(parts),
            hint="produce every output, or say how to count the missing ones: "
            "--allow-missing fail (count as failed) or --allow-missing skip (drop those rows)",
        )
    skip = set(missing_c) | set(missing_b) if allow_missing == "skip" else set()
    kept = [r for r in rows if str(r["id"]) not in skip]
    ids = [str(r["id"]) for r in kept]
    cohorts = {str(r["id"]): str(r.get(cohort_field) or "") if cohort_field else "" for r in kept}
    passed: dict[str, dict[str, tuple[bool, bool]]] = {}
    for spec in specs:
        results: dict[str, tuple[bool, bool]] = {}
        if spec.command is not None:
            have_c = [r for r in kept if str(r["id"]) in candidate]
            have_b = [r for r in kept if str(r["id"]) in baseline]
            vc = run_external(spec, "candidate", have_c, candidate)
            vb = run_external(spec, "baseline", have_b, baseline)
            for rid in ids:
                results[rid] = (rid in vc and vc[rid][0], rid in vb and vb[rid][0])
        else:
            check = builtin_check(spec, output_schema)
            prepare, test = check.prepare, check.test
            rid = ""
            try:
                for i, row in enumerate(kept):
                    rid = ids[i]
                    want = prepare(row)
                    c = candidate.get(rid, _MISSING)
                    b = baseline.get(rid, _MISSING)
                    results[rid] = (
                        c is not _MISSING and bool(test(want, c)),  # missing: --allow-missing fail
                        b is not _MISSING and bool(test(want, b)),
                    )
                    if on_rows is not None and i % 1000 == 999:
                        on_rows(1000)
            except KeyError as exc:
                raise UsageError(
                    f"evaluator {spec.name} needs field {exc.args[0]!r}, which dataset row {rid!r} lacks",
                    hint="add the field to the dataset, or pick the field with field=NAME",
                ) from None
        passed[spec.name] = results
    passed[ALL] = combine([passed[s.name] for s in specs], ids)
    counts = {"candidate": len(missing_c), "baseline": len(missing_b), "skipped": len(skip)}
    return Outcomes(ids, cohorts, passed, {k: v for k, v in counts.items() if v})


_MISSING = object()


def combine(
    tables: list[dict[str, tuple[bool, bool]]], ids: list[str]
) -> dict[str, tuple[bool, bool]]:
    """Per example, whether every evaluator passed, on each side."""
    if len(tables) == 1:
        return tables[0]
    out: dict[str, tuple[bool, bool]] = {}
    for rid, pairs in zip(
        ids, zip(*(map(t.__getitem__, ids) for t in tables), strict=True), strict=True
    ):
        out[rid] = (all(p[0] for p in pairs), all(p[1] for p in pairs))
    return out


def _tally(per: dict[str, tuple[bool, bool]], ids: list[str], confidence: float) -> stats.Paired:
    # Counting the four (candidate, baseline) outcomes runs in C with Counter over map.
    counts = Counter(map(per.__getitem__, ids))
    both, only_c = counts[(True, True)], counts[(True, False)]
    only_b = counts[(False, True)]
    return stats.compare_counts(len(ids), both + only_c, both + only_b, only_c, only_b, confidence)


def compare(
    outcomes: Outcomes, gate: dict[str, Any], evaluators: list[str]
) -> list[dict[str, Any]]:
    """Every comparison: overall and per cohort, for all evaluators together and each alone."""
    confidence = float(gate.get("confidence", 0.95))
    tolerance = float(gate.get("max_regression", 0.02))
    min_samples = int(gate.get("min_samples", 30))
    groups: dict[str | None, list[str]] = {None: outcomes.ids}
    for rid in outcomes.ids:
        name = outcomes.cohorts[rid]
        if name:
            groups.setdefault(name, []).append(rid)
    order = [None, *sorted(c for c in groups if c is not None)]
    out = []
    for evaluator in [ALL, *evaluators] if len(evaluators) > 1 else [ALL]:
        per = outcomes.passed[evaluator]
        for group in order:
            result = _tally(per, groups[group], confidence)
            out.append(_comparison(result, group, evaluator, tolerance, min_samples, confidence))
    return out


def _comparison(
    p: stats.Paired,
    cohort: str | None,
    evaluator: str,
    tolerance: float,
    min_samples: int,
    confidence: float,
) -> dict[str, Any]:
    if p.n < min_samples:
        status, reason = (
            "underpowered",
            f"{p.n} paired examples; the gate needs at least {min_samples}",
        )
    elif p.ci_high < -tolerance:
        status = "fail"
        reason = (
            f"regresses by {-p.delta:.1%} (at least {-p.ci_high:.1%} with {confidence:.0%} "
            f"confidence), beyond the {tolerance:.1%} tolerated"
        )
    else:
        status, reason = (
            "pass",
            f"no regression beyond {tolerance:.1%} shown at {confidence:.0%} confidence",
        )

    def side(passed: int) -> dict[str, Any]:
        return {"passed": passed, "total": p.n, "rate": round(passed / p.n, 6) if p.n else 0.0}

    return {
        "cohort": cohort,
        "evaluator": None if evaluator == ALL else evaluator,
        "n": p.n,
        "candidate": side(p.candidate_passed),
        "baseline": side(p.baseline_passed),
        "delta": round(p.delta, 6),
        "ci_low": p.ci_low,
        "ci_high": p.ci_high,
        "status": status,
        "reason": reason,
    }


# --- the run ---------------------------------------------------------------------------------


@dataclass
class EvalRequest:
    route: str
    stage: str
    dataset: str
    candidate_outputs: Path
    baseline_outputs: Path
    evaluators: list[EvaluatorSpec]
    judges: list[str] = field(default_factory=list)
    allow_missing: str | None = None
    candidate_from: str | None = None
    baseline_from: str | None = None
    dataset_file: Path | None = None
    run_id: str | None = None
    commit: bool = True
    results_out: Path | None = None


def judge_specs(snapshot: Snapshot, judges: list[str]) -> list[EvaluatorSpec]:
    specs = []
    for text in judges:
        ref = refs.parse_ref(text, refs.Kind.JUDGE)
        judge = snapshot.require(text, refs.Kind.JUDGE)
        if not judge.get("command"):
            raise UsageError(
                f"judge {text} has no command to run",
                hint="add `command:` (argv) to a new judge version, or use --evaluator external:cmd=...",
            )
        pin = refs.format_ref(ref, with_kind=False)
        specs.append(
            EvaluatorSpec(
                judge["evaluator"],
                {},
                judge=pin,
                command=list(judge["command"]),
                threshold=float(judge["threshold"]),
            )
        )
    return specs


def run_eval(loc: Location, req: EvalRequest, progress: Progress | None = None) -> EvalResult:
    refs.check_name(req.route, "route name")
    snapshot = snapshot_at(loc)
    bindings = stage_bindings(
        snapshot, req.route, req.stage, req.candidate_from, req.baseline_from, loc
    )
    gate = gate_settings(snapshot, req.stage)
    manifest, rows = load_dataset(loc, snapshot, req.dataset, req.dataset_file)
    known = {str(r.get("id")) for r in rows}
    candidate, problems = load_outputs(req.candidate_outputs, known, "candidate outputs")
    baseline, more = load_outputs(req.baseline_outputs, known, "baseline outputs")
    if problems or more:
        raise ManifestError(
            (problems + more)[:50], hint="every output id must be a dataset row id, once"
        )
    specs = [*req.evaluators, *judge_specs(snapshot, req.judges)]
    if not specs:
        raise UsageError(
            "name at least one evaluator: --evaluator exact_match (or --judge NAME@VER)"
        )
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"evaluators must have distinct names: {', '.join(names)}")
    outcomes = score(
        rows, manifest.get("cohort_field"), candidate, baseline, specs,
        manifest.get("output_schema"), req.allow_missing, progress,
    )  # fmt: skip
    if req.results_out is not None:
        _write_results(req.results_out, outcomes)
    evaluators = [
        {"name": s.name, "args": dict(s.args), **({"judge": s.judge} if s.judge else {})}
        for s in specs
    ]
    salt = req.candidate_outputs.read_bytes() + req.baseline_outputs.read_bytes()
    return finish_run(
        loc, req.route, req.stage, req.dataset, manifest, bindings, gate, evaluators,
        outcomes, "modelctl", req.run_id, req.commit, salt,
    )  # fmt: skip


def finish_run(
    loc: Location,
    route: str,
    stage: str,
    dataset: str,
    manifest: dict[str, Any],
    bindings: Bindings,
    gate: dict[str, Any],
    evaluators: list[dict[str, Any]],
    outcomes: Outcomes,
    source: str,
    run_id: str | None,
    commit: bool,
    salt: bytes,
) -> EvalResult:
    """Compare, decide the verdict, and record the EvalRun."""
    names = [e["name"] for e in evaluators]
    comparisons = compare(outcomes, gate, names)
    overall = comparisons[0]
    verdict = "fail" if any(c["status"] != "pass" for c in comparisons) else "pass"
    created = datetime.now(UTC).replace(microsecond=0)
    identity = [manifest["sha256"], evaluators, bindings.candidate, bindings.baseline, overall]
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode() + salt).hexdigest()
    run_id = run_id or f"{created:%Y%m%d-%H%M%S}-{fingerprint[:6]}"
    refs.check_name(run_id, "eval run id")
    pinned = refs.format_ref(refs.parse_ref(dataset, refs.Kind.DATASET), with_kind=False)
    data: dict[str, Any] = {
        "apiVersion": manifests.API_VERSION,
        "kind": "EvalRun",
        "id": run_id,
        "route": route,
        "stage": stage,
        "created": created.isoformat().replace("+00:00", "Z"),
        "dataset": {"ref": pinned, "sha256": manifest["sha256"]},
        "candidate": bindings.candidate,
        "baseline": bindings.baseline,
        "evaluators": evaluators,
        "judges": sorted({e["judge"] for e in evaluators if e.get("judge")}),
        "gate": {k: v for k, v in gate.items() if v is not None},
        "method": stats.METHOD,
        "source": source,
        "missing": outcomes.missing,
        "overall": overall,
        "comparisons": comparisons[1:],
        "verdict": verdict,
    }
    result = record(loc, data, commit=commit)
    if bindings.candidate == bindings.baseline:
        from modelctl.lifecycle.gates import summary

        result.warnings.insert(
            0,
            f"the candidate and the baseline are the same binding ({summary(bindings.candidate)},"
            f" from {bindings.candidate_from} and {bindings.baseline_from}): this run compares it"
            " with itself, shows nothing, and the eval gate will not count it; name what it"
            " replaces with --baseline-from (a stage, an event sequence, a lifecycle tag or a"
            " commit)",
        )
    return result


def _write_results(path: Path, outcomes: Outcomes) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for rid in outcomes.ids:
            line: dict[str, Any] = {"id": rid, "cohort": outcomes.cohorts[rid]}
            for name, per in outcomes.passed.items():
                line[name] = {"candidate": per[rid][0], "baseline": per[rid][1]}
            fh.write(json.dumps(line) + "\n")


def record(loc: Location, data: dict[str, Any], *, commit: bool = True) -> EvalResult:
    """Validate an EvalRun and write it as its own commit (or only to the work tree)."""
    from modelctl.registry.authoring import render_manifest
    from modelctl.registry.validation import pydantic_problems

    try:
        model = manifests.EvalRun.model_validate(data)
    except Exception as exc:  # a bug in how the run was assembled, or a bad recorded file
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            raise ManifestError(pydantic_problems("eval run", exc, None)) from None
        raise
    path = str(refs.eval_path(model.route, model.id))
    content = render_manifest(model, path)
    canonical = manifests.to_data(model)

    def refuse_existing(snapshot: Snapshot) -> None:
        if path in snapshot.entries or (not commit and (loc.root / path).exists()):
            from modelctl.errors import ConflictError

            raise ConflictError(
                f"{path} already exists; eval runs are immutable", hint="pass another --run-id"
            )

    if not commit:
        refuse_existing(snapshot_at(loc))
        target = loc.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return EvalResult(canonical, path, committed=False)

    def plan(snapshot: Snapshot, tip: str | None) -> commits.Change:
        refuse_existing(snapshot)
        message = (
            f"modelctl: eval {model.route} {model.stage or ''} {model.id}: {model.verdict}\n\n"
            + commits.trailers(
                action="eval",
                route=model.route,
                stage=model.stage,
                eval=model.id,
                verdict=model.verdict,
            )
            + "\n"
        )
        return commits.Change({path: content}, message)

    outcome = commits.write(loc, plan)
    assert outcome.result is not None
    return EvalResult(
        canonical, path, committed=True, commit=outcome.result.commit, warnings=outcome.warnings
    )
