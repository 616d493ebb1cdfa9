"""From spans to model calls: which spans count, and what each says about route, stage,
model, prompt, provider and fallback (docs/traces.md, "Which keys are read").

A batch of spans (one export request) is handled as a unit: the leaf rule, ancestor lookups
and failed-sibling fallbacks are resolved inside it, with a bounded memory of route and stage
stamps from earlier batches of the same trace.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from modelctl.traces.spans import Span

EXCLUDED_OPERATIONS = frozenset(
    ["invoke_agent", "create_agent", "invoke_workflow", "execute_tool", "plan", "retrieval",
     "create_memory", "update_memory", "search_memory", "delete_memory"]
)  # fmt: skip
_OPENINFERENCE = {"LLM": "chat", "EMBEDDING": "embeddings", "RERANKER": "rerank"}
_NOT_MODEL_KINDS = frozenset(["workflow", "task", "agent", "tool"])

SERVED_KEYS = (
    "gen_ai.response.model",
    "llm.response.model_name",
    "hidden_params.litellm_model_name",
    "llm.model_name",
    "langfuse.observation.model.name",
    "embedding.model_name",
    "reranker.model_name",
)
REQUESTED_KEYS = ("gen_ai.request.model", "llm.request.model_name")
LENIENT_KEYS = ("llm.model.name", "llm.request.model", "llm.response.model", "gen_ai.model")
PROMPT_KEYS = (
    ("gen_ai.prompt.name", "gen_ai.prompt.version"),
    ("langfuse.observation.prompt.name", "langfuse.observation.prompt.version"),
    ("traceloop.prompt.key", "traceloop.prompt.version"),
    ("gen_ai.prompt.template.name", "gen_ai.prompt.template.version"),
    ("llm.prompt_template.name", "llm.prompt_template.version"),
)
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
ROUTE_KEYS = (
    "modelctl.route",
    "metadata.model_group",
    "gen_ai.workflow.name",
    "gen_ai.agent.name",
    "traceloop.association.properties.route",
    "traceloop.workflow.name",
    "langfuse.trace.name",
)
STAGE_RESOURCE_KEYS = ("deployment.environment.name", "deployment.environment")
STAGE_SPAN_KEYS = ("langfuse.environment", "environment")


@dataclass(slots=True)
class Call:
    """One counted model call, with everything attribution needs (no registry lookups yet)."""

    trace_id: str
    span_id: str
    time: float | None
    time_source: str
    route_value: str | None  # as found; mapped to a registry route later
    route_key: str | None
    stage_value: str | None
    stage_key: str | None
    model: str | None  # served model string (or requested, when nothing served is reported)
    model_key: str | None
    served_inferred: bool
    stamp: str | None  # modelctl.model: name@version
    prompt_name: str | None
    prompt_version: str | None
    prompt_stamp: str | None  # modelctl.prompt
    provider: str | None
    fallback: bool | None  # explicit (attribute or gateway evidence); None when unknown
    fallback_source: str | None
    error: bool
    end: float | None
    count: int = 1
    failed_sibling: bool = False  # a failed model call came first under the same parent
    http_route: str | None = None
    service: str | None = None
    sibling_models: tuple[str, ...] = ()  # model strings of failed earlier siblings
    source: str = ""


def _get(span: Span, keys: Iterable[str]) -> tuple[Any, str | None]:
    for key in keys:
        value = span.attrs.get(key)
        if value not in (None, ""):
            return value, key
    return None, None


def operation(span: Span) -> str | None:
    """The GenAI operation, or "" when unknown, or None for spans that are not model calls."""
    attrs = span.attrs
    op = attrs.get("gen_ai.operation.name") or attrs.get("llm.request.type")
    if op:
        return None if op in EXCLUDED_OPERATIONS else str(op)
    kind = attrs.get("openinference.span.kind")
    if kind:
        return _OPENINFERENCE.get(str(kind).upper())
    kind = attrs.get("gen_ai.span.kind") or attrs.get("fi.span.kind")
    if kind:
        mapped = _OPENINFERENCE.get(str(kind).upper())
        return mapped if mapped else None
    if str(attrs.get("traceloop.span.kind", "")).lower() in _NOT_MODEL_KINDS:
        return None
    if attrs.get("langfuse.observation.type") not in (None, "GENERATION"):
        return None
    return ""


def model_string(span: Span, lenient: bool) -> tuple[str | None, str | None, bool]:
    value, key = _get(span, SERVED_KEYS)
    if value is not None:
        return str(value), key, False
    value, key = _get(span, REQUESTED_KEYS)
    if value is not None:
        return str(value), key, True
    if lenient:
        value, key = _get(span, LENIENT_KEYS)
        if value is not None:
            return str(value), key, True
    return None, None, False


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no", ""):
            return False
    return None


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def explicit_fallback(span: Span) -> tuple[bool | None, str | None]:
    attrs = span.attrs
    if "modelctl.fallback" in attrs:
        flag = _truthy(attrs["modelctl.fallback"])
        if flag is not None:
            return flag, "modelctl.fallback"
    for key in (
        "metadata.attempted_fallbacks",
        "http.response.header.x-litellm-attempted-fallbacks",
    ):
        if key in attrs and _positive(attrs[key]):
            return True, key
    original, group = attrs.get("metadata.original_model_group"), attrs.get("metadata.model_group")
    if original and group and original != group:
        return True, "metadata.original_model_group"
    index = attrs.get("http.response.header.x-portkey-last-used-option-index")
    if index not in (None, "") and str(index) != "0":
        return True, "x-portkey-last-used-option-index"
    return None, None


def prompt_of(span: Span) -> tuple[str | None, str | None, str | None]:
    stamp = span.attrs.get("modelctl.prompt")
    if stamp:
        return None, None, str(stamp)
    for name_key, version_key in PROMPT_KEYS:
        name = span.attrs.get(name_key)
        if name:
            version = span.attrs.get(version_key)
            if version is None and name_key == "traceloop.prompt.key":
                version = span.attrs.get("traceloop.prompt.version_name")
            return str(name), None if version in (None, "") else str(version), None
    return None, None, None


class TraceMemory:
    """Route and stage stamps of recent spans, by trace, for ancestors in earlier batches.

    Bounded: the oldest traces are forgotten first, so memory stays flat on huge files.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self.traces: OrderedDict[
            str, dict[str, tuple[str | None, str | None, str | None, str | None]]
        ] = OrderedDict()

    def remember(
        self, span: Span, info: tuple[str | None, str | None, str | None, str | None]
    ) -> None:
        spans = self.traces.get(span.trace_id)
        if spans is None:
            spans = self.traces[span.trace_id] = {}
            if len(self.traces) > self.limit:
                self.traces.popitem(last=False)
        spans[span.span_id] = info

    def lookup(
        self, trace_id: str, span_id: str
    ) -> tuple[str | None, str | None, str | None, str | None] | None:
        spans = self.traces.get(trace_id)
        return spans.get(span_id) if spans else None


