"""Registry commands: init, add, validate, list, show, schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from modelctl.cli.app import JsonOption, app, fail_if, location

add_app = typer.Typer(
    help="Add a version of a model, prompt, judge or dataset (one commit).",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(add_app, name="add")

NoCommit = Annotated[
    bool, typer.Option("--no-commit", help="Only write the file; do not commit it.")
]
Description = Annotated[str | None, typer.Option(help="What this version is.")]
Owner = Annotated[str | None, typer.Option(help="Who owns it (team or email).")]
Labels = Annotated[
    list[str] | None, typer.Option("--label", help="KEY=VALUE label; repeat for more.")
]


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    from modelctl.errors import UsageError

    out: dict[str, str] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"{flag} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def _common(description: str | None, owner: str | None, labels: list[str] | None) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "description": description,
        "owner": owner,
        "labels": _pairs(labels, "--label"),
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }


def _finish_add(
    model: Any, json_output: bool, no_commit: bool, extra: dict[str, bytes] | None = None
) -> None:
    from modelctl import render
    from modelctl.registry import authoring

    result = authoring.add(location(), model, extra_files=extra, commit=not no_commit)
    if json_output:
        render.emit_json(result)
    else:
        render.add_result(result)


@app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Folder for the registry (default: here).")] = Path(),
    name: Annotated[str | None, typer.Option(help="Registry name (default: the folder's).")] = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Create a registry: modelctl.yaml, the kind folders, and a git repository if needed."""
    from modelctl import render
    from modelctl.registry import scaffold

    result = scaffold.init(path, name=name, commit=not no_commit)
    if json_output:
        render.emit_json(result)
    else:
        render.init_result(result)


@add_app.callback()
def add(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Add this manifest file as it is.")
    ] = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Add a version: `add model|prompt|judge|dataset NAME VERSION ...` or `add --file F`."""
    if ctx.invoked_subcommand is not None:
        if file is not None:
            from modelctl.errors import UsageError

            raise UsageError("--file adds a manifest file; do not combine it with a kind")
        return
    if file is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    from modelctl import render
    from modelctl.registry import authoring

    result = authoring.add_file(location(), file, commit=not no_commit)
    if json_output:
        render.emit_json(result)
    else:
        render.add_result(result)


@add_app.command("model")
def add_model(
    name: str,
    version: str,
    provider: Annotated[
        str, typer.Option(help="openai, anthropic, azure, bedrock, self-hosted...")
    ],
    provider_model: Annotated[
        str, typer.Option(help="Exact model id the provider reports, e.g. gpt-4o-2024-08-06.")
    ],
    provider_key: Annotated[
        str | None, typer.Option(help="Secret reference, e.g. env:OPENAI_API_KEY (never the key).")
    ] = None,
    alias: Annotated[
        list[str] | None, typer.Option(help="Another exact id traces may report; repeatable.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Request parameter KEY=VALUE; repeatable.")
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="API base URL.")] = None,
    artifact_uri: Annotated[
        str | None, typer.Option(help="Where self-hosted weights live.")
    ] = None,
    artifact_sha256: Annotated[str | None, typer.Option(help="sha256 of the weights.")] = None,
    trained_on: Annotated[
        list[str] | None, typer.Option(help="Dataset NAME@VERSION it was trained on; repeatable.")
    ] = None,
    base: Annotated[str | None, typer.Option(help="Base model NAME@VERSION.")] = None,
    input_cost: Annotated[
        float | None, typer.Option(help="Price per million input tokens.")
    ] = None,
    output_cost: Annotated[
        float | None, typer.Option(help="Price per million output tokens.")
    ] = None,
    description: Description = None,
    owner: Owner = None,
    label: Labels = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Add a model version."""
    from modelctl.registry import authoring, yamlio

    params = {k: yamlio.resolve_plain(yamlio.Plain(v)) for k, v in _pairs(param, "--param").items()}
    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        "provider": provider,
        "provider_model": provider_model,
        "provider_key": provider_key,
        "aliases": alias or [],
        "parameters": params,
        "endpoint": endpoint,
        **_common(description, owner, label),
    }
    if artifact_uri or artifact_sha256:
        fields["artifact"] = {"uri": artifact_uri, "sha256": artifact_sha256}
    lineage = {"trained_on": trained_on or [], "base": base}
    fields["lineage"] = {k: v for k, v in lineage.items() if v}
    if input_cost is not None or output_cost is not None:
        fields["cost"] = {"input_per_mtok": input_cost, "output_per_mtok": output_cost}
    _finish_add(authoring.from_fields("Model", fields), json_output, no_commit)


