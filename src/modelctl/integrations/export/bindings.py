"""Resolve routes at a revision into self-contained bindings, and the JSON a service reads.

A resolved binding carries everything a service needs at start-up without git: each target's
weight and share, the model's provider, model id, key reference, endpoint, parameters and cost,
the prompt's text (a pinned template file is read from the same commit and its digest checked),
and the lifecycle event that made the binding live.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from modelctl.errors import ManifestError, Problem, UsageError
from modelctl.lifecycle import history
from modelctl.registry import refs, suggest
from modelctl.registry.snapshot import Location, Snapshot

_MODEL_FIELDS = (
    "provider", "provider_model", "aliases", "provider_key", "endpoint", "parameters",
    "artifact", "cost", "labels",
)  # fmt: skip
_PROMPT_FIELDS = ("template", "messages", "template_file", "variables")


@dataclass
class Release:
    """The lifecycle event that made a stage's binding live."""

    tag: str | None
    action: str
    seq: int | None
    commit: str
    time: str
    eval_id: str | None = None


@dataclass
class Served:
    """One model (and prompt) a stage serves: a weighted target or a fallback step."""

    role: str  # target or fallback
    position: int  # 1-based, within targets or within the fallback chain
    model_ref: str
    prompt_ref: str | None
    weight: int | None
    model: dict[str, Any]
    prompt: dict[str, Any] | None


@dataclass
class RouteBinding:
    route: str
    stage: str
    policy: str
    targets: list[Served]
    fallback: list[Served]
    release: Release | None
    path: str  # the route file, for messages

    @property
    def total_weight(self) -> int:
        return sum(t.weight or 0 for t in self.targets)


@dataclass
class Resolution:
    registry: str
    stage: str
    commit: str
    committed_at: str
    source: str
    routes: list[RouteBinding] = field(default_factory=list)


def _route_names(snapshot: Snapshot, routes: list[str], stage: str) -> list[str]:
    if routes:
        for route in routes:
            refs.check_name(route, "route name")
        return list(dict.fromkeys(routes))
    names = []
    for entry in snapshot.artifacts("routes"):
        if entry.data is not None and stage in entry.data.get("stages", {}):
            names.append(entry.path[len("routes/") : -len(".yaml")])
    if not names:
        raise UsageError(
            f"no route serves anything on stage {stage} at {snapshot.label}",
            hint="see what each stage serves: modelctl status",
        )
    return names


