"""`modelctl import`: take over a registry kept by another tool (GTO, Git Tag Ops)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelctl.cli.app import JsonOption, app

import_app = typer.Typer(
    help="Import a registry kept by another tool, history included.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


@import_app.command("gto")
def import_gto(
    repo: Annotated[
        Path, typer.Option("--repo", help="The GTO repository (default: the current folder).")
    ] = Path(),
    into: Annotated[
        str | None,
        typer.Option(
            "--into", help="Registry folder inside the repository (default: its top folder)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and plan everything; write nothing.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Import a GTO registry: versions as manifests, artifacts as routes, stage history as events.

    All or nothing: the branch moves and every lifecycle tag is created in one ref transaction.
    Tags GTO would not read (lightweight, malformed) are listed, not imported.
    """
    from modelctl import render
    from modelctl.integrations.importers import gto

    result = gto.import_gto(repo, into=into, dry_run=dry_run)
    if json_output:
        render.emit_json(result)
    else:
        render.import_result(result)
