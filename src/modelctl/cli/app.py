"""The typer application, its global options and the helpers every command shares.

Command modules import only this module and typer at start-up; core modules are imported
inside command functions, so `modelctl --help` costs little more than typer itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelctl import __version__

if TYPE_CHECKING:
    from modelctl.registry.snapshot import Location

app = typer.Typer(
    name="modelctl",
    help="A git-native registry for models, prompts, judges and datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


@dataclass
class Globals:
    debug: bool = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"modelctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option(
            "-C",
            help="Run as if modelctl was started in this folder (like git -C).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of unexpected errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """A git-native registry for models, prompts, judges and datasets.

    Exit codes: 0 ok; 1 a check said no; 2 usage error; 3 conflict; 4 git or environment
    problem; 5 internal error; 130 interrupted.
    """
    if directory is not None:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise typer.BadParameter(f"cannot enter {directory}: {exc.strerror}") from None
    ctx.obj = Globals(debug=debug)
    # Core code reports the progress of long work; the terminal draws it (stderr, a tty only).
    from modelctl import progress
    from modelctl.render.progress import bar

    progress.install(bar)


def location() -> Location:
    """The registry holding the current folder."""
    from modelctl.registry.snapshot import locate

    return locate(Path.cwd())


def fail_if(condition: bool) -> None:
    """Exit 1 (a check said no) after the result has been rendered."""
    if condition:
        from modelctl.errors import CheckFailed

        raise CheckFailed("", hint=None)
