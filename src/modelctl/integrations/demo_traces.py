"""Spans for the demo registry's own history, as an OpenTelemetry Collector would export them.

Production traffic on the demo route during every binding interval, plus what real traffic
holds: a replica still serving the rolled-back version after the rollback (a stale replica),
a request whose primary call failed and whose fallback answered, and a call to a model the
registry has never heard of.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from modelctl.lifecycle import history
from modelctl.registry.snapshot import locate, snapshot_at


def _id(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


def _attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            out.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        else:
            out.append({"key": key, "value": {"stringValue": str(value)}})
    return out


def _span(trace: str, span: str, parent: str | None, name: str, start: float, seconds: float,
          attrs: dict[str, Any], kind: int, error: bool = False) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(int(start * 1e9)),
        "endTimeUnixNano": str(int((start + seconds) * 1e9)),
        "attributes": _attrs(attrs),
        "status": {"code": 2 if error else 1},
    }
    if parent:
        out["parentSpanId"] = parent
    return out


FALLBACK_TRACE = _id("trace-fallback", 32)
STALE_TRACE = _id("trace-stale", 32)


def write_traces(
    repo: Path, out: Path, route: str = "support-bot", stage: str = "production"
) -> dict[str, str]:
    """Write OTLP JSON lines for the registry at `repo`; returns notable trace ids."""
    loc = locate(repo)
    _, tip = history.branch_tip(loc)
    snapshot = snapshot_at(loc, tip)
    models = {
        f"{e.data['name']}@{e.data['version']}": e.data
        for e in snapshot.artifacts("models")
        if e.data
    }
    events = history.events(route, history.route_records(loc, route, tip), stage)
    rng = random.Random(42)
    batches: list[list[dict[str, Any]]] = []
    notable: dict[str, str] = {}

    def call(trace: str, parent: str, model_ref: str, prompt: str | None, start: float,
             error: bool = False, fallback: bool = False) -> dict[str, Any]:  # fmt: skip
        data = models[model_ref]
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": data["provider"],
            "gen_ai.request.model": data["provider_model"],
            "modelctl.route": route,
        }
        if not error:
            attrs["gen_ai.response.model"] = data["provider_model"]
        else:
            attrs["error.type"] = "429"
        if prompt:
            name, _, version = prompt.partition("@")
            attrs["gen_ai.prompt.name"] = name
            attrs["gen_ai.prompt.version"] = version
        if fallback:
            attrs["modelctl.fallback"] = True
        span = _id(f"{trace}{model_ref}{start}", 16)
        return _span(
            trace, span, parent, f"chat {data['provider_model']}", start, 1.2, attrs, 3, error
        )

    def request(
        n: int | str, start: float, targets: list[tuple[str, str | None]], fail_first: bool = False
    ) -> str:
        trace = _id(f"trace-{n}", 32)
        server = _id(f"server-{n}", 16)
        spans = [_span(trace, server, None, "POST /v1/support/chat", start, 2.0,
                       {"http.route": "/v1/support/chat", "http.request.method": "POST"}, 2)]  # fmt: skip
        model, prompt = targets[0]
        if fail_first:
            spans.append(call(trace, server, model, prompt, start + 0.01, error=True))
            backup, backup_prompt = targets[1]
            spans.append(call(trace, server, backup, backup_prompt, start + 0.5))
        else:
            spans.append(call(trace, server, model, prompt, start + 0.01))
        batches.append(spans)
        return trace

    n = 0
    for index, event in enumerate(events):
        if not event.binding:
            continue
        begin = event.time + 60
        end = events[index + 1].time if index + 1 < len(events) else event.time + 3600
        targets = event.binding["targets"]
        weights = [t["weight"] for t in targets]
        t = float(begin)
        while t < end - 60:
            chosen = rng.choices(targets, weights)[0]
            request(n, t, [(chosen["model"], chosen.get("prompt"))])
            n += 1
            t += 97.0
        if index == len(events) - 1 and event.binding.get("fallback"):
            # the primary was rate limited; the fallback chain answered
            step = event.binding["fallback"][0]
            primary = targets[0]
            notable["fallback"] = request(
                "fallback", begin + 30,
                [(primary["model"], primary.get("prompt")), (step["model"], step.get("prompt"))],
                fail_first=True,
            )  # fmt: skip
        if event.action == "rollback" and event.previous:
            # one replica kept the rolled-back version for a few minutes
            stale = event.previous["targets"][-1]
            notable["stale"] = request(
                "stale", event.time + 120, [(stale["model"], stale.get("prompt"))]
            )
    # a call to a model nobody registered
    if events:
        trace = _id("unregistered", 32)
        server = _id("unregistered-server", 16)
        start = events[-1].time + 300
        batches.append(
            [
                _span(
                    trace,
                    server,
                    None,
                    "POST /v1/support/chat",
                    start,
                    1.0,
                    {"http.route": "/v1/support/chat"},
                    2,
                ),
                _span(
                    trace,
                    _id("unregistered-call", 16),
                    server,
                    "chat gpt-4o",
                    start + 0.1,
                    0.8,
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.response.model": "gpt-4o-2024-11-20",
                        "modelctl.route": route,
                    },
                    3,
                ),
            ]
        )
        notable["unknown"] = trace
    resource = {"service.name": "support-api", "deployment.environment.name": stage}
    with out.open("w", encoding="utf-8") as fh:
        for spans in batches:
            doc = {
                "resourceSpans": [
                    {
                        "resource": {"attributes": _attrs(resource)},
                        "scopeSpans": [{"scope": {"name": "support-api"}, "spans": spans}],
                    }
                ]
            }
            fh.write(json.dumps(doc, separators=(",", ":")) + "\n")
    return notable
