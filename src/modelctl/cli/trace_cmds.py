"""Trace commands: coverage, explain, report, timeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelctl.cli.app import JsonOption, app, fail_if, location

Format = Annotated[
    str,
    typer.Option("--format", help="auto, otlp-jsonl, otlp-json, flat-jsonl or counts-csv."),
]
DefaultStage = Annotated[
    str, typer.Option(help="Stage of spans that name none (deployment.environment.name etc.).")
]
EpochUnit = Annotated[
    str | None,
    typer.Option(
        help="Unit of numeric times in flat rows whose field does not say (s, ms, us or ns); "
        "without it such times are unknown, never guessed."
    ),
]


def _unit(text: str | None) -> float | None:
    from modelctl.errors import UsageError
    from modelctl.traces.spans import EPOCH_UNITS

    if text is None:
        return None
    if text not in EPOCH_UNITS:
        raise UsageError(f"--epoch-unit {text!r}: use one of {', '.join(EPOCH_UNITS)}")
    return EPOCH_UNITS[text]


def _duration(text: str, flag: str = "--grace") -> float:
    from modelctl.errors import UsageError
    from modelctl.lifecycle.history import parse_duration

    value = parse_duration(text)
    if value is None:
        raise UsageError(f"{flag} {text!r}: use seconds or a duration like 30s, 5m, 1h")
    return value


def _time(text: str, flag: str) -> float:
    from modelctl.lifecycle.history import user_time

    return user_time(text, flag)[0].timestamp()


@app.command("coverage")
def coverage(
    traces: Annotated[
        list[str],
        typer.Argument(
            help="Trace files (OTLP JSON lines, OTLP JSON, flat JSONL, counts CSV, .gz), or - for stdin."
        ),
    ],
    stage: Annotated[
        str | None, typer.Option("--stage", "-s", help="Only spans of this stage.")
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Require the version live on the route and stage at the span's time."
        ),
    ] = False,
    min_coverage: Annotated[
        float | None,
        typer.Option(
            min=0, max=100, help="Exit 1 when coverage is below this percentage (0 to 100)."
        ),
    ] = None,
    format: Format = "auto",
    default_stage: DefaultStage = "production",
    grace: Annotated[
        str, typer.Option(help="After a binding change, the old binding also counts for this long.")
    ] = "0s",
    skew: Annotated[
        str,
        typer.Option(
            help="Producers' clocks may be off by this much either way: a binding live that "
            "close to a call's time counts too."
        ),
    ] = "0s",
    skip_bad_lines: Annotated[
        bool, typer.Option(help="Count malformed lines instead of stopping.")
    ] = False,
    assume_time: Annotated[
        str | None,
        typer.Option(
            help="Time (ISO 8601, UTC if no offset, or 'now', '2h ago') for calls whose "
            "spans carry none."
        ),
    ] = None,
    epoch_unit: EpochUnit = None,
    json_output: JsonOption = False,
) -> None:
    """Trace-to-version coverage, with the blind spots grouped by reason."""
    from modelctl import render
    from modelctl.render import progress
    from modelctl.traces.coverage import coverage as core

    assumed = _time(assume_time, "--assume-time") if assume_time else None
    unit = _unit(epoch_unit)
    with progress.bar("reading spans") as advance:
        result = core(
            location(), traces, fmt=format, stage=stage, strict=strict, default_stage=default_stage,
            grace=_duration(grace), skew=_duration(skew, "--skew"),
            skip_bad_lines=skip_bad_lines, assume_time=assumed,
            on_bytes=advance, epoch_unit=unit,
        )  # fmt: skip
    below = min_coverage is not None and not result.meets(min_coverage)
    if json_output:
        render.emit_json(
            {**render.coverage_payload(result), "min_coverage": min_coverage, "ok": not below}
        )
    else:
        render.coverage_result(result, min_coverage)
    fail_if(below)


@app.command("explain")
def explain(
    trace_id: Annotated[str, typer.Argument(help="The trace id (32 hex digits).")],
    traces: Annotated[
        list[str], typer.Option("--traces", help="Trace file(s) holding it; repeatable.")
    ],
    format: Format = "auto",
    default_stage: DefaultStage = "production",
    epoch_unit: EpochUnit = None,
    json_output: JsonOption = False,
) -> None:
    """Which model and prompt versions answered a trace, and the signed history behind them."""
    from modelctl import render
    from modelctl.traces.explain import explain as core

    result = core(location(), trace_id, traces, format, default_stage, _unit(epoch_unit))
    if json_output:
        render.emit_json(result)
    else:
        render.explanation(result)


@app.command("report")
def report(
    traces: Annotated[
        list[str] | None,
        typer.Option("--traces", help="Trace files for coverage and fallbacks; repeatable."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only events since this time (ISO 8601, '1d ago') or revision."),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table, json or markdown.")] = "table",
    trace_format: Annotated[
        str, typer.Option(help="Format of the trace files (as coverage --format).")
    ] = "auto",
    epoch_unit: EpochUnit = None,
    json_output: JsonOption = False,
) -> None:
    """The five maturity signals; Markdown goes to $GITHUB_STEP_SUMMARY too when it is set."""
    from modelctl import render
    from modelctl.audit import report as core
    from modelctl.errors import UsageError

    if format not in ("table", "json", "markdown"):
        raise UsageError(f"--format {format!r}: use table, json or markdown")
    result = core.report(
        location(), list(traces or []), since, trace_format, epoch_unit=_unit(epoch_unit)
    )
    if json_output or format == "json":
        render.emit_json(result)
    elif format == "markdown":
        render.report_markdown(result)
    else:
        render.report_table(result)


@app.command("timeline")
def timeline(
    route: Annotated[str | None, typer.Argument(help="One route (default: all).")] = None,
    format: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Every binding interval (route, stage, target, weight, fallback position, validity)."""
    from modelctl import render
    from modelctl.audit import timeline as core
    from modelctl.errors import UsageError

    if json_output:
        format = "jsonl"
    if format not in ("csv", "jsonl"):
        raise UsageError(f"--format {format!r}: use csv or jsonl")
    render.write_chunks(core.write(core.rows(location(), route), format), output)
