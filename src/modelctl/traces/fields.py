"""What one span says: the keys every rule reads, in priority order, and the `Call` a model
span records (docs/traces.md, "Which spans count" and "Which keys are read").

Shared by the readers (which build calls while converting spans) and the call rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Route keys in priority order (the index is the rank). http.route counts only on SERVER
# spans and service.name only as a resource attribute.
ROUTE_KEYS = (
    "modelctl.route",
    "metadata.model_group",
    "model_group",
    "gen_ai.workflow.name",
    "gen_ai.agent.name",
    "traceloop.association.properties.route",
    "traceloop.workflow.name",
    "langfuse.trace.name",
    "http.route",
    "service.name",
)
HTTP_RANK = ROUTE_KEYS.index("http.route")
SERVICE_RANK = ROUTE_KEYS.index("service.name")
STAGE_KEYS = (
    "modelctl.stage",
    "deployment.environment.name",
    "deployment.environment",
    "langfuse.environment",
    "environment",
)
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
MODEL_KEYS = frozenset(["modelctl.model", *SERVED_KEYS, *REQUESTED_KEYS, *LENIENT_KEYS])
PROMPT_KEYS = (
    ("gen_ai.prompt.name", "gen_ai.prompt.version"),
    ("langfuse.observation.prompt.name", "langfuse.observation.prompt.version"),
    ("traceloop.prompt.key", "traceloop.prompt.version"),
    ("gen_ai.prompt.template.name", "gen_ai.prompt.template.version"),
    ("llm.prompt_template.name", "llm.prompt_template.version"),
)
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
FALLBACK_KEYS = frozenset(
    """
    modelctl.fallback metadata.attempted_fallbacks hidden_params metadata.original_model_group
    http.response.header.x-litellm-attempted-fallbacks
    http.response.header.x-portkey-last-used-option-index
    """.split()  # noqa: SIM905  (a word list reads better than a list literal)
)
OPERATION_KEYS = frozenset(
    """
    gen_ai.operation.name llm.request.type openinference.span.kind gen_ai.span.kind fi.span.kind
    traceloop.span.kind langfuse.observation.type
    """.split()  # noqa: SIM905
)
_PROMPT_NAMES = frozenset(["modelctl.prompt", *(name for name, _ in PROMPT_KEYS)])
OTHER_KEYS = frozenset(
    [
        "modelctl.model.version", "modelctl.fallback.reason", "modelctl.attempt", "error.type",
        "traceloop.prompt.version_name", "hidden_params", *_PROMPT_NAMES,
        *(version for _, version in PROMPT_KEYS), *PROVIDER_KEYS, *FALLBACK_KEYS,
        *OPERATION_KEYS,
    ]
)  # fmt: skip
# Every key some rule reads; everything else is dropped while reading.
WANTED = frozenset([*OTHER_KEYS, *MODEL_KEYS, *ROUTE_KEYS, *STAGE_KEYS])
CONTEXT_KEYS = frozenset([*ROUTE_KEYS, *STAGE_KEYS])

# A span's route and stage keys: ((rank, key, value), ...) each, sorted by rank.
Keys = tuple[tuple[tuple[int, str, str], ...], tuple[tuple[int, str, str], ...]]
_RANKS: dict[str, tuple[int, int]] = {
    **{key: (0, rank) for rank, key in enumerate(ROUTE_KEYS)},
    **{key: (1, rank) for rank, key in enumerate(STAGE_KEYS)},
}


def keys_of(attrs: dict[str, Any], server: bool, resource: bool = False) -> Keys | None:
    """The route and stage keys of a span (or of a resource); None when it has none."""
    routes: list[tuple[int, str, str]] = []
    stages: list[tuple[int, str, str]] = []
    ranks = _RANKS
    for key, value in attrs.items():
        found = ranks.get(key)
        if found is None or value is None or value == "":
            continue
        which, rank = found
        text = value if type(value) is str else str(value)
        if which:
            stages.append((rank, key, text))
        elif (rank != HTTP_RANK or server) and (rank != SERVICE_RANK or resource):
            routes.append((rank, key, text))
    if not routes and not stages:
        return None
    if len(routes) > 1:
        routes.sort()
    if len(stages) > 1:
        stages.sort()
    return tuple(routes), tuple(stages)


# --- which spans are model calls -------------------------------------------------------------

EXCLUDED_OPERATIONS = frozenset(
    ["invoke_agent", "create_agent", "invoke_workflow", "execute_tool", "plan", "retrieval",
     "create_memory", "update_memory", "search_memory", "delete_memory"]
)  # fmt: skip
_OPENINFERENCE = {"LLM": "chat", "EMBEDDING": "embeddings", "RERANKER": "rerank"}
_NOT_MODEL_KINDS = frozenset(["workflow", "task", "agent", "tool"])


def operation(attrs: dict[str, Any]) -> str | None:
    """The GenAI operation ("" when unknown), or None for a span that is not a model call:
    an excluded operation or kind, or a span with no model key at all."""
    if MODEL_KEYS.isdisjoint(attrs):
        return None
    if OPERATION_KEYS.isdisjoint(attrs):
        return ""
    op = attrs.get("gen_ai.operation.name") or attrs.get("llm.request.type")
    if op:
        return None if op in EXCLUDED_OPERATIONS else str(op)
    kind = attrs.get("openinference.span.kind")
    if kind:
        return _OPENINFERENCE.get(str(kind).upper())
    kind = attrs.get("gen_ai.span.kind") or attrs.get("fi.span.kind")
    if kind:
        return _OPENINFERENCE.get(str(kind).upper())
    if str(attrs.get("traceloop.span.kind", "")).lower() in _NOT_MODEL_KINDS:
        return None
    if attrs.get("langfuse.observation.type") not in (None, "GENERATION"):
        return None
    return ""


# --- what a model span says ---------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One model call, with everything attribution needs. Route and stage are filled in by
    the call rules (calls.py), from the span, its resource and its ancestors."""

    trace_id: str
    span_id: str
    parent_id: str | None
    time: float | None  # seconds since the epoch, UTC
    time_source: str  # start, end, event, ancestor, assumed, none
    model: str | None  # served model string (or requested, when nothing served is reported)
    model_key: str | None  # a requested-model key means the served model was not reported
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
    resource_keys: Keys | None = None
    route: str | None = None  # the registry route
    route_how: str = "no-route"  # the key that named it (modelctl.route, match:<key>) or why not
    stage: str = ""  # the registry stage
    failed_sibling: bool = False  # a failed model call came first under the same parent
    sibling_models: tuple[str, ...] = ()  # model strings of those failed calls


