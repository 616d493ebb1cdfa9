"""`modelctl demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelctl.cli.app import JsonOption, app


@app.command("demo")
def demo(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Where to build the demo registry (default: a new temp folder)."),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Build the bundled example as a fresh git registry and walk through modelctl."""
    from modelctl import render
    from modelctl.integrations import demo as demo_core

    repo = demo_core.prepare(directory)
    if json_output:
        result = demo_core.run(repo, lambda step: None)
        steps = [
            {k: getattr(s, k) for k in ("title", "argv", "expect", "exit_code", "note", "output")}
            for s in result.steps
        ]
        render.emit_json(
            {
                "directory": result.directory,
                "ok": result.ok,
                "signed": result.signed,
                "steps": steps,
            }
        )
        return
    render.demo_intro(str(repo))
    counter = iter(range(1, 1000))
    result = demo_core.run(repo, lambda step: render.demo_step(next(counter), step))
    render.demo_done(result)