def calls_in(batch: list[Span], memory: TraceMemory, *, lenient: bool = True) -> list[Call]:
    """The counted model calls of one batch (leaf rule applied), with inherited context."""
    by_id = {(s.trace_id, s.span_id): s for s in batch if s.span_id}
    model_spans = []
    for span in batch:
        op = operation(span)
        if op is None:
            continue
        has_model = span.attrs.get("modelctl.model") or model_string(span, lenient)[0]
        if has_model:
            model_spans.append(span)
    # Leaf rule: a model span with a model-span descendant is a wrapper; count the innermost.
    model_ids = {(s.trace_id, s.span_id) for s in model_spans}
    wrappers: set[tuple[str, str]] = set()
    for span in model_spans:
        parent = span.parent_id
        seen = 0
        while parent and seen < 64:
            key = (span.trace_id, parent)
            if key in model_ids:
                wrappers.add(key)
            up = by_id.get(key)
            parent = up.parent_id if up else None
            seen += 1

    def context(span: Span) -> tuple[str | None, str | None, str | None, str | None]:
        route, route_key = _get(span, ROUTE_KEYS)
        stage = span.attrs.get("modelctl.stage")
        http = span.attrs.get("http.route") if span.kind == "server" else None
        return (
            f"{route_key}={route}" if route else None,
            f"modelctl.stage={stage}" if stage else None,
            str(http) if http else None,
            None,
        )

    for span in batch:
        info = context(span)
        if info[0] or info[1] or info[2]:
            memory.remember(span, info)

    counted = [s for s in model_spans if (s.trace_id, s.span_id) not in wrappers]
    out = []
    for span in counted:
        out.append(_call(span, by_id, memory, lenient))
    _sibling_fallbacks(out, by_id)
    return out


