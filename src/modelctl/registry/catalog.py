"""`list` and `show`: what the registry holds, and where each thing is used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelctl.errors import UsageError
from modelctl.registry import refs
from modelctl.registry.snapshot import (
    Entry,
    Location,
    Snapshot,
    files_at,
    route_names_at,
    snapshot_at,
    unknown_route,
)
from modelctl.registry.suggest import UnknownName

LIST_KINDS = ("model", "prompt", "judge", "dataset", "route", "eval")
_CATEGORY = {
    "model": "models",
    "prompt": "prompts",
    "judge": "judges",
    "dataset": "datasets",
    "route": "routes",
    "eval": "evals",
}
_KIND = {v: k for k, v in _CATEGORY.items()}


@dataclass
class Row:
    kind: str
    name: str
    version: str | None
    path: str
    summary: str
    valid: bool


@dataclass
class Usage:
    path: str
    field: str
    what: str  # "route", "eval", "judge", ...


@dataclass
class ShowResult:
    kind: str
    ref: str
    path: str
    blob: str | None
    source: str
    data: dict[str, Any] | None
    problems: list[str]
    used_by: list[Usage] = field(default_factory=list)


def category_of(kind: str) -> str:
    lowered = kind.lower().rstrip("s")
    if lowered not in _CATEGORY:
        raise UsageError(f"unknown kind {kind!r}", hint=f"use one of: {', '.join(LIST_KINDS)}")
    return _CATEGORY[lowered]


def _summary(entry: Entry) -> str:
    d = entry.data
    if d is None:
        return f"invalid: {len(entry.problems)} problem(s); run modelctl validate"
    category = entry.category
    if category == "models":
        return f"{d['provider']}/{d['provider_model']}"
    if category == "prompts":
        variables = d.get("variables") or []
        return "variables: " + (", ".join(variables) if variables else "none")
    if category == "judges":
        return f"{d['evaluator']} on {d['model']}, rubric {d['rubric']}"
    if category == "datasets":
        rows = d.get("rows")
        return f"{rows if rows is not None else '?'} rows at {d['uri']}"
    if category == "routes":
        stages = d.get("stages") or {}
        return "stages: " + (", ".join(stages) if stages else "none deployed")
    if category == "evals":
        return f"{d['verdict']} for {d.get('stage') or '?'} on {d['dataset']['ref']}"
    return ""


def _row(entry: Entry) -> Row:
    place = refs.classify_path(entry.path)
    assert place is not None
    name, version = place.name, place.version  # a route's path holds no version
    return Row(
        _KIND[entry.category], name, version, entry.path, _summary(entry), entry.data is not None
    )


def list_rows(snapshot: Snapshot, kind: str | None = None) -> list[Row]:
    category = category_of(kind) if kind else None
    return [_row(e) for e in snapshot.artifacts(category) if e.category != "settings"]


def find(snapshot: Snapshot, text: str) -> Entry:
    """An entry by `kind/name@version`, `name@version` (any kind), `route/NAME` or a route name."""
    head, slash, rest = text.partition("/")
    if slash and head.rstrip("s") in ("route", "eval"):
        if head.rstrip("s") == "route":
            return snapshot.require_route(rest)
        route, _, run = rest.partition("/")
        entry = snapshot.entries.get(str(refs.eval_path(route, run)))
        if entry is None:
            folder = f"evals/{route}/"
            runs = [
                e.path[len(folder) : -len(".yaml")]
                for e in snapshot.artifacts("evals")
                if e.path.startswith(folder)
            ]
            where = f"of route {route} at {snapshot.where}"
            raise UnknownName("eval run", run, runs, where=where, listed_as=f"runs of {route}")
        return entry
    if "@" not in text:
        return snapshot.require_route(text)
    ref = refs.parse_ref(text)
    kinds = [ref.kind] if ref.kind else list(refs.Kind)
    found = [e for k in kinds if (e := snapshot.get(ref.qualified(k))) is not None]
    if not found:
        raise snapshot.unknown_ref(text, ref.kind)
    if len(found) > 1:
        options = ", ".join(f"{e.category}/{ref.name}@{ref.version}" for e in found)
        raise UsageError(f"{text} is ambiguous", hint=f"say which one: {options}")
    return found[0]


def used_by(snapshot: Snapshot, entry: Entry) -> list[Usage]:
    """Every field of another manifest that references `entry`."""
    from modelctl.registry.policy import references

    place = refs.classify_path(entry.path)
    if place is None or place.version is None or entry.category not in {k.value for k in refs.Kind}:
        return []
    wanted = (refs.Kind(entry.category), f"{place.name}@{place.version}")
    usages = []
    for other in snapshot.artifacts():
        for field_name, kind, target in references(other):
            if (kind, target) == wanted:
                usages.append(
                    Usage(other.path, field_name, _KIND.get(other.category, other.category))
                )
    return usages


def show(snapshot: Snapshot, text: str) -> ShowResult:
    entry = find(snapshot, text)
    row = _row(entry)
    ref = f"{row.kind}/{row.name}@{row.version}" if row.version else f"{row.kind}/{row.name}"
    return ShowResult(
        kind=row.kind,
        ref=ref,
        path=entry.path,
        blob=entry.oid,
        source=snapshot.label,
        data=entry.data,
        problems=[str(p) for p in entry.problems],
        used_by=used_by(snapshot, entry),
    )


def show_ref(loc: Location, rev: str, text: str) -> ShowResult:
    """`show`: a route by name reads only its file (nothing references a route); anything
    else needs the whole snapshot to find what references it."""
    if "@" not in text and "/" not in text:
        refs.check_name(text, "route name")
        commit = loc.store.resolve(rev)
        if commit is None:
            raise UsageError(f"revision {rev!r} does not exist")
        path = str(refs.route_path(text))
        entry = files_at(loc, commit, {path: "routes"})[path]
        if entry is None:
            label = f"{rev} ({commit[:7]})"
            raise unknown_route(text, route_names_at(loc, commit), label)
        return ShowResult("route", f"route/{text}", path, entry.oid, f"{rev} ({commit[:7]})",
                          entry.data, [str(p) for p in entry.problems])  # fmt: skip
    return show(snapshot_at(loc, rev), text)
