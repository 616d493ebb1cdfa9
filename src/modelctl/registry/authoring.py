"""Adding versions: build a manifest, check it against the registry, write it as one commit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modelctl.errors import ConflictError, ManifestError, UsageError
from modelctl.gitstore.atomic import file_mode, write_atomic
from modelctl.registry import commits, manifests, policy, refs, yamlio
from modelctl.registry.snapshot import Entry, Location, Snapshot, parse_entry, snapshot_worktree

SCHEMA_DIR = ".modelctl/schemas"


@dataclass
class AddResult:
    ref: str
    path: str
    committed: bool
    commit: str | None = None
    signed: bool = False
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def from_fields(kind: str, fields: dict[str, Any], source: str = "command line") -> Any:
    """Validate manifest fields given on the command line; ManifestError names each bad flag."""
    from modelctl.registry.validation import pydantic_problems

    clean = {k: v for k, v in fields.items() if v is not None and v != [] and v != {}}
    try:
        return manifests.build(kind, **clean)
    except ValidationError as exc:
        raise ManifestError(pydantic_problems(source, exc, None)) from None


def render_manifest(model: Any, path: str) -> bytes:
    """Canonical YAML for a manifest, with a schema comment editors understand."""
    depth = path.count("/")
    schema = "../" * depth + f"{SCHEMA_DIR}/{type(model).__name__.lower()}.json"
    body = yamlio.dump(manifests.to_data(model))
    return f"# yaml-language-server: $schema={schema}\n{body}".encode()


def relative_to_registry(loc: Location, file: Path) -> str | None:
    """`file` as a registry-relative POSIX path, or None when it lies outside the registry."""
    try:
        return file.resolve().relative_to(loc.root).as_posix()
    except ValueError:
        return None


def _check_new(
    snapshot: Snapshot, path: str, content: bytes, extra: dict[str, bytes], read: policy.ReadFile
) -> None:
    existing = snapshot.entries.get(path)
    if existing is not None and existing.oid is not None:
        raise ConflictError(
            f"{path} already exists in {snapshot.label}; committed versions are immutable",
            hint="add a new version instead",
        )
    place = refs.classify_path(path)
    assert place is not None
    entry: Entry = parse_entry(path, content, None, place.category)
    trial = Snapshot(
        snapshot.label,
        snapshot.commit,
        None,
        {**snapshot.entries, path: entry},
        {**snapshot.others, **dict.fromkeys(extra, "")},
    )

    def read_with_extra(p: str) -> bytes | None:
        return extra[p] if p in extra else read(p)

    problems = [p for p in policy.check(trial, read_with_extra) if p.path == path]
    if problems:
        raise ManifestError(problems, hint="nothing was written")


def add(
    loc: Location,
    model: Any,
    *,
    extra_files: dict[str, bytes] | None = None,
    commit: bool = True,
) -> AddResult:
    """Write `model` to its canonical path (plus `extra_files`) and commit it, unless not asked."""
    extra = dict(extra_files or {})
    path = str(model.ref.path)
    content = render_manifest(model, path)
    on_disk = loc.root / path
    if on_disk.exists() and on_disk.read_bytes() != content:
        raise ConflictError(
            f"{path} already exists in the work tree with other content",
            hint="move it away, or add it as it is with: modelctl add --file " + path,
        )
    files = [path, *extra]

    if not commit:
        snapshot = snapshot_worktree(loc)
        _check_new(snapshot, path, content, extra, lambda p: _read_disk(loc, p))
        written: list[Path] = []
        try:  # all the files or none (a full disk, a read-only work tree)
            for rel, data in {path: content, **extra}.items():
                target = loc.root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, data, mode=file_mode())
                written.append(target)
        except BaseException:
            for target in written:
                target.unlink(missing_ok=True)
            raise
        return AddResult(str(model.ref), path, committed=False, files=files)

    def plan(snapshot: Snapshot, tip: str | None) -> commits.Change:
        def read(p: str) -> bytes | None:
            return loc.store.read_path(tip, loc.repo_path(p)) if tip else None

        _check_new(snapshot, path, content, extra, read)
        kind = type(model).__name__.lower()
        message = (
            f"modelctl: add {kind} {refs.format_ref(model.ref, with_kind=False)}\n\n"
            + commits.trailers(action="add", ref=str(model.ref))
            + "\n"
        )
        return commits.Change({path: content, **extra}, message)

    outcome = commits.write(loc, plan)
    assert outcome.result is not None
    return AddResult(
        str(model.ref),
        path,
        committed=True,
        commit=outcome.result.commit,
        signed=outcome.result.signed,
        files=files,
        warnings=outcome.warnings,
    )


def _read_disk(loc: Location, path: str) -> bytes | None:
    file = loc.root / path
    return file.read_bytes() if file.is_file() else None


def add_file(loc: Location, manifest: Path, *, commit: bool = True) -> AddResult:
    """`modelctl add --file`: validate a manifest file and add it at its canonical path."""
    from modelctl.registry.validation import parse_manifest

    if not manifest.is_file():
        raise UsageError(f"{manifest} does not exist or is not a file")
    with manifest.open("rb") as fh:
        raw = fh.read(yamlio.MAX_BYTES + 1)
    category, model = parse_manifest(raw, str(manifest))
    if category in ("routes", "evals"):
        raise UsageError(
            f"{manifest} is a {model.kind}; routes change through deploy/promote/rollback "
            "and eval runs through `modelctl eval`",
        )
    return add(loc, model, commit=commit)


def template_file(loc: Location, file: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """A prompt's template_file spec and the file to commit with it."""
    rel = relative_to_registry(loc, file)
    if rel is None:
        raise UsageError(
            f"template file {file} is outside the registry at {loc.root}",
            hint="copy it into the registry (e.g. prompts/NAME/VERSION.txt) and pass that path",
        )
    if not file.is_file():
        raise UsageError(f"template file {file} does not exist")
    data = file.read_bytes()
    return {"path": rel, "sha256": hashlib.sha256(data).hexdigest()}, {rel: data}


def dataset_file(
    loc: Location, name: str, version: str, file: Path
) -> tuple[str, dict[str, bytes], Any]:
    """Inspect a local JSONL dataset: (registry uri, files to commit, stats)."""
    from modelctl.registry.datasets import inspect_jsonl

    if not file.is_file():
        raise UsageError(f"dataset file {file} does not exist")
    stats = inspect_jsonl(file)
    rel = relative_to_registry(loc, file)
    if rel is None:
        rel = f"datasets/{name}/{version}.jsonl"
    return rel, {rel: file.read_bytes()}, stats


def variables_in(template: str) -> list[str]:
    """`{{ name }}` and `{name}` placeholders, in order of first use."""
    import re

    found = re.findall(
        r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}|(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})",
        template,
    )
    names = [a or b for a, b in found]
    return list(dict.fromkeys(names))
