"""Eval and dataset commands: eval run, eval record, eval gate, dataset verify."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelctl.cli.app import JsonOption, app, fail_if, location

eval_app = typer.Typer(help="Regression evals that gate promotions.", no_args_is_help=True)
dataset_app = typer.Typer(help="Pinned datasets.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
app.add_typer(dataset_app, name="dataset")

To = Annotated[str, typer.Option("--to", help="The stage whose promotion this run gates.")]
Dataset = Annotated[str, typer.Option("--dataset", help="Dataset NAME@VERSION (pinned by digest).")]
AllowMissing = Annotated[
    str | None,
    typer.Option(
        "--allow-missing",
        help="How to count dataset rows without an output: fail (as failed) or skip (drop them).",
    ),
]
CandidateFrom = Annotated[
    str | None,
    typer.Option(help="Stage whose binding is the candidate (default: the stage before --to)."),
]
BaselineFrom = Annotated[
    str | None,
    typer.Option(
        help="The baseline: a stage (default: --to, what it serves now), an event sequence of "
        "--to, a lifecycle tag (modelctl/ROUTE/STAGE/SEQ), a commit or an ISO 8601 time."
    ),
]
DatasetFile = Annotated[
    Path | None, typer.Option(help="Local copy of a remote dataset (its digest is checked).")
]
RunId = Annotated[str | None, typer.Option(help="Id of the run (default: time and digest).")]
NoCommit = Annotated[bool, typer.Option("--no-commit", help="Write the EvalRun; do not commit it.")]


def _check_missing(value: str | None) -> None:
    if value not in (None, "fail", "skip"):
        from modelctl.errors import UsageError

        raise UsageError(f"--allow-missing {value!r}: use fail or skip")


def _emit(result: object, json_output: bool) -> None:
    from modelctl import render

    if json_output:
        render.emit_json(result)
    else:
        render.eval_result(result)


@eval_app.command("run")
def run(
    route: Annotated[str, typer.Argument(help="Route name.")],
    to: To,
    dataset: Dataset,
    candidate_outputs: Annotated[
        Path, typer.Option(help="JSONL of {id, output} from the candidate binding.")
    ],
    baseline_outputs: Annotated[
        Path, typer.Option(help="JSONL of {id, output} from the baseline binding.")
    ],
    evaluator: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME[:key=value,...]: exact_match, contains, regex, json_valid, json_schema, "
            "numeric_close, or external:cmd=COMMAND; repeatable."
        ),
    ] = None,
    judge: Annotated[
        list[str] | None, typer.Option(help="Judge NAME@VERSION to run (its command); repeatable.")
    ] = None,
    allow_missing: AllowMissing = None,
    candidate_from: CandidateFrom = None,
    baseline_from: BaselineFrom = None,
    dataset_file: DatasetFile = None,
    results_out: Annotated[
        Path | None, typer.Option(help="Also write per-example results here (JSONL).")
    ] = None,
    run_id: RunId = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Score both sides, compare them per cohort, record the EvalRun; exit 1 on a failing verdict."""
    from modelctl.evals import evaluators, runner
    from modelctl.render import progress

    _check_missing(allow_missing)
    request = runner.EvalRequest(
        route=route,
        stage=to,
        dataset=dataset,
        candidate_outputs=candidate_outputs,
        baseline_outputs=baseline_outputs,
        evaluators=[evaluators.parse_spec(e) for e in evaluator or []],
        judges=list(judge or []),
        allow_missing=allow_missing,
        candidate_from=candidate_from,
        baseline_from=baseline_from,
        dataset_file=dataset_file,
        run_id=run_id,
        commit=not no_commit,
        results_out=results_out,
    )
    with progress.bar("scoring examples") as advance:
        result = runner.run_eval(location(), request, advance)
    _emit(result, json_output)
    fail_if(result.verdict != "pass")


@eval_app.command("record")
def record(
    file: Annotated[Path, typer.Argument(help="Results file: modelctl JSONL or promptfoo JSON.")],
    route: Annotated[str, typer.Option("--route", help="Route name.")],
    to: To,
    dataset: Dataset,
    format: Annotated[str, typer.Option("--format", help="auto, modelctl or promptfoo.")] = "auto",
    candidate_label: Annotated[
        str | None, typer.Option(help="promptfoo provider id or label of the candidate.")
    ] = None,
    baseline_label: Annotated[
        str | None, typer.Option(help="promptfoo provider id or label of the baseline.")
    ] = None,
    allow_missing: AllowMissing = None,
    candidate_from: CandidateFrom = None,
    baseline_from: BaselineFrom = None,
    dataset_file: DatasetFile = None,
    run_id: RunId = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Judge per-example results produced elsewhere with the same gate, and record the run."""
    from modelctl.evals import ingest

    _check_missing(allow_missing)
    result = ingest.record_results(
        location(), file, route, to, dataset, fmt=format, candidate_label=candidate_label,
        baseline_label=baseline_label, allow_missing=allow_missing, candidate_from=candidate_from,
        baseline_from=baseline_from, dataset_file=dataset_file, run_id=run_id, commit=not no_commit,
    )  # fmt: skip
    _emit(result, json_output)
    fail_if(result.verdict != "pass")


@eval_app.command("gate")
def gate(
    route: Annotated[str, typer.Argument(help="Route name.")],
    to: Annotated[str, typer.Option("--to", help="The stage to promote into.")],
    canary: Annotated[int | None, typer.Option(help="As promote --canary.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Would `promote ROUTE --to STAGE` pass its gates? Writes nothing; exit 1 when not."""
    from modelctl import render
    from modelctl.lifecycle import actions as lifecycle
    from modelctl.lifecycle.gates import GateFailed

    try:
        result = lifecycle.promote(location(), route, to, canary=canary, dry_run=True)
    except GateFailed as exc:
        if json_output:
            render.emit_json(
                {"passed": False, "route": route, "stage": to, "gates": exc.report.results}
            )
        else:
            render.gate_report(exc.report.results, passed=False)
        fail_if(True)
        return
    if json_output:
        render.emit_json(
            {
                "passed": True,
                "route": route,
                "stage": to,
                "noop": result.noop,
                "gates": result.gates,
            }
        )
    else:
        render.gate_report(result.gates, passed=True, noop=result.noop)


@dataset_app.command("verify")
def dataset_verify(
    refs: Annotated[
        list[str] | None, typer.Argument(help="Datasets NAME@VERSION (default: all).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Recompute the digests of local dataset files; exit 1 on any mismatch."""
    from modelctl import render
    from modelctl.registry import datasets
    from modelctl.registry.snapshot import snapshot_at

    loc = location()
    checks = datasets.verify_datasets(snapshot_at(loc), loc.root, list(refs or []))
    bad = [c for c in checks if c.status in ("mismatch", "missing")]
    if json_output:
        render.emit_json({"ok": not bad, "datasets": checks})
    else:
        render.dataset_checks(checks)
    fail_if(bool(bad))
