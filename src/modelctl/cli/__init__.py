"""Command-line entry point: one error handler maps every failure to a documented exit code."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from modelctl.cli import (  # noqa: F401  (importing them registers their commands)
    demo_cmd,
    eval_cmds,
    export_cmds,
    import_cmds,
    lifecycle_cmds,
    lineage_cmds,
    registry_cmds,
    trace_cmds,
)
from modelctl.cli.app import app
from modelctl.errors import ExitCode, Interrupted, ModelctlError


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted("terminated", exit_code=128 + signum)


def _report(exc: ModelctlError, json_mode: bool) -> None:
    from modelctl import render

    if json_mode and exc.message:
        render.emit_json({"error": exc.to_json()})
    if exc.message:
        render.error(exc.message, exc.hint)


def main() -> None:
    """Run the CLI; exit with the code the documented table gives for what happened."""
    argv = sys.argv[1:]
    debug = "--debug" in argv or bool(os.environ.get("MODELCTL_DEBUG"))
    json_mode = "--json" in argv
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        app(prog_name="modelctl")
    except ModelctlError as exc:
        _report(exc, json_mode)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # a bug: one line, the traceback only on request
        if debug:
            raise
        from modelctl import render

        render.error(
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in modelctl; run again with --debug for the traceback and report it",
        )
        sys.exit(int(ExitCode.INTERNAL))