def _manifest(
    snapshot: Snapshot, kind: refs.Kind, text: str, path: str, where: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    entry = snapshot.get(refs.parse_ref(text, kind))
    if entry is None:
        message = f"{kind.singular} {text} does not exist at {snapshot.label}"
        return None, [Problem(path, where, message)]
    if entry.data is None:
        message = (
            f"{kind.singular} {text} is invalid ({len(entry.problems)} problem(s) in "
            f"{entry.path}); run modelctl validate"
        )
        return None, [Problem(path, where, message)]
    return entry.data, []


def _prompt_body(
    loc: Location, commit: str, data: dict[str, Any], path: str, where: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    body = {k: data[k] for k in _PROMPT_FIELDS if data.get(k) not in (None, [])}
    spec = data.get("template_file")
    if spec:
        raw = loc.store.read_path(commit, loc.repo_path(spec["path"]))
        if raw is None:
            return None, [Problem(path, where, f"template file {spec['path']} is not committed")]
        if hashlib.sha256(raw).hexdigest() != spec["sha256"]:
            message = f"template file {spec['path']} does not match its pinned sha256"
            return None, [Problem(path, where, message)]
        body["template"] = raw.decode("utf-8", "replace")
    return body, []


def _served(
    loc: Location,
    snapshot: Snapshot,
    item: dict[str, Any],
    role: str,
    position: int,
    path: str,
    where: str,
) -> tuple[Served | None, list[Problem]]:
    model, problems = _manifest(snapshot, refs.Kind.MODEL, item["model"], path, f"{where}.model")
    prompt = None
    if item.get("prompt"):
        data, more = _manifest(snapshot, refs.Kind.PROMPT, item["prompt"], path, f"{where}.prompt")
        problems += more
        if data is not None and snapshot.commit is not None:
            prompt, more = _prompt_body(loc, snapshot.commit, data, path, f"{where}.prompt")
            problems += more
    if model is None or problems:
        return None, problems
    fields = {k: model[k] for k in _MODEL_FIELDS if model.get(k) not in (None, [], {})}
    served = Served(
        role, position, item["model"], item.get("prompt"), item.get("weight"), fields, prompt
    )
    return served, []


def _release(loc: Location, route: str, stage: str, commit: str) -> Release | None:
    found = history.events(route, history.route_records(loc, route, commit), stage)
    if not found or found[-1].binding is None:
        return None
    event = found[-1]
    return Release(
        event.tag, event.action, event.seq, event.commit, event.when, event.trailers.get("eval")
    )


def _route_binding(
    loc: Location, snapshot: Snapshot, route: str, stage: str
) -> tuple[RouteBinding | None, list[Problem]]:
    from modelctl.registry.policy import _binding_problems

    entry = snapshot.require_route(route)
    if entry.data is None:
        return None, list(entry.problems)
    binding = entry.data.get("stages", {}).get(stage)
    if binding is None:
        served = ", ".join(entry.data.get("stages", {})) or "nothing yet"
        raise UsageError(
            f"route {route} serves nothing on stage {stage} at {snapshot.label}",
            hint=f"its stages: {served}; deploy or promote it there first",
        )
    where = f"stages.{stage}"
    problems = list(_binding_problems(entry.path, where, binding, need_fallback=False))
    targets, chain = [], []
    for i, target in enumerate(binding["targets"]):
        item, more = _served(
            loc, snapshot, target, "target", i + 1, entry.path, f"{where}.targets[{i}]"
        )
        problems += more
        targets.append(item)
    for i, step in enumerate(binding.get("fallback", [])):
        item, more = _served(
            loc, snapshot, step, "fallback", i + 1, entry.path, f"{where}.fallback[{i}]"
        )
        problems += more
        chain.append(item)
    if problems:
        return None, problems
    assert snapshot.commit is not None
    return RouteBinding(
        route,
        stage,
        binding.get("policy", "weighted"),
        [t for t in targets if t is not None],
        [s for s in chain if s is not None],
        _release(loc, route, stage, snapshot.commit),
        entry.path,
    ), []


def resolve(loc: Location, routes: list[str], stage: str, rev: str = "HEAD") -> Resolution:
    """What `stage` serves on each route at `rev`, resolved; every route when none is given."""
    from modelctl.registry.snapshot import snapshot_at

    refs.check_name(stage, "stage name")
    snapshot = snapshot_at(loc, rev)
    if snapshot.commit is None:
        raise UsageError("the registry has no commits yet", hint="add something first")
    suggest.check_stage(snapshot.settings, stage, where=snapshot.label)
    result = Resolution(
        registry=str((snapshot.settings or {}).get("name", "")),
        stage=stage,
        commit=snapshot.commit,
        committed_at=history.iso(history.commit_time(loc, snapshot.commit)),
        source=snapshot.label,
    )
    problems: list[Problem] = []
    for route in _route_names(snapshot, routes, stage):
        binding, more = _route_binding(loc, snapshot, route, stage)
        problems += more
        if binding is not None:
            result.routes.append(binding)
    if problems:
        raise ManifestError(
            problems, hint="fix the registry (modelctl validate lists everything), then export"
        )
    return result


# --- the JSON document a service reads ---------------------------------------------------------


def _served_doc(item: Served, total: int) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if item.role == "target":
        doc["weight"] = item.weight
        doc["share"] = round((item.weight or 0) / total, 6) if total else 0.0
    doc["model"] = {"ref": item.model_ref, **item.model}
    doc["prompt"] = {"ref": item.prompt_ref, **item.prompt} if item.prompt is not None else None
    return doc


def document(resolution: Resolution) -> dict[str, Any]:
    """The resolved bindings as one JSON document (`modelctl export json`)."""
    routes: dict[str, Any] = {}
    for binding in resolution.routes:
        total = binding.total_weight
        release = binding.release
        routes[binding.route] = {
            "policy": binding.policy,
            "release": {
                "tag": release.tag,
                "action": release.action,
                "seq": release.seq,
                "commit": release.commit,
                "time": release.time,
                "eval": release.eval_id,
            }
            if release
            else None,
            "targets": [_served_doc(t, total) for t in binding.targets],
            "fallback": [_served_doc(s, total) for s in binding.fallback],
        }
    return {
        "apiVersion": "modelctl/v1",
        "kind": "ResolvedBindings",
        "registry": resolution.registry,
        "stage": resolution.stage,
        "commit": resolution.commit,
        "committed_at": resolution.committed_at,
        "routes": routes,
    }