def _inherited(
    span: Span, by_id: dict[tuple[str, str], Span], memory: TraceMemory
) -> tuple[str | None, str | None, str | None]:
    """(route key=value, stage key=value, http.route) from the nearest ancestors."""
    route = stage = http = None
    parent = span.parent_id
    hops = 0
    while parent and hops < 64 and not (route and stage and http):
        key = (span.trace_id, parent)
        up = by_id.get(key)
        if up is not None:
            value, which = _get(up, ROUTE_KEYS)
            if route is None and value:
                route = f"{which}={value}"
            if stage is None and up.attrs.get("modelctl.stage"):
                stage = f"modelctl.stage={up.attrs['modelctl.stage']}"
            if http is None and up.kind == "server" and up.attrs.get("http.route"):
                http = str(up.attrs["http.route"])
            parent = up.parent_id
        else:
            remembered = memory.lookup(span.trace_id, parent)
            if remembered is not None:
                route = route or remembered[0]
                stage = stage or remembered[1]
                http = http or remembered[2]
            break
        hops += 1
    return route, stage, http


def _call(
    span: Span, by_id: dict[tuple[str, str], Span], memory: TraceMemory, lenient: bool
) -> Call:
    route, route_key = _get(span, ROUTE_KEYS)
    route_text = f"{route_key}={route}" if route else None
    stage_text: str | None = None
    if span.attrs.get("modelctl.stage"):
        stage_text = f"modelctl.stage={span.attrs['modelctl.stage']}"
    inherited_route, inherited_stage, http = _inherited(span, by_id, memory)
    route_text = route_text or inherited_route
    stage_text = stage_text or inherited_stage
    if stage_text is None:
        for key in STAGE_RESOURCE_KEYS:
            if span.resource.get(key):
                stage_text = f"{key}={span.resource[key]}"
                break
    if stage_text is None:
        for key in STAGE_SPAN_KEYS:
            if span.attrs.get(key):
                stage_text = f"{key}={span.attrs[key]}"
                break
    if route_text is None and span.resource.get("modelctl.route"):
        route_text = f"modelctl.route={span.resource['modelctl.route']}"
    model, model_key, inferred = model_string(span, lenient)
    stamp = span.attrs.get("modelctl.model")
    version = span.attrs.get("modelctl.model.version")
    if stamp and "@" not in str(stamp) and version:
        stamp = f"{stamp}@{version}"
    prompt_name, prompt_version, prompt_stamp = prompt_of(span)
    provider, _ = _get(span, PROVIDER_KEYS)
    fallback, fallback_source = explicit_fallback(span)
    route_value, route_from = _split(route_text)
    stage_value, stage_from = _split(stage_text)
    return Call(
        trace_id=span.trace_id,
        span_id=span.span_id,
        time=span.start,
        time_source=span.time_source,
        route_value=route_value,
        route_key=route_from,
        stage_value=stage_value,
        stage_key=stage_from,
        model=model,
        model_key=model_key,
        served_inferred=inferred,
        stamp=str(stamp) if stamp else None,
        prompt_name=prompt_name,
        prompt_version=prompt_version,
        prompt_stamp=prompt_stamp,
        provider=str(provider).lower() if provider else None,
        fallback=fallback,
        fallback_source=fallback_source,
        error=span.error,
        end=span.end,
        count=span.count,
        http_route=http,
        service=str(span.resource.get("service.name"))
        if span.resource.get("service.name")
        else None,
        source=span.source,
    )


def _split(text: str | None) -> tuple[str | None, str | None]:
    if text is None:
        return None, None
    key, _, value = text.partition("=")
    return value, key


def _sibling_fallbacks(calls: list[Call], by_id: dict[tuple[str, str], Span]) -> None:
    """Mark calls that come after a failed model call under the same parent."""
    groups: dict[tuple[str, str | None], list[Call]] = {}
    for call in calls:
        span = by_id.get((call.trace_id, call.span_id))
        parent = span.parent_id if span else None
        if call.trace_id:
            groups.setdefault((call.trace_id, parent), []).append(call)
    for siblings in groups.values():
        if len(siblings) < 2:
            continue
        siblings.sort(key=lambda c: c.time or 0.0)
        failed: list[str] = []
        for call in siblings:
            if failed and not call.error:
                call.failed_sibling = True
                call.sibling_models = tuple(failed)
            if call.error and call.model:
                failed.append(call.model)
