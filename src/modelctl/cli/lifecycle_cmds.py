"""Lifecycle commands: deploy, promote, rollback, status, history, resolve, verify."""

from __future__ import annotations

from typing import Annotated

import typer

from modelctl.cli.app import JsonOption, app, fail_if, location

DryRun = Annotated[bool, typer.Option("--dry-run", help="Plan and run the gates; write nothing.")]
Push = Annotated[
    str | None,
    typer.Option(
        "--push",
        help="Push branch and tag atomically to this remote (e.g. origin); never forced.",
        show_default=False,
    ),
]
Stage = Annotated[str, typer.Option("--stage", "-s", help="The stage.")]
Reason = Annotated[
    str | None,
    typer.Option(
        "--reason", "-m", help="Why; recorded in the commit, shown by history and status."
    ),
]


def _emit_lifecycle(result: object, json_output: bool) -> None:
    from modelctl import render

    if json_output:
        render.emit_json(result)
    else:
        render.lifecycle_result(result)


@app.command("deploy")
def deploy(
    route: Annotated[str, typer.Argument(help="Route name, e.g. support-bot.")],
    stage: Stage,
    model: Annotated[
        str | None, typer.Option(help="Model NAME@VERSION to serve (one target).")
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="Prompt NAME@VERSION for --model.")] = None,
    weight: Annotated[int, typer.Option(help="Weight of --model.")] = 100,
    target: Annotated[
        list[str] | None,
        typer.Option(help="MODEL@V[,PROMPT@V][:WEIGHT] target; repeat for several."),
    ] = None,
    fallback: Annotated[
        list[str] | None,
        typer.Option(help="MODEL@V[,PROMPT@V] fallback step, tried in order; repeatable."),
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="weighted (default), cost, latency or priority.")
    ] = None,
    reason: Reason = None,
    dry_run: DryRun = False,
    push: Push = None,
    json_output: JsonOption = False,
) -> None:
    """Set what a stage serves (normally the first stage on the path)."""
    from modelctl.errors import UsageError
    from modelctl.lifecycle import actions as lifecycle

    targets = [lifecycle.parse_target(t) for t in target or []]
    if model is not None:
        one = lifecycle.parse_pair(model + (f",{prompt}" if prompt else ""), "--model")
        targets.insert(0, {**one, "weight": weight})
    elif prompt is not None:
        raise UsageError("--prompt goes with --model")
    if not targets:
        raise UsageError("say what to serve: --model NAME@VERSION (or --target ...)")
    steps = [lifecycle.parse_pair(f, "--fallback") for f in fallback or []]
    binding = lifecycle.make_binding(targets, steps, policy)
    result = lifecycle.deploy(
        location(), route, stage, binding, reason=reason, dry_run=dry_run, push=push
    )
    _emit_lifecycle(result, json_output)


@app.command("promote")
def promote(
    route: Annotated[str, typer.Argument(help="Route name.")],
    to: Annotated[str, typer.Option("--to", help="The stage to promote into.")],
    canary: Annotated[
        int | None,
        typer.Option(help="Serve the candidate at this percentage beside what the stage serves."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="Promote from this earlier stage (needs allow_stage_skip)."),
    ] = None,
    reason: Reason = None,
    dry_run: DryRun = False,
    push: Push = None,
    json_output: JsonOption = False,
) -> None:
    """Copy the previous stage's binding to a stage (or canary it); gates run first."""
    from modelctl.lifecycle import actions as lifecycle

    result = lifecycle.promote(
        location(), route, to, canary=canary, source=source, reason=reason,
        dry_run=dry_run, push=push,
    )  # fmt: skip
    _emit_lifecycle(result, json_output)


