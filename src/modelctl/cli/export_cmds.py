"""Export commands: a LiteLLM proxy config, and the resolved bindings as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelctl.cli.app import JsonOption, app, location

export_app = typer.Typer(
    help="Export what a stage serves for gateways and services that do not read git.",
    no_args_is_help=True,
)
app.add_typer(export_app, name="export")

Routes = Annotated[
    list[str] | None,
    typer.Argument(help="Routes to export (default: every route that serves --stage)."),
]
Stage = Annotated[str, typer.Option("--stage", "-s", help="The stage whose bindings to export.")]
Rev = Annotated[str, typer.Option(help="Export the registry as committed at this revision.")]
Output = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
]


def _resolve(stage: str, routes: list[str] | None, rev: str) -> Any:
    from modelctl.integrations.export import bindings

    return bindings.resolve(location(), list(routes or []), stage, rev)


@export_app.command("litellm")
def litellm(
    stage: Stage,
    routes: Routes = None,
    rev: Rev = "HEAD",
    output: Output = None,
    json_output: JsonOption = False,
) -> None:
    """A LiteLLM proxy config: a model group per route, weighted deployments, fallbacks."""
    from modelctl import render
    from modelctl.integrations import export
    from modelctl.integrations.export import litellm as core

    result = core.build(_resolve(stage, routes, rev))
    if output is not None:
        result.written = str(export.write_text(output, result.text))
    if json_output:
        render.emit_json({k: v for k, v in render.jsonable(result).items() if k != "text"})
    else:
        render.litellm_export(result)


@export_app.command("json")
def json_(
    stage: Stage,
    routes: Routes = None,
    rev: Rev = "HEAD",
    output: Output = None,
    json_output: JsonOption = False,
) -> None:
    """The resolved bindings (models, prompts, weights, release) as one JSON document."""
    from modelctl import render
    from modelctl.integrations import export
    from modelctl.integrations.export import bindings

    document = bindings.document(_resolve(stage, routes, rev))
    if output is None:
        render.emit_json(document)  # --json changes nothing: the document is JSON already
    else:
        export.write_text(output, render.json_text(document))
        if json_output:
            render.emit_json({"written": str(output), "routes": list(document["routes"])})
        else:
            render.success(f"wrote {output}: {len(document['routes'])} route(s), stage {stage}")
