"""Reading spans: OTLP JSON lines (the Collector file exporter), one OTLP JSON document, flat
JSONL spans (with Langfuse/Phoenix aliases), pre-aggregated counts CSV, gzip, stdin.

Everything is streamed batch by batch (one OTLP export request, or a run of flat rows), so
memory is bounded by the largest batch, never by the file. Only the attributes some rule
reads are kept (docs/traces.md, "Which keys are read").

Two readers share the per-span rules:

* `read_batches` gives every span as a `Span` (used by `explain`, which needs all of them);
* `read_call_batches` gives a `Batch`: `Span`s only for spans that can be model calls, plus
  the parent links and route/stage keys of every span, which is all the leaf rule and the
  ancestor lookups need. On OTLP lines it never builds an object for a span that carries no
  key a rule reads: that is most of a trace (HTTP, database, tool spans).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import io
import json
import operator
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelctl.errors import UsageError
from modelctl.lifecycle.history import parse_time
from modelctl.traces.fields import (
    CONTEXT_KEYS,
    MODEL_KEYS,
    WANTED,
    Call,
    Keys,
    keys_of,
    make_call,
    operation,
)

FORMATS = ("auto", "otlp-jsonl", "otlp-json", "flat-jsonl", "counts-csv")
FLAT_BATCH = 2000
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_AHEAD = 24 * 3600  # a span more than a day in the future has no usable time
READ_BUFFER = 1 << 16
_NESTED = ("metadata", "hidden_params")  # kvlists (or JSON strings) read as `parent.child`
_WANTED_OR_NESTED = frozenset([*WANTED, *_NESTED])
_get_span_id = operator.methodcaller("get", "spanId")


@dataclass(slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: float | None  # seconds since the epoch (UTC); None when unusable
    end: float | None
    error: bool
    attrs: dict[str, Any]
    resource: dict[str, Any] = field(default_factory=dict)
    kind: str = ""  # client, server, internal, ...
    time_source: str = "start"  # start, end, event, none
    source: str = ""  # file:line, for messages
    count: int = 1  # pre-aggregated rows carry their count
    resource_keys: Keys | None = None


@dataclass(slots=True)
class Batch:
    """What the call rules need from one batch: the calls of its model spans, and for every
    span its node (to find parents: a raw OTLP span dict, or a Span) and its route/stage keys."""

    models: list[Call]
    nodes: dict[str, Any]  # span id -> raw OTLP span dict or Span
    # span id -> (trace id, its route/stage keys, its parent id), for spans that carry any
    keys: dict[str, tuple[str, Keys, str | None]]
    source: str = ""
    canonical: bool = False  # raw OTLP ids are already lower-case hex: parents need no repair
    # OTLP: span lists whose spans without any wanted key are not in `nodes` until a walk
    # needs one (`index_all`); most model spans' ancestors carry keys (agent, SERVER span).
    pending: list[Any] | None = None

    def index_all(self, stats: ReadStats) -> bool:
        """Put every span of the batch in `nodes`; False when they already all were."""
        if not self.pending:
            return False
        for spans in self.pending:
            if self.canonical:
                self.nodes.update(zip(map(_get_span_id, spans), spans, strict=True))
            else:
                for raw in spans:
                    self.nodes[normalise_id(raw.get("spanId"), 16, stats)] = raw
        self.pending = None
        return True


@dataclass
class ReadStats:
    files: int = 0
    lines: int = 0
    spans: int = 0
    bad_lines: int = 0
    duplicates: int = 0  # model calls seen twice (same trace and span id)
    repairs: int = 0  # base64 ids, enum-name kinds and the like
    bad_times: int = 0
    unknown_unit_times: int = 0  # numbers of unknown unit read as no time (see --epoch-unit)
    bad_line_examples: list[str] = field(default_factory=list)


# --- opening -------------------------------------------------------------------------------------


def open_input(name: str, stack: contextlib.ExitStack) -> Any:
    """A buffered binary stream for a path or `-` (stdin); gzip is detected by magic bytes.
    What is opened here is closed by `stack`; stdin is never closed."""
    if name == "-":
        buffered: Any = sys.stdin.buffer
    else:
        path = Path(name)
        if path.is_dir():
            raise UsageError(
                f"trace file {name} is a folder", hint=f"give the files in it, e.g. {name}/*.jsonl"
            )
        if not path.exists():  # a pipe (`<(zcat spans.gz)`) or a device is read as it comes
            raise UsageError(f"trace file {name} does not exist")
        buffered = io.BufferedReader(stack.enter_context(path.open("rb", buffering=0)), READ_BUFFER)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        unzipped = stack.enter_context(gzip.GzipFile(fileobj=buffered, mode="rb"))
        return io.BufferedReader(unzipped, READ_BUFFER)
    return buffered


def detect(name: str, head: bytes) -> str:
    text = head.lstrip()
    lower = name.lower().removesuffix(".gz")
    if lower.endswith(".csv"):
        return "counts-csv"
    if text.startswith(b"{"):
        first_line, newline, _ = text.partition(b"\n")
        if b'"resourceSpans"' in first_line[:4096] or b'"batches"' in first_line[:4096]:
            if not newline:  # a line longer than what was peeked: not pretty-printed JSON
                return "otlp-jsonl"
            try:
                json.loads(first_line)
                return "otlp-jsonl"
            except ValueError:
                return "otlp-json"
        if b'"resourceSpans"' in text or b'"batches"' in text:
            return "otlp-json"
        return "flat-jsonl"
    raise UsageError(
        f"cannot tell the format of {name}",
        hint="pass --format otlp-jsonl, otlp-json, flat-jsonl or counts-csv",
    )


# --- values --------------------------------------------------------------------------------------


def _value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    for key in ("intValue", "boolValue", "doubleValue"):
        if key in v:
            value = v[key]
            if key == "intValue" and isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    return value
            return value
    if "arrayValue" in v:
        return [_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return {
            kv.get("key"): _value(kv.get("value"))
            for kv in (v["kvlistValue"] or {}).get("values", [])
        }
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _nested(out: dict[str, Any], key: str, value: Any) -> None:
    """`metadata` / `hidden_params` as a kvlist or a dict: keep the wanted `key.child` keys.
    A JSON string (LiteLLM's `hidden_params`) is kept whole and parsed only when read."""
    if isinstance(value, dict):
        for sub, subvalue in value.items():
            full = f"{key}.{sub}"
            if full in WANTED:
                out[full] = subvalue
            elif key == "hidden_params" and sub == "additional_headers":
                out["hidden_params"] = {"additional_headers": subvalue}
    elif key == "hidden_params" and isinstance(value, str):
        out["hidden_params"] = value


def otlp_attributes(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    """Only the wanted keys of an OTLP attribute list (last one wins)."""
    out: dict[str, Any] = {}
    for item in items or ():
        key = item.get("key")
        if key in WANTED:
            if key == "hidden_params":
                _nested(out, key, _value(item.get("value")))
            else:
                out[key] = _value(item.get("value"))
        elif key in _NESTED:
            _nested(out, key, _value(item.get("value")))
    return out


_HEX = frozenset("0123456789abcdef")


def normalise_id(value: Any, length: int, stats: ReadStats) -> str:
    """Hex ids, lower-cased; base64 ids (non-compliant exporters) decoded and counted."""
    if not value or not isinstance(value, str):
        return ""
    if len(value) == length and value.islower() and _HEX.issuperset(value):
        return value
    lowered = value.lower()
    if len(lowered) == length and _HEX.issuperset(lowered):
        return lowered
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return lowered
    if len(decoded) * 2 == length:
        stats.repairs += 1
        return decoded.hex()
    return lowered


def _fast_id(value: Any, length: int, stats: ReadStats) -> str:
    # Lower-case hex of the right length is the norm; anything else takes the slow path.
    if type(value) is str and len(value) == length and value.islower():
        return value
    return normalise_id(value, length, stats)


def otlp_parent(raw: dict[str, Any], stats: ReadStats) -> str | None:
    """The parent span id, or None for a root. A remote parent (another service's span) is a
    parent too: when that service exports to the same file, its keys apply."""
    return _fast_id(raw.get("parentSpanId"), 16, stats) or None


def _nanos(value: Any) -> float | None:
    if value in (None, "", 0, "0"):
        return None
    try:
        return int(value) / 1e9
    except (TypeError, ValueError):
        return None


def _sane(t: float | None, now: float, stats: ReadStats) -> float | None:
    if t is None:
        return None
    if t < MIN_TIME or t > now + MAX_AHEAD:
        stats.bad_times += 1
        return None
    return t


def otlp_start(raw: dict[str, Any], now: float, stats: ReadStats) -> float | None:
    """A span's usable start time only (for ancestors of a span that has none)."""
    return _sane(_nanos(raw.get("startTimeUnixNano")), now, stats)


_KINDS: dict[Any, str] = {
    1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer",
    "SPAN_KIND_INTERNAL": "internal", "SPAN_KIND_SERVER": "server", "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer", "SPAN_KIND_CONSUMER": "consumer",
}  # fmt: skip


def _times(
    raw: dict[str, Any], now: float, stats: ReadStats
) -> tuple[float | None, float | None, str]:
    """(start, end, which time the start is): the start, else the end, else the first event."""
    start = _sane(_nanos(raw.get("startTimeUnixNano")), now, stats)
    if start is not None:
        return start, _sane(_nanos(raw.get("endTimeUnixNano")), now, stats), "start"
    return _fallback_times(raw, now, stats)


def _fallback_times(
    raw: dict[str, Any], now: float, stats: ReadStats
) -> tuple[float | None, float | None, str]:
    """For a span whose start is unusable: its end, else its first event, else nothing."""
    end = _sane(_nanos(raw.get("endTimeUnixNano")), now, stats)
    if end is not None:
        return end, end, "end"
    events = [_nanos(e.get("timeUnixNano")) for e in raw.get("events") or () if isinstance(e, dict)]
    first_event = _sane(min((t for t in events if t), default=None), now, stats)
    if first_event is not None:
        return first_event, end, "event"
    return None, end, "none"


def _otlp_error(raw: dict[str, Any], attrs: dict[str, Any]) -> bool:
    status = raw.get("status")
    code = status.get("code") if isinstance(status, dict) else None
    return code in (2, "STATUS_CODE_ERROR", "2") or "error.type" in attrs


def _otlp_span(raw: dict[str, Any], attrs: dict[str, Any], resource: dict[str, Any],
               resource_keys: Keys | None, kind: str, trace_id: str, span_id: str, source: str,
               stats: ReadStats, now: float) -> Span:  # fmt: skip
    start, end, time_source = _times(raw, now, stats)
    return Span(
        trace_id, span_id, otlp_parent(raw, stats), str(raw.get("name") or ""), start, end,
        _otlp_error(raw, attrs), attrs, resource, kind, time_source, source, 1, resource_keys,
    )  # fmt: skip


def _otlp_groups(doc: Any) -> list[Any]:
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    groups = doc.get("resourceSpans", doc.get("batches"))
    if not isinstance(groups, list):
        raise ValueError("no resourceSpans")
    return groups


def otlp_batch(doc: Any, source: str, stats: ReadStats, now: float, lenient: bool = True) -> Batch:
    """One export request as a Batch: objects only for spans that carry a key a rule reads.

    Ids are taken as they are when the request's first span id is lower-case hex (as the
    OTLP/JSON spec writes them); otherwise every id of the request is normalised. Spans that
    carry no wanted key are only indexed later if an ancestor walk needs them
    (`Batch.index_all`). This is the hot loop of `coverage`: docs/traces.md, "Bounded memory",
    and benchmarks/bench_traces.py."""
    models: list[Call] = []
    nodes: dict[str, Any] = {}
    keys: dict[str, tuple[str, Keys, str | None]] = {}
    lists: list[Any] = []
    wanted, nested = _WANTED_OR_NESTED, _NESTED
    no_context, no_model = CONTEXT_KEYS.isdisjoint, MODEL_KEYS.isdisjoint
    canonical: bool | None = None
    for group in _otlp_groups(doc):
        resource = otlp_attributes((group.get("resource") or {}).get("attributes"))
        resource_keys = keys_of(resource, False, resource=True)
        for scope in group.get("scopeSpans") or group.get("instrumentationLibrarySpans") or ():
            spans = scope.get("spans") or ()
            if not spans:
                continue
            stats.spans += len(spans)
            if canonical is None:
                first = spans[0].get("spanId")
                canonical = type(first) is str and len(first) == 16 and first.islower()
            lists.append(spans)
            for raw in spans:
                attrs: dict[str, Any] | None = None
                for item in raw.get("attributes") or ():
                    key = item["key"]
                    if key in wanted:
                        if attrs is None:
                            attrs = {}
                        value = item.get("value")
                        if key in nested:
                            _nested(attrs, key, _value(value))
                        elif type(value) is dict and "stringValue" in value:
                            attrs[key] = value["stringValue"]  # last one wins
                        else:
                            attrs[key] = _value(value)
                if attrs is None:
                    continue  # no key any rule reads: a link in the tree only
                span_id = raw.get("spanId")
                if not canonical:
                    span_id = normalise_id(span_id, 16, stats)
                nodes[span_id] = raw
                trace_id = raw.get("traceId")
                if not canonical or type(trace_id) is not str or len(trace_id) != 32:
                    trace_id = normalise_id(trace_id, 32, stats)
                # otlp_parent, inlined for the common case
                parent = (raw.get("parentSpanId") or None) if canonical else otlp_parent(raw, stats)
                kind = raw.get("kind")
                if type(kind) is str and kind in _KINDS:
                    stats.repairs += 1
                if not no_context(attrs):
                    found = keys_of(attrs, _KINDS.get(kind) == "server")
                    if found is not None:
                        keys[span_id] = (trace_id, found, parent)
                if no_model(attrs) or operation(attrs) is None:
                    continue
                # the end time only matters when there is no start (explain reads it elsewhere)
                start = raw.get("startTimeUnixNano")  # _sane(_nanos(start)), inlined
                if type(start) is str and start.isdigit() and start != "0":
                    start = int(start) / 1e9
                    if not MIN_TIME <= start <= now + MAX_AHEAD:
                        start = None
                        stats.bad_times += 1
                else:
                    start = _sane(_nanos(start), now, stats)
                if start is None:
                    start, end, time_source = _fallback_times(raw, now, stats)
                else:
                    end, time_source = None, "start"
                call = make_call(
                    attrs, trace_id, span_id, parent, start, time_source, end,
                    _otlp_error(raw, attrs), lenient, 1, resource_keys,
                )  # fmt: skip
                if call is not None:
                    models.append(call)
    return Batch(models, nodes, keys, source, bool(canonical), lists)


def otlp_spans(doc: Any, source: str, stats: ReadStats, now: float) -> list[Span]:
    """Every span of one export request as a Span."""
    out: list[Span] = []
    for group in _otlp_groups(doc):
        resource = otlp_attributes((group.get("resource") or {}).get("attributes"))
        resource_keys = keys_of(resource, False, resource=True)
        for scope in group.get("scopeSpans") or group.get("instrumentationLibrarySpans") or ():
            for raw in scope.get("spans") or ():
                stats.spans += 1
                kind = raw.get("kind")
                kind_name = _KINDS.get(kind, "") if kind is not None else ""
                if type(kind) is str and kind_name:
                    stats.repairs += 1
                out.append(
                    _otlp_span(raw, otlp_attributes(raw.get("attributes")), resource,
                               resource_keys, kind_name, _fast_id(raw.get("traceId"), 32, stats),
                               _fast_id(raw.get("spanId"), 16, stats), source, stats, now)
                )  # fmt: skip
    return out


def batch_of(spans: list[Span], lenient: bool = True) -> Batch:
    """A Batch from Span objects (flat rows, counts, explain)."""
    nodes: dict[str, Any] = {}
    keys: dict[str, tuple[str, Keys, str | None]] = {}
    models = []
    for span in spans:
        if span.span_id:
            nodes[span.span_id] = span
            found = keys_of(span.attrs, span.kind == "server")
            if found is not None:
                keys[span.span_id] = (span.trace_id, found, span.parent_id)
        if operation(span.attrs) is not None:
            call = span_call(span, lenient)
            if call is not None:
                models.append(call)
    return Batch(models, nodes, keys, spans[0].source if spans else "")


def span_call(span: Span, lenient: bool = True) -> Call | None:
    return make_call(
        span.attrs, span.trace_id, span.span_id, span.parent_id, span.start, span.time_source,
        span.end, span.error, lenient, span.count, span.resource_keys,
    )  # fmt: skip


# --- flat spans ----------------------------------------------------------------------------------


def _first(row: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = row.get(key)
        if value not in (None, ""):
            return value
    return None


EPOCH_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def flat_time(
    value: Any, key: str, unit: float | None = None, stats: ReadStats | None = None
) -> float | None:
    """ISO 8601 (naive means UTC); numbers where the field's unit is known, or in `unit`
    (seconds per unit, from --epoch-unit). A number of unknown unit is no time (counted in
    `stats.unknown_unit_times`): seconds, milliseconds or nanoseconds is never guessed."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if key.endswith(("unix_nano", "UnixNano")):
            return value / 1e9
        if key == "startTime" and isinstance(value, float):  # LiteLLM: float seconds
            return float(value)
        return _in_unit(float(value), unit, stats)
    text = str(value).strip()
    if text.isdigit():
        if key.endswith(("unix_nano", "UnixNano")):
            return int(text) / 1e9
        return _in_unit(float(text), unit, stats)
    parsed = parse_time(text)  # naive means UTC: Langfuse and others write naive UTC
    return parsed[0].timestamp() if parsed else None


def _in_unit(number: float, unit: float | None, stats: ReadStats | None) -> float | None:
    if unit is not None:
        return number * unit
    if stats is not None:
        stats.unknown_unit_times += 1
    return None


_TIME_KEYS = ("start_time", "startTime", "start_time_unix_nano", "startTimeUnixNano", "timestamp")
_END_KEYS = ("end_time", "endTime", "end_time_unix_nano", "endTimeUnixNano")
_LANGFUSE = (
    ("provided_model_name", "gen_ai.request.model"),
    ("model", "gen_ai.response.model"),
    ("prompt_name", "gen_ai.prompt.name"),
    ("prompt_version", "gen_ai.prompt.version"),
    ("environment", "langfuse.environment"),
    ("trace_name", "langfuse.trace.name"),
)
_LANGFUSE_TYPES = frozenset(["GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN",
                             "RETRIEVER", "EVALUATOR", "EMBEDDING", "GUARDRAIL"])  # fmt: skip


def flat_span(
    row: dict[str, Any], source: str, stats: ReadStats, now: float, unit: float | None = None
) -> Span:
    raw_context = row.get("context")
    context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    attrs_in = row.get("attributes")
    attrs: dict[str, Any] = {}
    if isinstance(attrs_in, dict):
        for key, value in attrs_in.items():
            if key in WANTED and key != "hidden_params":
                attrs[key] = value
            elif key in _NESTED:
                _nested(attrs, key, value)
    for key, value in row.items():
        if key.startswith("attributes.") and key[11:] in WANTED:
            attrs[key[11:]] = value
    for theirs, ours in _LANGFUSE:  # Langfuse observation exports
        if row.get(theirs) not in (None, "") and ours not in attrs:
            attrs[ours] = str(row[theirs]) if theirs == "prompt_version" else row[theirs]
    kind_of_row = row.get("type")
    if kind_of_row in _LANGFUSE_TYPES and "langfuse.observation.type" not in attrs:
        attrs["langfuse.observation.type"] = kind_of_row
        if kind_of_row == "GENERATION" and "gen_ai.operation.name" not in attrs:
            attrs["gen_ai.operation.name"] = "chat"
    raw_resource = row.get("resource")
    resource = (
        {k: v for k, v in raw_resource.items() if k in WANTED}
        if isinstance(raw_resource, dict)
        else {}
    )
    start_key = next((k for k in _TIME_KEYS if row.get(k) not in (None, "")), "")
    start = (
        _sane(flat_time(row.get(start_key), start_key, unit, stats), now, stats)
        if start_key
        else None
    )
    end_key = next((k for k in _END_KEYS if row.get(k) not in (None, "")), "")
    end = _sane(flat_time(row.get(end_key), end_key, unit, None), now, stats) if end_key else None
    time_source = "start" if start is not None else ("end" if end is not None else "none")
    status = row.get("status")
    if isinstance(status, dict):
        status = status.get("code") or status.get("status_code")
    if status is None:
        status = row.get("status_code")
    error = (
        str(status).lower() in ("error", "2", "status_code_error")
        or row.get("level") == "ERROR"
        or "error.type" in attrs
    )
    kind = str(row.get("kind") or row.get("span_kind") or "").lower().removeprefix("span_kind_")
    return Span(
        normalise_id(_first(row, "trace_id", "traceId") or context.get("trace_id"), 32, stats),
        normalise_id(_first(row, "span_id", "spanId", "id") or context.get("span_id"), 16, stats),
        normalise_id(
            _first(row, "parent_span_id", "parentSpanId", "parent_id", "parent_observation_id"),
            16,
            stats,
        )
        or None,
        str(row.get("name") or ""),
        start if start is not None else end,
        end,
        error,
        attrs,
        resource,
        kind,
        time_source,
        source,
        1,
        keys_of(resource, False, resource=True),
    )


# --- pre-aggregated counts ---------------------------------------------------------------------


def count_rows(
    stream: Any, name: str, stats: ReadStats, now: float, unit: float | None = None
) -> Iterator[list[Span]]:
    """CSV of pre-aggregated span counts: route, stage, model, time, count[, prompt, fallback]."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    try:
        yield from _count_rows(text, name, stats, now, unit)
    finally:
        text.detach()  # the stream is closed by its opener (never stdin)


def _count_rows(
    text: Any, name: str, stats: ReadStats, now: float, unit: float | None
) -> Iterator[list[Span]]:
    import csv

    reader = csv.DictReader(text)
    needed = {"route", "stage", "model", "time", "count"}
    missing = needed - set(reader.fieldnames or [])
    if missing:
        raise UsageError(
            f"{name}:1: a counts CSV needs the columns {', '.join(sorted(needed))}; "
            f"missing {', '.join(sorted(missing))}",
            hint="optional columns: prompt (NAME@VERSION), fallback (true/false)",
        )
    batch: list[Span] = []
    for number, row in enumerate(reader, 2):
        stats.lines += 1
        try:
            count = int(row["count"])
        except (TypeError, ValueError):
            raise UsageError(f"{name}:{number}: count {row['count']!r} is not an integer") from None
        attrs: dict[str, Any] = {"gen_ai.response.model": row["model"]}
        for column, key in (("route", "modelctl.route"), ("stage", "modelctl.stage"),
                            ("prompt", "modelctl.prompt"), ("fallback", "modelctl.fallback")):  # fmt: skip
            if row.get(column):
                attrs[key] = row[column]
        start = _sane(flat_time(row["time"], "time", unit, stats), now, stats)
        batch.append(
            Span("", f"{name}:{number}", None, "", start, None, False, attrs, {}, "client",
                 "start" if start is not None else "none", f"{name}:{number}", count)
        )  # fmt: skip
        stats.spans += count
        if len(batch) >= FLAT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the readers --------------------------------------------------------------------------------


def _bad(stats: ReadStats, name: str, number: int, exc: Exception, skip: bool) -> None:
    if not skip:
        raise UsageError(
            f"{name}:{number}: not a valid span record: {exc}",
            hint="fix or drop the line, or pass --skip-bad-lines to count such lines and go on",
        )
    stats.bad_lines += 1
    if len(stats.bad_line_examples) < 5:
        stats.bad_line_examples.append(f"{name}:{number}: {exc}")


def _inputs(names: list[str], fmt: str, stats: ReadStats) -> Iterator[tuple[str, str, Any]]:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint=f"one of: {', '.join(FORMATS)}")
    for name in names:
        stats.files += 1
        with contextlib.ExitStack() as stack:
            stream = open_input(name, stack)
            chosen = fmt if fmt != "auto" else detect(name, stream.peek(READ_BUFFER))
            yield name, chosen, stream


def _records(
    stream: Any, name: str, stats: ReadStats, skip: bool, on_bytes: Any, needles: tuple[str, ...]
) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON object) for each non-blank line; bad lines raise or count.
    Lines are decoded as UTF-8 (text parses faster than bytes); invalid bytes are replaced."""
    loads = json.loads
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="\n")
    try:
        yield from _parsed(text, name, stats, skip, on_bytes, needles, loads)
    finally:
        text.detach()  # the stream is closed by its opener (never stdin)


def _parsed(text: Any, name: str, stats: ReadStats, skip: bool, on_bytes: Any,
            needles: tuple[str, ...], loads: Any) -> Iterator[tuple[int, Any]]:  # fmt: skip
    for number, line in enumerate(text, 1):
        if on_bytes is not None:
            on_bytes(len(line))
        if needles and not any(n in line for n in needles):
            continue
        if line.isspace():
            continue
        stats.lines += 1
        try:
            doc = loads(line)
        except ValueError as exc:
            _bad(stats, name, number, exc, skip)
            continue
        if not isinstance(doc, dict):
            _bad(stats, name, number, ValueError("not a JSON object"), skip)
            continue
        yield number, doc


def read_call_batches(
    names: list[str],
    fmt: str = "auto",
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    on_bytes: Any = None,
    lenient: bool = True,
    epoch_unit: float | None = None,
) -> Iterator[Batch]:
    """Batches for coverage, from every input in order."""
    stats = stats if stats is not None else ReadStats()
    now = datetime.now(UTC).timestamp()
    for name, chosen, stream in _inputs(names, fmt, stats):
        if chosen == "otlp-jsonl":
            for number, doc in _records(stream, name, stats, skip_bad_lines, on_bytes, ()):
                try:
                    yield otlp_batch(doc, f"{name}:{number}", stats, now, lenient)
                except (ValueError, AttributeError, TypeError, KeyError) as exc:
                    _bad(stats, name, number, exc, skip_bad_lines)
        else:
            for spans in _span_lists(
                name, chosen, stream, stats, now, skip_bad_lines, on_bytes, (), epoch_unit
            ):
                yield batch_of(spans, lenient)


def read_batches(
    names: list[str],
    fmt: str = "auto",
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    on_bytes: Any = None,
    needles: tuple[str, ...] = (),
    epoch_unit: float | None = None,
) -> Iterator[list[Span]]:
    """Every span as a Span, batch by batch. With `needles`, OTLP and flat lines that contain
    none of them are skipped unparsed (explain looks for one trace id)."""
    stats = stats if stats is not None else ReadStats()
    now = datetime.now(UTC).timestamp()
    for name, chosen, stream in _inputs(names, fmt, stats):
        yield from _span_lists(
            name, chosen, stream, stats, now, skip_bad_lines, on_bytes, needles, epoch_unit
        )


def _span_lists(name: str, fmt: str, stream: Any, stats: ReadStats, now: float, skip: bool,
                on_bytes: Any, needles: tuple[str, ...],
                unit: float | None = None) -> Iterator[list[Span]]:  # fmt: skip
    if fmt == "counts-csv":
        yield from count_rows(stream, name, stats, now, unit)
    elif fmt == "otlp-json":
        stats.lines += 1
        try:
            yield otlp_spans(json.loads(stream.read()), f"{name}:1", stats, now)
        except (ValueError, AttributeError, TypeError, KeyError) as exc:
            _bad(stats, name, 1, exc, skip)
    elif fmt == "otlp-jsonl":
        for number, doc in _records(stream, name, stats, skip, on_bytes, needles):
            try:
                yield otlp_spans(doc, f"{name}:{number}", stats, now)
            except (ValueError, AttributeError, TypeError, KeyError) as exc:
                _bad(stats, name, number, exc, skip)
    else:
        batch: list[Span] = []
        for number, doc in _records(stream, name, stats, skip, on_bytes, needles):
            try:
                batch.append(flat_span(doc, f"{name}:{number}", stats, now, unit))
            except (ValueError, AttributeError, TypeError) as exc:
                _bad(stats, name, number, exc, skip)
                continue
            stats.spans += 1
            if len(batch) >= FLAT_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
