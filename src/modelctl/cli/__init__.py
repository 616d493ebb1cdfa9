"""Command-line entry point: one error handler maps every failure to a documented exit code."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import typer

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
from modelctl.errors import ExitCode, Interrupted, ModelctlError, file_system_error


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted("terminated", exit_code=128 + signum)


def _report(exc: ModelctlError, json_mode: bool) -> None:
    from modelctl import render

    if json_mode and exc.message:
        render.emit_json({"error": exc.to_json()})
    if exc.message:
        render.error(exc.message, exc.hint)


def _command(argv: list[str]) -> str | None:
    """The command named on the command line, after the global options; None for --help."""
    values = {"-C"}
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in values:
            skip = True
        elif token.startswith("-"):
            if token in ("-h", "--help", "--install-completion", "--show-completion"):
                return None
        else:
            return token
    return None


def _app_for(argv: list[str]) -> typer.Typer:
    """An app holding only the command being run.

    typer builds every command's parameters before it runs one; with 29 commands that is
    about 50 ms of each invocation. Help, completion and unknown names get the full app.
    """
    name = _command(argv)
    if name is None or os.environ.get("_MODELCTL_COMPLETE"):
        return app
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    single = typer.Typer(
        name=app.info.name,
        help=app.info.help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        pretty_exceptions_show_locals=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    single.registered_callback = app.registered_callback
    single.registered_commands = commands
    single.registered_groups = groups
    return single


def main() -> None:
    """Run the CLI; exit with the code the documented table gives for what happened."""
    argv = sys.argv[1:]
    # pydantic looks for plugins by scanning every installed distribution's entry points the
    # first time it builds a validator (~10 ms of each run); a CLI process wants none. An
    # explicit PYDANTIC_DISABLE_PLUGINS in the environment still wins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    debug = "--debug" in argv or bool(os.environ.get("MODELCTL_DEBUG"))
    json_mode = "--json" in argv
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _app_for(argv)(prog_name="modelctl")
    except ModelctlError as exc:
        _report(exc, json_mode)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # a bug: one line, the traceback only on request
        # ...unless the file system said no (read-only, no permission, full): exit 4.
        refused = file_system_error(exc) if isinstance(exc, OSError) else None
        if refused is not None:
            _report(refused, json_mode)
            sys.exit(int(refused.exit_code))
        if debug:
            raise
        from modelctl import render

        render.error(
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in modelctl; run again with --debug for the traceback and report it",
        )
        sys.exit(int(ExitCode.INTERNAL))
