"""`modelctl eval record`: per-example results produced elsewhere, judged by the same gate.

Two shapes are read:
- modelctl JSONL: one `{"id", "side": "candidate"|"baseline", "evaluator", "passed",
  "score"?, "reason"?}` object per line;
- promptfoo's JSON output (`promptfoo eval --output results.json`): each result's provider (or
  prompt label) says the side, `vars.id` (or the test index) the example, `success` the verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelctl.errors import ManifestError, Problem, UsageError
from modelctl.evals.runner import ALL, Outcomes, combine, read_jsonl

Verdicts = dict[str, dict[str, dict[str, bool]]]  # evaluator -> side -> id -> passed


def read_modelctl(path: Path) -> Verdicts:
    verdicts: Verdicts = {}
    problems: list[Problem] = []
    for number, item in read_jsonl(path, "results"):
        side = item.get("side")
        if side not in ("candidate", "baseline") or "id" not in item or "passed" not in item:
            problems.append(
                Problem(
                    str(path),
                    "",
                    'each line needs id, side ("candidate" or "baseline") and passed',
                    number,
                )
            )
            continue
        evaluator = str(item.get("evaluator") or "recorded")
        per = verdicts.setdefault(evaluator, {}).setdefault(side, {})
        rid = str(item["id"])
        if rid in per:
            problems.append(
                Problem(
                    str(path), "id", f"duplicate result for {rid!r} ({side}, {evaluator})", number
                )
            )
        per[rid] = bool(item["passed"])
    if problems:
        raise ManifestError(problems[:50])
    return verdicts


def _results_list(data: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("results"), dict):
        inner = data["results"].get("results")
        if isinstance(inner, list):
            return inner
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return list(data["results"])
    raise ManifestError(
        [Problem(str(path), "results", "not promptfoo output: no results list found")]
    )


def _labels(result: dict[str, Any]) -> set[str]:
    out = set()
    provider = result.get("provider")
    if isinstance(provider, dict):
        out |= {str(provider[k]) for k in ("id", "label") if provider.get(k)}
    elif isinstance(provider, str):
        out.add(provider)
    prompt = result.get("prompt")
    if isinstance(prompt, dict) and prompt.get("label"):
        out.add(str(prompt["label"]))
    return out


def read_promptfoo(path: Path, candidate: str, baseline: str, id_var: str = "id") -> Verdicts:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read promptfoo output {path}: {exc}") from None
    per: dict[str, dict[str, bool]] = {"candidate": {}, "baseline": {}}
    unmatched: set[str] = set()
    for result in _results_list(data, path):
        labels = _labels(result)
        side = "candidate" if candidate in labels else "baseline" if baseline in labels else None
        if side is None:
            unmatched |= labels
            continue
        variables = result.get("vars") or (result.get("testCase") or {}).get("vars") or {}
        rid = str(variables.get(id_var, result.get("testIdx")))
        per[side][rid] = bool(result.get("success"))
    if not per["candidate"] or not per["baseline"]:
        raise UsageError(
            f"no promptfoo results matched candidate {candidate!r} and baseline {baseline!r}",
            hint=f"providers or prompt labels in the file: {', '.join(sorted(unmatched)) or 'none'}",
        )
    return {"promptfoo": per}


def outcomes(
    verdicts: Verdicts,
    rows: list[dict[str, Any]],
    cohort_field: str | None,
    allow_missing: str | None,
) -> Outcomes:
    """Pair the recorded verdicts over the dataset rows; missing ones handled as in `eval run`."""
    ids = [str(r["id"]) for r in rows]
    known = set(ids)
    unknown = sorted(
        {rid for per in verdicts.values() for side in per.values() for rid in side} - known
    )
    if unknown:
        raise UsageError(
            f"{len(unknown)} recorded id(s) are not in the dataset, e.g. {unknown[:3]}"
        )
    missing = {
        (name, side): [rid for rid in ids if rid not in verdicts[name].get(side, {})]
        for name in verdicts
        for side in ("candidate", "baseline")
    }
    gaps = {key: value for key, value in missing.items() if value}
    if gaps and allow_missing is None:
        (name, side), example = next(iter(gaps.items()))
        raise UsageError(
            f"{sum(len(v) for v in gaps.values())} result(s) are missing, e.g. {side} {name} for {example[:3]}",
            hint="--allow-missing fail counts them as failed; --allow-missing skip drops those rows",
        )
    skip = {rid for value in gaps.values() for rid in value} if allow_missing == "skip" else set()
    kept = [rid for rid in ids if rid not in skip]
    cohort_of = {str(r["id"]): str(r.get(cohort_field) or "") if cohort_field else "" for r in rows}
    passed: dict[str, dict[str, tuple[bool, bool]]] = {}
    for name, per in verdicts.items():
        cand, base = per.get("candidate", {}), per.get("baseline", {})
        passed[name] = {rid: (cand.get(rid, False), base.get(rid, False)) for rid in kept}
    names = list(verdicts)
    passed[ALL] = combine([passed[n] for n in names], kept)
    counts = {
        "candidate": sum(len(v) for (_, s), v in gaps.items() if s == "candidate"),
        "baseline": sum(len(v) for (_, s), v in gaps.items() if s == "baseline"),
        "skipped": len(skip),
    }
    return Outcomes(
        kept, {rid: cohort_of[rid] for rid in kept}, passed, {k: v for k, v in counts.items() if v}
    )


def record_results(
    loc: Any,
    file: Path,
    route: str,
    stage: str,
    dataset: str,
    *,
    fmt: str = "auto",
    candidate_label: str | None = None,
    baseline_label: str | None = None,
    allow_missing: str | None = None,
    candidate_from: str | None = None,
    baseline_from: str | None = None,
    dataset_file: Path | None = None,
    run_id: str | None = None,
    commit: bool = True,
) -> Any:
    """Judge recorded results with the registry's gate and record the EvalRun."""
    from modelctl.evals import runner
    from modelctl.registry.snapshot import snapshot_at

    snapshot = snapshot_at(loc)
    bindings = runner.stage_bindings(snapshot, route, stage, candidate_from, baseline_from, loc)
    gate = runner.gate_settings(snapshot, stage)
    manifest, rows = runner.load_dataset(loc, snapshot, dataset, dataset_file)
    if fmt == "auto":
        fmt = "promptfoo" if file.suffix == ".json" else "modelctl"
    if fmt == "promptfoo":
        if not candidate_label or not baseline_label:
            raise UsageError(
                "promptfoo output holds several providers: say which is which",
                hint="--candidate-label PROVIDER_ID --baseline-label PROVIDER_ID",
            )
        verdicts = read_promptfoo(file, candidate_label, baseline_label)
        source = "promptfoo"
    elif fmt == "modelctl":
        verdicts = read_modelctl(file)
        source = "modelctl-record"
    else:
        raise UsageError(f"unknown --format {fmt!r}", hint="modelctl or promptfoo")
    paired = outcomes(verdicts, rows, manifest.get("cohort_field"), allow_missing)
    evaluators = [{"name": name, "args": {}} for name in verdicts]
    return runner.finish_run(
        loc, route, stage, dataset, manifest, bindings, gate, evaluators, paired, source,
        run_id, commit, file.read_bytes(),
    )  # fmt: skip
