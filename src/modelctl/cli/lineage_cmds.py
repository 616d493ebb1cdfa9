"""Lineage command: upstream (data, base models, code, pins) and downstream (evals, stages)."""

from __future__ import annotations

from typing import Annotated

import typer

from modelctl.cli.app import JsonOption, app, location


@app.command("lineage")
def lineage(
    ref: Annotated[
        str,
        typer.Argument(
            help="NAME@VERSION, KIND/NAME@VERSION, eval/ROUTE/RUN, or a route name.",
            show_default=False,
        ),
    ],
    up: Annotated[bool, typer.Option("--up", help="Only upstream: what it is made of.")] = False,
    down: Annotated[bool, typer.Option("--down", help="Only downstream: where it went.")] = False,
    depth: Annotated[
        int | None, typer.Option(min=0, help="Follow at most this many hops (default: all).")
    ] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", "-s", help="With a route: start from this stage.")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="tree, json, mermaid or dot.")
    ] = "tree",
    json_output: JsonOption = False,
) -> None:
    """Upstream (data, base models, code, pins) and downstream (evals, stages) of a version.

    REF is a version, an eval run or a route (all its stages, or one with --stage). Upstream is
    what holds now; downstream is every eval and stage that ever used it, with the lifecycle
    events. Mermaid output renders on GitHub inside a ```mermaid block.
    """
    from modelctl import render
    from modelctl.audit import lineage as core
    from modelctl.errors import UsageError

    if output_format not in core.FORMATS:
        raise UsageError(
            f"unknown format {output_format!r}", hint=f"use one of: {', '.join(core.FORMATS)}"
        )
    direction = "both" if up == down else "up" if up else "down"
    result = core.lineage(location(), ref, direction=direction, depth=depth, stage=stage)
    if json_output or output_format == "json":
        render.emit_json(result)
    else:
        render.lineage_result(result, output_format)
