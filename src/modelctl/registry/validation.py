"""Checks of one file on its own: strict YAML, kind, schema, path, secrets.

Every problem becomes `path:line: field: message`; a file's problems are all reported together.
Checks that need several files (references, stages, immutability) live in `modelctl.registry.policy`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from modelctl.errors import ManifestError, Problem
from modelctl.registry import manifests, refs, secretscan, yamlio

_EXPECTED_FOLDER = {v: k for k, v in manifests.CATEGORY_KIND.items()}


def field_name(loc: tuple[Any, ...]) -> str:
    """`('stages', 'prod', 'targets', 0, 'weight')` -> `stages.prod.targets[0].weight`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "missing":
        return "required field is missing"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def pydantic_problems(
    path: str, exc: ValidationError, doc: yamlio.Document | None
) -> list[Problem]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        # Tagged unions and function validators add their own names to the location: drop them.
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        line = doc.line_of(loc) if doc is not None else None
        problems.append(Problem(path, field_name(loc), _message(error), line))
    return problems


def check_file(
    path: str, raw: bytes, category: str, *, secrets: bool = True
) -> tuple[dict[str, Any] | None, list[Problem]]:
    """Load and validate one registry file: (canonical data or None, problems).

    `secrets=False` skips the secret scan: for reading what a committed file said (history),
    where a value that looks like a key is not a reason to read the file as unreadable.
    """
    try:
        doc = yamlio.load_mapping(raw, path, with_lines=False)
    except ManifestError as exc:
        return None, exc.problems
    data, problems = _check_loaded(path, doc, category, secrets)
    if problems and not doc.lines:
        # Load again, recording lines, only to say where the problems are.
        _, problems = _check_loaded(path, yamlio.load_mapping(raw, path), category, secrets)
    return data, problems


def _location(field: str) -> tuple[str, ...]:
    """Where a secret finding points: its field, or for a secret used as a key, its mapping."""
    return tuple(field.removesuffix(" (a key)").split("."))


def _unrevealing(problems: list[Problem], hidden: set[str]) -> list[Problem]:
    """Schema problems minus those the secret check reports already, or whose field path
    would print a secret used as a key."""
    return [p for p in problems if p.field not in hidden and not secretscan.reveals(p.field)]


def _check_loaded(
    path: str, doc: yamlio.Document, category: str, scan: bool = True
) -> tuple[dict[str, Any] | None, list[Problem]]:
    data = doc.data
    expected = manifests.CATEGORY_KIND[category]
    kind = data.get("kind")
    if kind != expected:
        found = "missing" if kind is None else f"{kind!r}"
        return None, [
            Problem(
                path,
                "kind",
                f"is {found}, but files under {_EXPECTED_FOLDER[expected]}/ hold kind: {expected}"
                if category != "settings"
                else f"is {found}; {refs.SETTINGS_FILE} holds kind: Registry",
                doc.line_of(("kind",)),
            )
        ]
    secrets = secretscan.scan(data) if scan else []
    problems = [Problem(path, f.field, f.message, doc.line_of(_location(f.field))) for f in secrets]
    hidden = {f.field for f in secrets}
    try:
        model = manifests.KINDS[expected].model_validate(data)
    except ValidationError as exc:
        # A field that holds a secret is reported once, by the secret check, without its value.
        problems += _unrevealing(pydantic_problems(path, exc, doc), hidden)
        return None, problems
    problems += _path_problems(path, category, model, doc)
    if problems:
        return None, problems
    return manifests.to_data(model), []


def _path_problems(path: str, category: str, model: Any, doc: yamlio.Document) -> list[Problem]:
    place = refs.classify_path(path)
    if place is None or category == "settings":
        return []
    if category == "routes":
        expected = {"name": place.name}
    elif category == "evals":
        expected = {"route": place.name, "id": place.version or ""}
    else:
        expected = {"name": place.name, "version": place.version or ""}
    problems = []
    for key, want in expected.items():
        have = getattr(model, key)
        if have != want:
            problems.append(
                Problem(
                    path,
                    key,
                    f"is {have!r} but the file's path says {want!r}; "
                    "move the file or fix the field (the path is derived from it)",
                    doc.line_of((key,)),
                )
            )
    return problems


def parse_manifest(raw: bytes, source: str) -> tuple[str, Any]:
    """Validate a standalone manifest file (for `add --file`): (category, pydantic model).

    Raises ManifestError listing every problem.
    """
    doc = yamlio.load_mapping(raw, source)
    kind = doc.data.get("kind")
    category = _EXPECTED_FOLDER.get(kind) if isinstance(kind, str) else None
    if category is None or kind == "Registry":
        choices = ", ".join(k for k in manifests.CATEGORY_KIND.values() if k != "Registry")
        raise ManifestError(
            [Problem(source, "kind", f"must be one of {choices}", doc.line_of(("kind",)))]
        )
    secrets = secretscan.scan(doc.data)
    problems = [Problem(source, f.field, f.message) for f in secrets]
    hidden = {f.field for f in secrets}
    try:
        model = manifests.KINDS[kind].model_validate(doc.data)
    except ValidationError as exc:
        problems += _unrevealing(pydantic_problems(source, exc, doc), hidden)
    if problems:
        raise ManifestError(problems)
    return category, model