@add_app.command("prompt")
def add_prompt(
    name: str,
    version: str,
    template: Annotated[str | None, typer.Option(help="The template text.")] = None,
    template_file: Annotated[
        Path | None, typer.Option(help="A template file inside the registry (pinned by sha256).")
    ] = None,
    variable: Annotated[
        list[str] | None,
        typer.Option(help="Template variable; repeatable (default: found in the template)."),
    ] = None,
    description: Description = None,
    owner: Owner = None,
    label: Labels = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Add a prompt version (a prompt change is a model change)."""
    from modelctl.registry import authoring

    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        **_common(description, owner, label),
    }
    extra: dict[str, bytes] = {}
    text = template
    if template_file is not None:
        fields["template_file"], extra = authoring.template_file(location(), template_file)
        text = next(iter(extra.values())).decode("utf-8", "replace")
    else:
        fields["template"] = template
    fields["variables"] = variable or authoring.variables_in(text or "")
    _finish_add(authoring.from_fields("Prompt", fields), json_output, no_commit, extra)


@add_app.command("judge")
def add_judge(
    name: str,
    version: str,
    model: Annotated[str, typer.Option(help="Model NAME@VERSION the judge runs on.")],
    rubric: Annotated[str, typer.Option(help="Rubric prompt NAME@VERSION.")],
    evaluator: Annotated[str, typer.Option(help="What it judges, e.g. groundedness.")],
    threshold: Annotated[float, typer.Option(help="Scores at or above this pass.")],
    command: Annotated[
        str | None, typer.Option(help="External evaluator command that runs this judge.")
    ] = None,
    description: Description = None,
    owner: Owner = None,
    label: Labels = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Add a judge-model version."""
    import shlex

    from modelctl.registry import authoring

    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        "model": model,
        "rubric": rubric,
        "evaluator": evaluator,
        "threshold": threshold,
        "command": shlex.split(command) if command else None,
        **_common(description, owner, label),
    }
    _finish_add(authoring.from_fields("Judge", fields), json_output, no_commit)


@add_app.command("dataset")
def add_dataset(
    name: str,
    version: str,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Local JSONL file: digest, rows and size are read."),
    ] = None,
    uri: Annotated[
        str | None, typer.Option(help="Remote location (s3://, gs://, hf://...@rev) to record.")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Digest of a remote dataset, recorded as given.")
    ] = None,
    rows: Annotated[int | None, typer.Option(help="Row count of a remote dataset.")] = None,
    cohort_field: Annotated[
        str | None, typer.Option(help="Row field that names the cohort (default: cohort).")
    ] = None,
    snapshot_at: Annotated[
        str | None, typer.Option(help="When the data was collected (ISO 8601).")
    ] = None,
    source_uri: Annotated[str | None, typer.Option(help="Where the data came from.")] = None,
    derived_from: Annotated[
        list[str] | None, typer.Option(help="Dataset NAME@VERSION this derives from; repeatable.")
    ] = None,
    description: Description = None,
    owner: Owner = None,
    label: Labels = None,
    no_commit: NoCommit = False,
    json_output: JsonOption = False,
) -> None:
    """Add a dataset version, pinned by its sha256."""
    from modelctl.errors import UsageError
    from modelctl.registry import authoring

    fields: dict[str, Any] = {
        "name": name,
        "version": version,
        **_common(description, owner, label),
    }
    extra: dict[str, bytes] = {}
    if file is not None:
        rel, extra, stats = authoring.dataset_file(location(), name, version, file)
        if uri is not None:
            extra = {}  # the local file is a copy of the remote one: record, do not commit it
        fields.update(
            uri=uri or rel,
            sha256=stats.sha256,
            bytes=stats.bytes,
            rows=stats.rows,
            schema=stats.schema,
            cohort_field=cohort_field or ("cohort" if "cohort" in stats.schema else None),
        )
    elif uri is not None and sha256 is not None:
        fields.update(uri=uri, sha256=sha256, rows=rows, cohort_field=cohort_field)
    else:
        raise UsageError(
            "add dataset needs --file PATH (a local JSONL file), or --uri and --sha256 for a "
            "remote dataset"
        )
    source = {"uri": source_uri, "derived_from": derived_from or []}
    if source_uri or derived_from:
        fields["source"] = {k: v for k, v in source.items() if v}
    fields["snapshot_at"] = snapshot_at
    _finish_add(authoring.from_fields("Dataset", fields), json_output, no_commit, extra)


