"""Span files and registries for the trace tests: OTLP JSON built by hand, and modelctl runs.

Times are in June 2026; ids come from one counter, so every span id is unique.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import cli

OLD = "gpt-4o-mini-2024-07-18"  # support-gpt@2026-03
NEW = "gpt-4.1-mini-2025-04-14"  # support-gpt@2026-05
CLAUDE = "claude-sonnet-4-5-20250929"  # support-claude@2026-05
JUDGE = "gpt-4o-2024-08-06"  # judge-gpt@2026-01: registered, bound nowhere
TWIN = "gpt-4.1-2025-04-14"  # support-gpt@2026-06 and support-gpt@2026-07
OLD_BINDING = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3",
               "--fallback", "support-claude@2026-05,support-system@3"]  # fmt: skip
NEW_BINDING = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4",
               "--fallback", "support-claude@2026-05,support-system@4"]  # fmt: skip
EXTRA_MODELS = {
    ("support-gpt", "2026-06"): ("openai", TWIN),
    ("support-gpt", "2026-07"): ("openai", TWIN),
    ("support-azure", "1"): ("azure", "gpt-4o-2024-11-20"),
    ("support-haiku", "1"): ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("support-gemini", "1"): ("vertex_ai", "gemini-2.0-flash-001"),
}
SUPPORT_MATCH = {
    "gen_ai.agent.name": "support-assistant",
    "http.route": "/v1/support/chat",
    "langfuse.trace.name": "support-chat",
    "service.name": "shared-api",
}
TRIAGE_MATCH = {"gen_ai.workflow.name": "ticket-triage", "service.name": "shared-api"}
PROD = {"service.name": "support-api", "deployment.environment.name": "production"}


# --- time and ids ---------------------------------------------------------------------------


def iso(day: int, hour: int, minute: int = 0) -> str:
    return f"2026-06-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def T(day: int, hour: int, minute: int = 0) -> int:
    return int(datetime(2026, 6, day, hour, minute, tzinfo=UTC).timestamp())


def at(day: int, hour: int, minute: int = 0) -> dict[str, str]:
    """Environment that dates the next commit(s)."""
    return {"GIT_COMMITTER_DATE": iso(day, hour, minute), "GIT_AUTHOR_DATE": iso(day, hour, minute)}


_ids = itertools.count(1)


def tid() -> str:
    return f"{next(_ids):032x}"


def sid() -> str:
    return f"{next(_ids):016x}"


# --- OTLP JSON built by hand (the real SDK is used in test_real_opentelemetry_sdk_spans) ---------


def _any(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def otlp_attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _any(v)} for k, v in values.items()]


def span(trace: str, span_id: str, parent: str | None = None, *, start: float | None,
         end: float | None = None, attrs: dict[str, Any] | None = None, kind: int = 1,
         error: bool = False, name: str = "span", **raw: Any) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": "0" if start is None else str(int(start) * 10**9),
        "endTimeUnixNano": "0" if end is None else str(int(end) * 10**9),
        "attributes": otlp_attrs(attrs or {}),
        "status": {"code": 2} if error else {},
    }
    if end is None and start is not None:
        out["endTimeUnixNano"] = str((int(start) + 1) * 10**9)
    if parent:
        out["parentSpanId"] = parent
    out.update(raw)
    return out


def chat(trace: str, parent: str | None, start: float | None, model: str | None, *,
         route: str | None = "support-bot", prompt: str | None = None, error: bool = False,
         attrs: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A GenAI client span: the model requested and (unless it failed) served."""
    values: dict[str, Any] = {"gen_ai.operation.name": "chat"}
    if model:
        values["gen_ai.request.model"] = model
        if not error:
            values["gen_ai.response.model"] = model
    if error:
        values["error.type"] = "429"
    if route:
        values["modelctl.route"] = route
    if prompt:
        name, _, version = prompt.partition("@")
        values["gen_ai.prompt.name"] = name
        values["gen_ai.prompt.version"] = version
    values.update(attrs or {})
    return span(trace, sid(), parent, start=start, attrs=values, kind=3, error=error,
                name=f"chat {model}")  # fmt: skip


def server(trace: str, start: float, attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    values = {"http.request.method": "POST", **(attrs or {})}
    return span(trace, sid(), None, start=start, end=start + 5, attrs=values, kind=2,
                name="POST")  # fmt: skip


def line(spans: Iterable[dict[str, Any]], resource: dict[str, Any] | None = None) -> str:
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": otlp_attrs(PROD if resource is None else resource)},
                "scopeSpans": [{"scope": {"name": "tests"}, "spans": list(spans)}],
            }
        ]
    }
    return json.dumps(doc, separators=(",", ":"))


def write(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(x + "\n" for x in lines))
    return path


def request(start: float, model: str, **kw: Any) -> str:
    """One trace as one line: a SERVER span and one chat call under it."""
    trace = tid()
    root = server(trace, start)
    return line([root, chat(trace, root["spanId"], start + 1, model, **kw)])


# --- running modelctl --------------------------------------------------------------------------


def coverage(repo: Path, *args: str, code: int = 0, env: dict[str, str] | None = None) -> Any:
    result = cli("coverage", *args, "--json", cwd=repo, env=env)
    assert result.exit_code == code, result.stderr + result.stdout
    return result.json


def spots(payload: Any) -> dict[tuple[str, str | None], int]:
    """Blind spots as {(reason, model string): count}."""
    out: dict[tuple[str, str | None], int] = {}
    for g in payload["blind_spots"]:
        key = (g["reason"], g["model_string"])
        out[key] = out.get(key, 0) + g["count"]
    return out


def rates(payload: Any) -> dict[tuple[str, str], tuple[int, int, float]]:
    return {
        (r["route"], r["stage"]): (r["requests"], r["fallbacks"], r["per_million"])
        for r in payload["fallback"]
    }


def proc(*args: str, cwd: Path, stdin: bytes | None = None, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """modelctl as a real subprocess, with bytes on stdin (conftest.cli_proc takes no input)."""
    return subprocess.run(
        [sys.executable, "-m", "modelctl", *args], cwd=cwd, input=stdin, capture_output=True,
        env={**os.environ, **(env or {})}, timeout=120, check=False,
    )  # fmt: skip


# --- the registry ------------------------------------------------------------------------------


def ok(repo: Path, *args: str, env: dict[str, str] | None = None) -> None:
    result = cli(*args, cwd=repo, env=env)
    assert result.exit_code == 0, result.stderr + result.stdout


def add_models(repo: Path) -> None:
    for (name, version), (provider, model) in EXTRA_MODELS.items():
        folder = repo / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{version}.yaml").write_text(
            f"apiVersion: modelctl/v1\nkind: Model\nname: {name}\nversion: '{version}'\n"
            f"provider: {provider}\nprovider_model: {model}\nprovider_key: env:PROVIDER_KEY\n"
        )


def add_match(repo: Path, route: str, match: dict[str, str]) -> None:
    path = repo / "routes" / f"{route}.yaml"
    block = "match:\n" + "".join(f"  {k}: {v}\n" for k, v in match.items())
    text = path.read_text()
    path.write_text(text.replace(f"name: {route}\n", f"name: {route}\n{block}", 1))


def alias_production(repo: Path, drop_eval_gate: bool) -> None:
    settings = repo / "modelctl.yaml"
    text = settings.read_text()
    if drop_eval_gate:
        text = text[: text.index("    eval_gate:")]
    text = text.replace("  - name: production\n", "  - name: production\n    aliases: [prod]\n")
    settings.write_text(text)
