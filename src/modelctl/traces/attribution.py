"""Attributing calls to the registry: routes, stages, model and prompt versions, the binding
live at the call's time, fallbacks, and the blind-spot reason when something does not resolve.

Model strings match exactly (a manifest's `provider_model` or one of its `aliases`), then
exactly after removing known decorations (`azure/`, `us.`, `publishers/*/models/`); never by
prefix or similarity.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

from modelctl.lifecycle import history
from modelctl.registry import suggest
from modelctl.registry.snapshot import Location, Snapshot
from modelctl.traces.fields import FALLBACK_GROUP, Call

_BEDROCK_REGION = re.compile(r"^(us|eu|apac|global|us-gov|ca|jp|au)\.")
_VERTEX = re.compile(r"^(projects/[^/]+/locations/[^/]+/)?publishers/[^/]+/models/")
_PROVIDER_SYNONYMS = {
    "az.ai.openai": "azure",
    "azure_openai": "azure",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "bedrock",
    "gcp.vertex_ai": "vertex_ai",
    "vertexai": "vertex_ai",
    "gcp.gemini": "google",
    "gemini": "google",
    "gcp.gen_ai": "google",
}


def provider_name(value: str | None) -> str | None:
    if not value:
        return None
    lowered = value.strip().lower()
    return _PROVIDER_SYNONYMS.get(lowered, lowered)


Ref = tuple[str, str]  # (name, version)


@dataclass
class ModelIndex:
    """Exact model strings -> registry versions that declare them."""

    exact: dict[str, list[tuple[Ref, str]]] = field(default_factory=dict)  # -> [(ref, provider)]
    prefixes: tuple[str, ...] = ()

    @classmethod
    def build(cls, snapshot: Snapshot) -> ModelIndex:
        index = cls()
        for entry in snapshot.artifacts("models"):
            data = entry.data
            if data is None:
                continue
            ref = (str(data["name"]), str(data["version"]))
            provider = provider_name(str(data["provider"])) or ""
            for text in [data["provider_model"], *data.get("aliases", [])]:
                index.exact.setdefault(str(text), []).append((ref, provider))
        settings = snapshot.settings or {}
        index.prefixes = tuple(settings.get("provider_prefixes", []))
        return index

    def forms(self, model: str) -> list[str]:
        """The string, then each normalised form, in order of preference."""
        out = [model]
        for prefix in self.prefixes:
            if model.startswith(prefix):
                out.append(model[len(prefix) :])
        stripped = _VERTEX.sub("", model)
        if stripped != model:
            out.append(stripped)
        text = model
        while "/" in text:  # litellm and openrouter style provider/model, maybe nested
            text = text.split("/", 1)[1]
            out.append(text)
        regional = _BEDROCK_REGION.sub("", out[-1])
        if regional != out[-1]:
            out.append(regional)
        return list(dict.fromkeys(out))

    def lookup(self, model: str, provider: str | None) -> list[Ref]:
        wanted = provider_name(provider)
        for form in self.forms(model):
            hits = self.exact.get(form)
            if not hits:
                continue
            refs = [ref for ref, prov in hits if not wanted or not prov or prov == wanted]
            if refs or not wanted:
                return sorted(set(refs))
            return []  # the provider disagrees: a different model with the same name
        return []


@dataclass
class Timelines:
    """Per (route, stage): event times and the bindings in force from each, sorted."""

    times: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    events: dict[tuple[str, str], list[history.Event]] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        loc: Location,
        routes: list[str],
        tip: str,
        records: dict[str, list[history.Record]] | None = None,
    ) -> Timelines:
        """Events per route and stage at `tip` (from `records` when the caller has them)."""
        timelines = cls()
        if records is None:
            records = history.all_route_records(loc, tip)
        for route in routes:
            for event in history.events(route, records.get(route, [])):
                key = (route, event.stage)
                timelines.events.setdefault(key, []).append(event)
        for key, events in timelines.events.items():
            events.sort(key=lambda e: e.time)
            timelines.times[key] = [e.time for e in events]
        return timelines

    def interval(self, route: str, stage: str, t: float) -> int:
        """Index of the event in force at `t` (-1 before the first)."""
        times = self.times.get((route, stage))
        if not times:
            return -1
        return bisect.bisect_right(times, t) - 1

    def event(self, route: str, stage: str, index: int) -> history.Event | None:
        events = self.events.get((route, stage))
        if not events or index < 0 or index >= len(events):
            return None
        return events[index]


@dataclass
class Context:
    """What attribution needs from the registry, loaded once per command."""

    snapshot: Snapshot
    index: ModelIndex
    timelines: Timelines
    routes: set[str]
    matchers: dict[tuple[str, str], set[str]]
    stage_aliases: dict[str, str]
    stages: list[str]
    default_stage: str
    grace: float = 0.0
    skew: float = 0.0  # --skew: producers' clocks may be this far off, either way
    _route_cache: dict[tuple[str, str], tuple[str | None, str] | tuple[()]] = field(
        default_factory=dict
    )

    @classmethod
    def build(
        cls,
        loc: Location,
        snapshot: Snapshot,
        tip: str | None,
        default_stage: str,
        grace: float = 0.0,
        skew: float = 0.0,
        records: dict[str, list[history.Record]] | None = None,
    ) -> Context:
        routes: set[str] = set()
        matchers: dict[tuple[str, str], set[str]] = {}
        for entry in snapshot.artifacts("routes"):
            if entry.data is None:
                continue
            name = str(entry.data["name"])
            routes.add(name)
            for key, value in (entry.data.get("match") or {}).items():
                matchers.setdefault((key, str(value)), set()).add(name)
        settings = snapshot.settings or {}
        stages = [s["name"] for s in settings.get("stages", [])]
        aliases = {
            alias: s["name"] for s in settings.get("stages", []) for alias in s.get("aliases", [])
        }
        timelines = Timelines.load(loc, sorted(routes), tip, records) if tip else Timelines()
        return cls(
            snapshot, ModelIndex.build(snapshot), timelines, routes, matchers, aliases, stages,
            default_stage, grace, skew,
        )  # fmt: skip

    def route(self, candidates: list[tuple[int, int, str, str]]) -> tuple[str | None, str, int]:
        """The first candidate (in priority order) that names a route: `modelctl.route` by
        its value, every other key through the routes' `match:` blocks. A value two routes
        match is `ambiguous-route`; nothing matching is `no-route`."""
        cache = self._route_cache
        for rank, _scope, key, value in candidates:
            found = cache.get((key, value))
            if found is None:
                found = cache[(key, value)] = self._match(key, value)
            if found:
                route, how = found
                return route, how, rank
        return None, "no-route", -1

    def _match(self, key: str, value: str) -> tuple[str | None, str] | tuple[()]:
        if key == "modelctl.route" and value in self.routes:
            return value, key
        if key in ("metadata.model_group", "model_group"):
            # `modelctl export litellm` names each model group after its route, and each
            # fallback group `<route>/fallback-N`: a gateway alias modelctl itself wrote.
            group = FALLBACK_GROUP.sub("", value)
            if group in self.routes:
                return group, key
        matched = self.matchers.get((key, value), set())
        if len(matched) > 1:
            return None, "ambiguous-route"
        if matched:
            return next(iter(matched)), f"match:{key}"
        return ()

    def stage(self, value: str | None) -> str:
        if value is None:
            return self.default_stage
        return self.stage_aliases.get(value, value)

    def known_stage(self, value: str, flag: str) -> str:
        """A stage named on the command line (or an alias of one), as the registry names it."""
        return known_stage(self.snapshot, value, flag)


def known_stage(snapshot: Snapshot, value: str, flag: str) -> str:
    """A stage named on the command line (or an alias of one), as the registry names it: the
    shared check (exit 2, with the nearest stages) with aliases; unchecked when modelctl.yaml
    is invalid (validate reports that; spans are still read)."""
    if snapshot.settings is None:
        return value
    return suggest.check_stage(snapshot.settings, value, flag, aliases=True)


def binding_entries(binding: dict[str, Any] | None) -> tuple[set[str], set[str], set[str]]:
    """(primary models, fallback models, prompts) of a binding, as name@version."""
    if not binding:
        return set(), set(), set()
    primary = {t["model"] for t in binding.get("targets", [])}
    backup = {s["model"] for s in binding.get("fallback", [])}
    prompts = {
        t["prompt"]
        for t in [*binding.get("targets", []), *binding.get("fallback", [])]
        if t.get("prompt")
    }
    return primary, backup, prompts


def live_reason(
    binding: dict[str, Any] | None, model: str | None, prompt: str | None
) -> str | None:
    """Why (model, prompt) is not what `binding` serves, or None when it is: the model must be
    a target or a fallback step, and a prompt the call names must be the one that entry pins
    (an entry that pins no prompt accepts any)."""
    entries = [*(binding or {}).get("targets", []), *(binding or {}).get("fallback", [])]
    pinned = [e.get("prompt") for e in entries if e["model"] == model]
    if not pinned:
        names = {str(e["model"]).partition("@")[0] for e in entries}
        return "version-not-live" if model and model.partition("@")[0] in names else "off-registry"
    if prompt is not None and None not in pinned and prompt not in pinned:
        return "prompt-not-live"
    return None


@dataclass
class Verdict:
    model: str | None  # name@version when resolved
    prompt: str | None
    name_ok: bool
    strict_ok: bool
    reason: str | None  # a blind-spot reason, None when covered (strictly)
    fallback: bool
    fallback_source: str | None
    event: history.Event | None = None
    conflict: bool = False  # an explicit modelctl.fallback=false against derived evidence
    in_grace: bool = False  # covered only by a neighbouring binding, within --grace or --skew


def _prompt(
    ctx: Context, name: str | None, version: str | None, stamp: str | None
) -> tuple[str | None, bool | None]:
    """(prompt ref, known?) — None when the call names no prompt."""
    if stamp:
        if "@" not in stamp:
            return stamp, False
        pname, _, pversion = stamp.partition("@")
        return stamp, f"prompts/{pname}/{pversion}.yaml" in ctx.snapshot.entries
    if not name:
        return None, None
    if version is None:
        return name, False
    return f"{name}@{version}", f"prompts/{name}/{version}.yaml" in ctx.snapshot.entries


NEAR_PREVIOUS, NEAR_NEXT = 1, 2


def attribute(
    ctx: Context,
    route: str | None,
    route_reason: str,
    stage: str,
    interval: int,
    near: int,
    call: Call,
) -> Verdict:
    """Resolve one group of calls (all fields equal, same binding interval).

    `near` says which neighbouring bindings also count (`NEAR_PREVIOUS`: the call lies within
    --grace or --skew after a change; `NEAR_NEXT`: within --skew before the next one)."""
    # 1. Which registry version served it?
    candidates: list[Ref] = []
    if call.model:
        candidates = ctx.index.lookup(call.model, call.provider)
    model: str | None = None
    reason: str | None = None
    if call.stamp:
        name, _, version = call.stamp.partition("@")
        if version and f"models/{name}/{version}.yaml" in ctx.snapshot.entries:
            model = f"{name}@{version}"
            if call.model and (name, version) not in candidates:
                reason = "stamp-mismatch"
        else:
            reason = "unknown-model"
    elif not candidates:
        reason = "unknown-model"
    event = ctx.timelines.event(route, stage, interval) if route else None
    binding = event.binding if event else None
    if model is None and candidates:
        if len(candidates) == 1:
            model = f"{candidates[0][0]}@{candidates[0][1]}"
        else:
            primary, backup, _ = binding_entries(binding)
            live = [f"{n}@{v}" for n, v in candidates if f"{n}@{v}" in primary | backup]
            if len(live) == 1:
                model = live[0]
            else:
                reason = reason or "ambiguous-model"
    prompt, prompt_known = _prompt(ctx, call.prompt_name, call.prompt_version, call.prompt_stamp)
    if prompt_known is False and reason is None:
        reason = "unknown-prompt"
    # Name level: the served model is registered (several versions sharing its id still are).
    name_ok = (reason is None and model is not None) or reason == "ambiguous-model"
    # 2. Was it what the route and stage were bound to at the time?
    strict_reason: str | None = reason
    graced = False
    if strict_reason is None:
        if route is None:
            strict_reason = route_reason
        elif call.time is None:
            strict_reason = "no-time"
        else:
            strict_reason = (
                "no-stage-binding" if binding is None else live_reason(binding, model, prompt)
            )
            for flag, step in ((NEAR_PREVIOUS, -1), (NEAR_NEXT, 1)):
                if strict_reason is not None and near & flag:
                    other = ctx.timelines.event(route, stage, interval + step)
                    if other is not None and live_reason(other.binding, model, prompt) is None:
                        strict_reason, graced = None, True
    # 3. Was it a fallback?
    fallback, source, conflict = call.fallback, call.fallback_source, False
    derived: tuple[bool, str] | None = None
    primary, backup, _ = binding_entries(binding)
    if model is not None and binding is not None and model not in primary and model in backup:
        derived = (True, "registry")
    elif call.failed_sibling and call.model not in call.sibling_models:
        derived = (True, "failed-sibling")
    if fallback is None:
        if derived:
            fallback, source = derived
        else:
            fallback = False
    elif fallback is False and derived:
        conflict = True
    return Verdict(
        model,
        prompt,
        name_ok,
        strict_reason is None,
        strict_reason,
        bool(fallback),
        source,
        event,
        conflict,
        graced,
    )