@app.command("validate")
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Report problems in these files or folders only.")
    ] = None,
    base: Annotated[
        str, typer.Option(help="Revision whose committed versions must be unchanged.")
    ] = "HEAD",
    rev: Annotated[
        str | None, typer.Option(help="Validate this revision instead of the work tree.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check manifests and routes: schema, references, stages, policy, secrets, immutability."""
    from modelctl import render
    from modelctl.registry import policy

    result = policy.validate(location(), paths, base=base, rev=rev)
    if json_output:
        render.emit_json({**render.jsonable(result), "ok": result.ok})
    else:
        render.validate_result(result)
    fail_if(not result.ok)


@app.command("list")
def list_(
    kind: Annotated[
        str | None, typer.Argument(help="model, prompt, judge, dataset, route or eval.")
    ] = None,
    rev: Annotated[str, typer.Option(help="Read the registry at this revision.")] = "HEAD",
    json_output: JsonOption = False,
) -> None:
    """List what the registry holds (as committed at --rev)."""
    from modelctl import render
    from modelctl.registry import catalog
    from modelctl.registry.snapshot import snapshot_at

    snapshot = snapshot_at(location(), rev)
    rows = catalog.list_rows(snapshot, kind)
    if json_output:
        render.emit_json({"source": snapshot.label, "items": rows})
    else:
        render.list_rows(snapshot.label, rows)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION, KIND/NAME@VERSION or a route name.")],
    rev: Annotated[str, typer.Option(help="Read the registry at this revision.")] = "HEAD",
    json_output: JsonOption = False,
) -> None:
    """Show a manifest and everything that references it."""
    from modelctl import render
    from modelctl.registry import catalog

    result = catalog.show_ref(location(), rev, ref)
    if json_output:
        render.emit_json(result)
    else:
        render.show_result(result)


@app.command("schema")
def schema(
    kind: Annotated[
        str | None, typer.Argument(help="Print one schema: model, prompt, route, registry...")
    ] = None,
    write: Annotated[Path | None, typer.Option(help="Write every schema into this folder.")] = None,
    check: Annotated[
        Path | None, typer.Option(help="Exit 1 when the schemas in this folder are stale.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Print, write or check the JSON Schemas of the manifest kinds."""
    from modelctl import render
    from modelctl.errors import UsageError
    from modelctl.registry import schemas

    if write is not None:
        written = schemas.write(write)
        if json_output:
            render.emit_json({"written": [str(p) for p in written]})
        else:
            render.success(f"wrote {len(written)} schemas to {write}")
        return
    if check is not None:
        stale = schemas.drift(check)
        if json_output:
            render.emit_json({"stale": stale, "ok": not stale})
        elif stale:
            render.error(
                f"stale schemas in {check}: {', '.join(stale)}",
                f"regenerate them: modelctl schema --write {check}",
            )
        else:
            render.success(f"schemas in {check} match the models")
        fail_if(bool(stale))
        return
    generated = schemas.generate()
    if kind is None:
        render.emit_json(generated)
        return
    key = f"{kind.lower().removesuffix('s')}.json"
    if key == "eval.json":
        key = "evalrun.json"
    if key not in generated:
        raise UsageError(f"no schema for {kind!r}", hint=f"one of: {', '.join(generated)}")
    render.emit_json(generated[key])