@app.command("rollback")
def rollback(
    route: Annotated[str, typer.Argument(help="Route name.")],
    stage: Stage,
    to: Annotated[
        str | None, typer.Option(help="Restore the binding of this event (SEQ or tag).")
    ] = None,
    abort_canary: Annotated[
        bool,
        typer.Option(
            "--abort-canary", help="End the running canary: restore the binding before it."
        ),
    ] = False,
    reason: Reason = None,
    detected_at: Annotated[
        str | None,
        typer.Option(
            help="When the regression was detected: ISO 8601, 'now' or '30m ago'; between "
            "the release going live and now."
        ),
    ] = None,
    dry_run: DryRun = False,
    push: Push = None,
    json_output: JsonOption = False,
) -> None:
    """Back to the last good release: the newest earlier binding without what the last
    release brought in, as a new commit (or --to an event, or --abort-canary)."""
    from modelctl.lifecycle import actions as lifecycle

    result = lifecycle.rollback(
        location(), route, stage, to=to, abort_canary=abort_canary, reason=reason,
        detected_at=detected_at, dry_run=dry_run, push=push,
    )  # fmt: skip
    _emit_lifecycle(result, json_output)


@app.command("status")
def status(
    route: Annotated[str | None, typer.Argument(help="One route (default: all).")] = None,
    json_output: JsonOption = False,
) -> None:
    """What every stage of every route serves now, and the event that made it so."""
    import sys

    from modelctl import render
    from modelctl.lifecycle import status as core

    if json_output and route is None and not sys.stdout.isatty():
        text = core.status_json(location())  # warm: the cached text as it is
        if text is not None:
            render.emit_text(text)
            return
    result = core.status(location(), route)
    if json_output:
        render.emit_json(result)
    else:
        render.status_result(result)


@app.command("history")
def history(
    route: Annotated[str, typer.Argument(help="Route name.")],
    stage: Annotated[str | None, typer.Option("--stage", "-s", help="Only this stage.")] = None,
    no_signatures: Annotated[
        bool, typer.Option("--no-signatures", help="Skip signature checks (faster).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Every lifecycle event of a route: sequence, action, binding, author, time, signature."""
    from modelctl import render
    from modelctl.lifecycle import status as core

    result = core.route_history(location(), route, stage, check_signatures=not no_signatures)
    if json_output:
        render.emit_json(result)
    else:
        render.history_result(result)


@app.command("resolve")
def resolve(
    route: Annotated[str, typer.Argument(help="Route name.")],
    stage: Stage,
    at: Annotated[
        str,
        typer.Option(
            "--at", help="ISO 8601 time (UTC if no offset), 'now', '2h ago', or a commit or tag."
        ),
    ],
    json_output: JsonOption = False,
) -> None:
    """What a stage served at a point in time, and the commit, tag and signer behind it."""
    from modelctl import render
    from modelctl.lifecycle import status as core

    result = core.resolve(location(), route, stage, at)
    if json_output:
        render.emit_json(result)
    else:
        render.resolve_result(result)


@app.command("verify")
def verify(
    since: Annotated[
        str | None, typer.Option(help="Only check commits after this revision.")
    ] = None,
    trust: Annotated[
        list[str] | None,
        typer.Option(
            "--trust",
            metavar="COMMIT",
            help="A commit the history must contain (repeatable; adds to git config "
            "modelctl.trust). Pins a fresh clone against a rebuilt history.",
        ),
    ] = None,
    accept_rewrite: Annotated[
        str | None,
        typer.Option(
            "--accept-rewrite",
            metavar="COMMIT",
            help="Accept that the history no longer holds this commit, the last one verify "
            "accepted here (as its checkpoint finding names it), and move the checkpoint on.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Audit the history: signatures, tags, sequences, dates, immutability, unattested changes,
    and rollback against the last verified commit (the checkpoint) and pinned anchors."""
    from modelctl import render
    from modelctl.audit import verify as core

    loc = location()
    result = core.verify(loc, since, core.pinned_guard(loc, list(trust or []), accept_rewrite))
    if json_output:
        render.emit_json({**render.jsonable(result), "ok": result.ok})
    else:
        render.verify_result(result)
    fail_if(not result.ok)