def _hidden(attrs: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM's `hidden_params` (a JSON string on its OTel spans), parsed when first needed."""
    value = attrs.get("hidden_params")
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = {}
        value = attrs["hidden_params"] = parsed if isinstance(parsed, dict) else {}
    return value if isinstance(value, dict) else {}


def get(attrs: dict[str, Any], keys: Iterable[str]) -> tuple[Any, str | None]:
    """The first non-empty value among `keys`, and its key."""
    for key in keys:
        value = attrs.get(key)
        if value is None and key.startswith("hidden_params.") and "hidden_params" in attrs:
            value = _hidden(attrs).get(key[len("hidden_params.") :])
        if value is not None and value != "":
            return value, key
    return None, None


def model_string(attrs: dict[str, Any], lenient: bool) -> tuple[str | None, str | None, bool]:
    """(model string, the key it came from, whether it is only the requested model)."""
    value, key = get(attrs, SERVED_KEYS)
    if value is not None:
        return str(value), key, False
    value, key = get(attrs, REQUESTED_KEYS)
    if value is not None:
        return str(value), key, True
    if lenient:
        value, key = get(attrs, LENIENT_KEYS)
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
        if lowered in ("false", "0", "no"):
            return False
    return None


def _positive(value: Any) -> bool:
    try:
        return float(value) > 0
    except (TypeError, ValueError):
        return False


def explicit_fallback(attrs: dict[str, Any]) -> tuple[bool | None, str | None]:
    """modelctl.fallback, then gateway evidence (docs/traces.md, "Fallbacks")."""
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
    if "hidden_params" in attrs:
        headers = _hidden(attrs).get("additional_headers")
        if isinstance(headers, dict) and _positive(headers.get("x-litellm-attempted-fallbacks")):
            return True, "hidden_params.additional_headers"
    original, group = attrs.get("metadata.original_model_group"), attrs.get("metadata.model_group")
    if original and group and original != group:
        return True, "metadata.original_model_group"
    if isinstance(group, str) and FALLBACK_GROUP.search(group):
        return True, "metadata.model_group"  # a fallback group of `modelctl export litellm`
    index = attrs.get("http.response.header.x-portkey-last-used-option-index")
    if index not in (None, "") and str(index) != "0":
        return True, "x-portkey-last-used-option-index"
    return None, None


# The model group `export litellm` names a route's fallback step (export.litellm.fallback_group).
FALLBACK_GROUP = re.compile(r"/fallback-[0-9]+$")


def prompt_of(attrs: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(prompt name, version, modelctl.prompt stamp)."""
    if _PROMPT_NAMES.isdisjoint(attrs):
        return None, None, None
    stamp = attrs.get("modelctl.prompt")
    if stamp:
        return None, None, str(stamp)
    for name_key, version_key in PROMPT_KEYS:
        name = attrs.get(name_key)
        if name:
            version = attrs.get(version_key)
            if version in (None, "") and name_key == "traceloop.prompt.key":
                version = attrs.get("traceloop.prompt.version_name")
            return str(name), None if version in (None, "") else str(version), None
    return None, None, None


def make_call(attrs: dict[str, Any], trace_id: str, span_id: str, parent_id: str | None,
              time: float | None, time_source: str, end: float | None, error: bool,
              lenient: bool, count: int = 1, resource_keys: Keys | None = None) -> Call | None:  # fmt: skip
    """The call a model span records; None when it names no model (only lenient-only keys
    while lenient keys are off)."""
    model, model_key, _ = model_string(attrs, lenient)
    stamp = attrs.get("modelctl.model")
    if not model and not stamp:
        return None
    if stamp:
        stamp = str(stamp)
        version = attrs.get("modelctl.model.version")
        if "@" not in stamp and version:
            stamp = f"{stamp}@{version}"
    prompt_name = prompt_version = prompt_stamp = None
    if not _PROMPT_NAMES.isdisjoint(attrs):
        prompt_name, prompt_version, prompt_stamp = prompt_of(attrs)
    provider = (  # PROVIDER_KEYS in order
        attrs.get("gen_ai.provider.name")
        or attrs.get("gen_ai.system")
        or attrs.get("llm.provider")
        or attrs.get("llm.system")
    )
    if provider:
        provider = str(provider).lower()
    fallback = fallback_source = None
    if not FALLBACK_KEYS.isdisjoint(attrs):
        fallback, fallback_source = explicit_fallback(attrs)
    return Call(
        trace_id, span_id, parent_id, time, time_source, model, model_key, stamp, prompt_name,
        prompt_version, prompt_stamp, provider or None, fallback, fallback_source, error, end,
        count, resource_keys,
    )  # fmt: skip
