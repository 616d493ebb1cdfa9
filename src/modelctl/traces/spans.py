"""Reading spans: OTLP JSON lines (the Collector file exporter), one OTLP JSON document, flat
JSONL spans (with Langfuse/Phoenix aliases), gzip, stdin; streamed batch by batch.

A batch is one OTLP export request (one line) or a run of flat spans; memory is bounded by
the largest batch, never by the file. Only attributes some rule reads are kept.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelctl.errors import ManifestError, Problem, UsageError

FORMATS = ("auto", "otlp-jsonl", "otlp-json", "flat-jsonl", "counts-csv")
FLAT_BATCH = 5000
MIN_TIME = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
MAX_AHEAD = 24 * 3600  # a span more than a day in the future has no usable time

# Every attribute key some rule reads (docs/traces.md); others are dropped while reading.
WANTED = frozenset(
    """
    modelctl.route modelctl.stage modelctl.model modelctl.model.version modelctl.prompt
    modelctl.fallback modelctl.fallback.reason modelctl.attempt
    gen_ai.request.model gen_ai.response.model gen_ai.provider.name gen_ai.system
    gen_ai.operation.name gen_ai.prompt.name gen_ai.prompt.version gen_ai.workflow.name
    gen_ai.agent.name gen_ai.span.kind gen_ai.prompt.template.name gen_ai.prompt.template.version
    llm.model_name llm.request.model_name llm.response.model_name llm.provider llm.system
    llm.request.type llm.prompt_template.name llm.prompt_template.version
    llm.model.name llm.request.model llm.response.model gen_ai.model
    openinference.span.kind fi.span.kind traceloop.span.kind
    traceloop.association.properties.route traceloop.workflow.name
    traceloop.prompt.key traceloop.prompt.version traceloop.prompt.version_name
    langfuse.trace.name langfuse.environment langfuse.observation.model.name
    langfuse.observation.prompt.name langfuse.observation.prompt.version langfuse.observation.type
    embedding.model_name reranker.model_name prompt.id
    metadata.model_group metadata.original_model_group metadata.attempted_fallbacks
    hidden_params.litellm_model_name http.response.header.x-litellm-attempted-fallbacks
    http.response.header.x-portkey-last-used-option-index
    error.type http.route http.request.method service.name
    deployment.environment.name deployment.environment environment
    """.split()  # noqa: SIM905  (a word list reads better than a list literal)
)


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
    time_source: str = "start"
    source: str = ""  # file:line, for messages
    count: int = 1  # pre-aggregated rows carry their count


@dataclass
class ReadStats:
    files: int = 0
    lines: int = 0
    spans: int = 0
    bad_lines: int = 0
    duplicates: int = 0
    repairs: int = 0  # base64 ids, enum-name kinds and the like
    bad_times: int = 0
    bad_line_examples: list[str] = field(default_factory=list)


# --- opening -------------------------------------------------------------------------------------


def open_input(name: str) -> Any:
    """A binary stream for a path or `-` (stdin); gzip is detected by its magic bytes."""
    raw: Any
    if name == "-":
        raw = sys.stdin.buffer
    else:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"trace file {name} does not exist")
        raw = path.open("rb")
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered)
    return buffered


def detect(name: str, head: bytes) -> str:
    text = head.lstrip()
    lower = name.lower().removesuffix(".gz")
    if lower.endswith(".csv"):
        return "counts-csv"
    if text.startswith(b"{"):
        first_line = text.split(b"\n", 1)[0]
        if b'"resourceSpans"' in first_line[:4096] or b'"batches"' in first_line[:4096]:
            try:
                json.loads(first_line)
                return "otlp-jsonl"
            except ValueError:
                return "otlp-json"
        if b'"resourceSpans"' in text[:65536]:
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
    for key in ("stringValue", "boolValue", "intValue", "doubleValue"):
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


def otlp_attributes(items: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    """Only the wanted keys of an OTLP attribute list; kvlists are flattened to `a.b` keys."""
    out: dict[str, Any] = {}
    for item in items or ():
        key = item.get("key")
        if key in WANTED:
            out[key] = _value(item.get("value"))
        elif key in ("metadata", "hidden_params") or (
            key and key.startswith(("metadata.", "hidden_params."))
        ):
            value = _value(item.get("value"))
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    full = f"{key}.{sub}"
                    if full in WANTED:
                        out[full] = subvalue
    return out


_HEX = frozenset("0123456789abcdef")


def normalise_id(value: Any, length: int, stats: ReadStats) -> str:
    """Hex ids, lower-cased; base64 ids (non-compliant exporters) decoded and counted."""
    if not value or not isinstance(value, str):
        return ""
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


_KINDS = {
    1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer",
    "SPAN_KIND_INTERNAL": "internal", "SPAN_KIND_SERVER": "server", "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer", "SPAN_KIND_CONSUMER": "consumer",
}  # fmt: skip


def _otlp_spans(doc: dict[str, Any], source: str, stats: ReadStats, now: float) -> list[Span]:
    out: list[Span] = []
    groups = doc.get("resourceSpans", doc.get("batches"))
    if not isinstance(groups, list):
        raise ValueError("no resourceSpans")
    for group in groups:
        resource = otlp_attributes((group.get("resource") or {}).get("attributes"))
        scopes = group.get("scopeSpans") or group.get("instrumentationLibrarySpans") or []
        for scope in scopes:
            for raw in scope.get("spans") or []:
                kind = raw.get("kind")
                if isinstance(kind, str) and kind in _KINDS:
                    stats.repairs += 1
                status = raw.get("status") or {}
                code = status.get("code")
                start = _sane(_nanos(raw.get("startTimeUnixNano")), now, stats)
                end = _sane(_nanos(raw.get("endTimeUnixNano")), now, stats)
                time_source = "start"
                if start is None:
                    events = [_nanos(e.get("timeUnixNano")) for e in raw.get("events") or []]
                    events_ok = [t for t in events if t]
                    if end is not None:
                        start, time_source = end, "end"
                    elif events_ok:
                        start, time_source = _sane(min(events_ok), now, stats), "event"
                    else:
                        time_source = "none"
                attrs = otlp_attributes(raw.get("attributes"))
                out.append(
                    Span(
                        normalise_id(raw.get("traceId"), 32, stats),
                        normalise_id(raw.get("spanId"), 16, stats),
                        normalise_id(raw.get("parentSpanId"), 16, stats) or None,
                        str(raw.get("name") or ""),
                        start,
                        end,
                        code in (2, "STATUS_CODE_ERROR") or "error.type" in attrs,
                        attrs,
                        resource,
                        _KINDS.get(kind, "") if kind is not None else "",
                        time_source,
                        source,
                    )
                )
    return out


# --- flat spans ----------------------------------------------------------------------------------


def _first(row: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = row.get(key)
        if value not in (None, ""):
            return value
    return None


def _flat_time(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if key.endswith(("unix_nano", "UnixNano")):
            return value / 1e9
        if key == "startTime" and isinstance(value, float):  # LiteLLM: float seconds
            return float(value)
        return None  # an ambiguous integer: seconds, milliseconds or nanoseconds?
    text = str(value).strip()
    if text.isdigit() and key.endswith(("unix_nano", "UnixNano")):
        return int(text) / 1e9
    text = text.replace(" ", "T", 1) if "T" not in text else text
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # Langfuse and others write naive UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_TIME_KEYS = ("start_time", "startTime", "start_time_unix_nano", "startTimeUnixNano", "timestamp")
_END_KEYS = ("end_time", "endTime", "end_time_unix_nano", "endTimeUnixNano")


def flat_span(row: dict[str, Any], source: str, stats: ReadStats, now: float) -> Span:
    raw_context = row.get("context")
    context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    attrs_in = row.get("attributes")
    attrs: dict[str, Any] = {}
    if isinstance(attrs_in, dict):
        attrs = {k: v for k, v in attrs_in.items() if k in WANTED}
        for key in ("metadata", "hidden_params"):
            nested = attrs_in.get(key)
            if isinstance(nested, dict):
                attrs.update({f"{key}.{k}": v for k, v in nested.items() if f"{key}.{k}" in WANTED})
    for key, value in row.items():
        if key.startswith("attributes.") and key[11:] in WANTED:
            attrs[key[11:]] = value
    # Langfuse observation exports
    for theirs, ours in (
        ("provided_model_name", "gen_ai.request.model"),
        ("model", "gen_ai.response.model"),
        ("prompt_name", "gen_ai.prompt.name"),
        ("prompt_version", "gen_ai.prompt.version"),
        ("environment", "langfuse.environment"),
        ("trace_name", "langfuse.trace.name"),
    ):
        if theirs in row and row[theirs] not in (None, "") and ours not in attrs:
            attrs[ours] = str(row[theirs]) if theirs == "prompt_version" else row[theirs]
    if row.get("type") == "GENERATION" and "gen_ai.operation.name" not in attrs:
        attrs["gen_ai.operation.name"] = "chat"
    resource = row.get("resource") if isinstance(row.get("resource"), dict) else {}
    resource = {k: v for k, v in (resource or {}).items() if k in WANTED}
    start_key = next((k for k in _TIME_KEYS if row.get(k) not in (None, "")), "")
    start = _sane(_flat_time(row.get(start_key), start_key), now, stats) if start_key else None
    end_key = next((k for k in _END_KEYS if row.get(k) not in (None, "")), "")
    end = _sane(_flat_time(row.get(end_key), end_key), now, stats) if end_key else None
    time_source = "start" if start is not None else ("end" if end is not None else "none")
    status = row.get("status")
    if isinstance(status, dict):
        status = status.get("code") or status.get("status_code")
    error = (
        str(status).lower() in ("error", "2", "status_code_error")
        or row.get("level") == "ERROR"
        or "error.type" in attrs
    )
    kind = str(row.get("kind") or "").lower().removeprefix("span_kind_")
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
    )


# --- pre-aggregated counts ---------------------------------------------------------------------


def count_rows(stream: Any, name: str, stats: ReadStats, now: float) -> Iterator[list[Span]]:
    """CSV of pre-aggregated span counts: route, stage, model, prompt, time, count[, fallback]."""
    import csv

    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    reader = csv.DictReader(text)
    needed = {"route", "stage", "model", "time", "count"}
    missing = needed - set(reader.fieldnames or [])
    if missing:
        raise ManifestError(
            [
                Problem(
                    name,
                    "",
                    f"CSV needs columns {', '.join(sorted(needed))}; missing {', '.join(sorted(missing))}",
                    1,
                )
            ]
        )
    batch: list[Span] = []
    for number, row in enumerate(reader, 2):
        stats.lines += 1
        try:
            count = int(row["count"])
        except ValueError:
            raise ManifestError(
                [Problem(name, "count", f"{row['count']!r} is not an integer", number)]
            ) from None
        attrs: dict[str, Any] = {
            "modelctl.route": row["route"],
            "modelctl.stage": row["stage"],
            "gen_ai.response.model": row["model"],
        }
        if row.get("prompt"):
            attrs["modelctl.prompt"] = row["prompt"]
        if row.get("fallback"):
            attrs["modelctl.fallback"] = row["fallback"]
        start = _sane(_flat_time(row["time"], "time"), now, stats)
        span = Span(
            "",
            f"{name}:{number}",
            None,
            "",
            start,
            None,
            False,
            attrs,
            {},
            "client",
            "start" if start is not None else "none",
            f"{name}:{number}",
            count,
        )
        stats.spans += count
        batch.append(span)
        if len(batch) >= FLAT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the reader -------------------------------------------------------------------------------


def read_batches(
    names: list[str],
    fmt: str = "auto",
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    on_bytes: Any = None,
) -> Iterator[list[Span]]:
    """Batches of spans from every input, in order. Bad lines raise, or are counted."""
    stats = stats if stats is not None else ReadStats()
    now = datetime.now(UTC).timestamp()
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint=f"one of: {', '.join(FORMATS)}")
    for name in names:
        stats.files += 1
        stream = open_input(name)
        try:
            head = stream.peek(65536)[:65536] if hasattr(stream, "peek") else b""
            chosen = fmt if fmt != "auto" else detect(name, head)
            if chosen == "counts-csv":
                yield from count_rows(stream, name, stats, now)
            elif chosen == "otlp-json":
                data = stream.read()
                stats.lines += 1
                try:
                    doc = json.loads(data)
                    spans = _otlp_spans(doc, f"{name}:1", stats, now)
                except (ValueError, AttributeError, TypeError) as exc:
                    _bad(stats, name, 1, exc, skip_bad_lines)
                    continue
                stats.spans += len(spans)
                yield spans
            else:
                yield from _lines(stream, name, chosen, stats, now, skip_bad_lines, on_bytes)
        finally:
            if name != "-":
                stream.close()


def _bad(stats: ReadStats, name: str, number: int, exc: Exception, skip: bool) -> None:
    if not skip:
        raise ManifestError(
            [Problem(name, "", f"not a valid span record: {exc}", number)],
            hint="fix or drop the line, or pass --skip-bad-lines to count such lines and go on",
        )
    stats.bad_lines += 1
    if len(stats.bad_line_examples) < 5:
        stats.bad_line_examples.append(f"{name}:{number}: {exc}")


def _lines(
    stream: Any, name: str, fmt: str, stats: ReadStats, now: float, skip: bool, on_bytes: Any
) -> Iterator[list[Span]]:
    batch: list[Span] = []
    for number, line in enumerate(stream, 1):
        if on_bytes is not None:
            on_bytes(len(line))
        if not line.strip():
            continue
        stats.lines += 1
        try:
            doc = json.loads(line)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            if fmt == "otlp-jsonl":
                spans = _otlp_spans(doc, f"{name}:{number}", stats, now)
                stats.spans += len(spans)
                yield spans
                continue
            batch.append(flat_span(doc, f"{name}:{number}", stats, now))
            stats.spans += 1
        except (ValueError, AttributeError, TypeError) as exc:
            _bad(stats, name, number, exc, skip)
            continue
        if len(batch) >= FLAT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
