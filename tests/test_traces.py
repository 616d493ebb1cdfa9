"""Trace ingestion and attribution (docs/traces.md): every rule on span files built here.

Two registries with real history are built once per module. `hist`: support-bot goes
OLD -> NEW in production on June 2 at 12:00 (with a fallback chain), triage serves one of two
versions that share a provider model id, and the routes carry `match:` blocks. `rel` (in
test_report.py) adds signed releases gated by eval runs and rollbacks.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, git, make_registry
from otlp import (
    CLAUDE,
    JUDGE,
    NEW,
    NEW_BINDING,
    OLD,
    OLD_BINDING,
    PROD,
    SUPPORT_MATCH,
    TRIAGE_MATCH,
    TWIN,
    T,
    add_match,
    add_models,
    alias_production,
    at,
    chat,
    coverage,
    iso,
    line,
    ok,
    otlp_attrs,
    proc,
    rates,
    request,
    server,
    sid,
    span,
    spots,
    tid,
    write,
)  # fmt: skip


@pytest.fixture(scope="module")
def hist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = make_registry(tmp_path_factory.mktemp("hist") / "reg", routes=False)
    add_models(repo)
    alias_production(repo, drop_eval_gate=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "models, stage aliases, no eval gate", env=at(1, 0))
    ok(repo, "deploy", "support-bot", "--stage", "dev", *OLD_BINDING, env=at(1, 10))
    ok(repo, "promote", "support-bot", "--to", "staging", env=at(1, 11))
    ok(repo, "promote", "support-bot", "--to", "production", env=at(1, 12))
    ok(repo, "deploy", "triage", "--stage", "production", "--model", "support-gpt@2026-07",
       "--fallback", "support-claude@2026-05", env=at(1, 13))  # fmt: skip
    ok(repo, "deploy", "support-bot", "--stage", "dev", *NEW_BINDING, env=at(2, 10))
    ok(repo, "promote", "support-bot", "--to", "staging", env=at(2, 11))
    ok(repo, "promote", "support-bot", "--to", "production", env=at(2, 12))
    add_match(repo, "support-bot", SUPPORT_MATCH)
    add_match(repo, "triage", TRIAGE_MATCH)
    git(repo, "commit", "-qam", "route matchers", env=at(2, 20))
    assert cli("validate", cwd=repo).exit_code == 0
    return repo


# --- reading: formats and repairs -------------------------------------------------------------


def test_collector_line_with_several_resources(hist: Path, tmp_path: Path) -> None:
    trace1, trace2 = tid(), tid()
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": otlp_attrs({"deployment.environment.name": "prod"})},
                "scopeSpans": [
                    {"scope": {"name": "a"}, "spans": [chat(trace1, None, T(3, 9), NEW)]},
                    {"scope": {"name": "b"}, "spans": [chat(trace1, None, T(3, 10), NEW)]},
                ],
            },
            {
                "resource": {"attributes": otlp_attrs({"deployment.environment.name": "staging"})},
                "scopeSpans": [
                    {"scope": {"name": "c"}, "spans": [chat(trace2, None, T(3, 9), OLD)]}
                ],
            },
        ]
    }
    path = tmp_path / "spans.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    payload = coverage(hist, str(path), "--strict")
    assert payload["spans"] == 3
    assert payload["strict"]["covered"] == 2  # production (prod) serves NEW on June 3
    assert spots(payload) == {("version-not-live", OLD): 1}  # staging serves NEW too
    assert {g["stage"] for g in payload["blind_spots"]} == {"staging"}
    assert payload["read"]["lines"] == 1 and payload["read"]["spans"] == 3
    only = coverage(hist, str(path), "--strict", "--stage", "production")
    assert only["spans"] == 2 and only["strict"]["covered"] == 2


def test_a_long_collector_line_is_read_as_json_lines(hist: Path, tmp_path: Path) -> None:
    """Found by the benchmark: a first line longer than the 8 KiB read buffer was taken for
    a pretty-printed OTLP document, and the whole file failed to parse."""
    trace = tid()
    many = [
        chat(trace, None, T(3, 9), NEW, attrs={"gen_ai.response.id": "x" * 200}) for _ in range(80)
    ]
    path = write(tmp_path / "long.jsonl", [line(many), line([chat(tid(), None, T(3, 9), NEW)])])
    assert len(path.read_text().splitlines()[0]) > 20_000
    payload = coverage(hist, str(path), "--strict")
    assert payload["spans"] == 81 and payload["strict"]["covered"] == 81
    assert payload["read"]["lines"] == 2


def test_base64_ids_enum_names_and_numbers_are_repaired(hist: Path, tmp_path: Path) -> None:
    import base64

    trace_b64 = base64.b64encode(bytes.fromhex("0af7651916cd43dd8448eb211c80319c")).decode()
    root_b64 = base64.b64encode(bytes.fromhex("b7ad6b7169203331")).decode()
    child_b64 = base64.b64encode(bytes.fromhex("00f067aa0ba902b7")).decode()
    root = span(trace_b64, root_b64, None, start=T(3, 9), kind="SPAN_KIND_SERVER",
                attrs={"http.route": "/v1/support/chat"})  # fmt: skip
    call = chat(trace_b64, root_b64, T(3, 9), NEW, route=None)
    call.update(spanId=child_b64, kind="SPAN_KIND_CLIENT", status={"code": "STATUS_CODE_OK"})
    call["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": 812}})
    call["attributes"].append({"key": "modelctl.attempt", "value": {"intValue": 0}})
    # the same call again with hex ids: a duplicate once the base64 ids are decoded
    again = dict(call, traceId="0af7651916cd43dd8448eb211c80319c", spanId="00f067aa0ba902b7")
    again["parentSpanId"] = "B7AD6B7169203331"  # upper-case hex is fine too
    path = write(tmp_path / "b64.jsonl", [line([root, call]), line([again])])
    payload = coverage(hist, str(path), "--strict")
    assert payload["spans"] == 1 and payload["strict"]["covered"] == 1
    assert payload["read"]["duplicates"] == 1
    assert payload["read"]["repairs"] >= 5  # three base64 ids, two enum-name kinds
    assert payload["sources"]["route"] == {"match:http.route": 1}  # the parent was found


def test_times_fall_back_and_missing_times_are_never_dropped(hist: Path, tmp_path: Path) -> None:
    t = tid()
    no_start = chat(t, None, None, OLD)
    no_start["endTimeUnixNano"] = str(T(1, 18) * 10**9)  # OLD was live then: covered
    del no_start["startTimeUnixNano"]
    zero = chat(t, None, None, OLD)  # "0" and "0": no time at all
    ancient = chat(t, None, None, NEW)
    ancient.update(startTimeUnixNano="1000", endTimeUnixNano=str(T(3, 9) * 10**9))
    from_event = chat(t, None, None, NEW)
    from_event["events"] = [{"name": "gen_ai.choice", "timeUnixNano": str(T(3, 9) * 10**9)}]
    path = write(tmp_path / "times.jsonl", [line([no_start, zero, ancient, from_event])])
    payload = coverage(hist, str(path), "--strict")
    assert payload["spans"] == 4  # nothing dropped
    assert payload["name"]["covered"] == 4
    assert payload["strict"]["covered"] == 3
    assert spots(payload) == {("no-time", OLD): 1}
    assert payload["sources"]["time"] == {"end": 2, "none": 1, "event": 1}
    assert payload["read"]["bad_times"] == 1  # 1000 ns after the epoch is not a real time
    below = coverage(hist, str(path), "--strict", "--min-coverage", "100", code=1)
    assert below["ok"] is False and below["coverage_pct"] == 75.0


def test_gzip_and_otlp_json_document(hist: Path, tmp_path: Path) -> None:
    text = request(T(3, 9), NEW) + "\n" + request(T(3, 10), OLD) + "\n"
    gz = tmp_path / "spans.otlp.jsonl.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    payload = coverage(hist, str(gz), "--strict")
    assert payload["spans"] == 2 and spots(payload) == {("version-not-live", OLD): 1}
    # one pretty-printed document; legacy `batches` / `instrumentationLibrarySpans`
    trace = tid()
    doc = {
        "batches": [
            {
                "resource": {"attributes": otlp_attrs(PROD)},
                "instrumentationLibrarySpans": [
                    {"instrumentationLibrary": {"name": "old"},
                     "spans": [chat(trace, None, T(3, 9), NEW), chat(trace, None, T(3, 9), OLD)]}
                ],
            }
        ]
    }  # fmt: skip
    pretty = tmp_path / "export.json"
    pretty.write_text(json.dumps(doc, indent=2))
    payload = coverage(hist, str(pretty), "--strict")
    assert payload["spans"] == 2 and spots(payload) == {("version-not-live", OLD): 1}


def test_stdin(hist: Path) -> None:
    text = request(T(3, 9), NEW) + "\n\n" + request(T(3, 10), OLD) + "\n"
    result = proc("coverage", "-", "--strict", "--json", cwd=hist, stdin=text.encode())
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["spans"] == 2 and spots(payload) == {("version-not-live", OLD): 1}
    zipped = proc("coverage", "-", "--json", cwd=hist, stdin=gzip.compress(text.encode()))
    assert zipped.returncode == 0 and json.loads(zipped.stdout)["spans"] == 2


def test_a_pipe_is_read_and_a_folder_is_named_as_one(hist: Path, tmp_path: Path) -> None:
    """`modelctl coverage <(zcat spans.gz)` hands over a pipe, not a regular file: it is read
    like stdin. A folder is refused as a folder, not as a file that 'does not exist'."""
    text = request(T(3, 9), NEW) + "\n" + request(T(3, 10), OLD) + "\n"
    fifo = tmp_path / "spans.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("w") as fh:
            fh.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        payload = coverage(hist, str(fifo), "--strict")
    finally:
        if writer.is_alive():  # the reader refused: let the writer finish
            with contextlib.suppress(OSError), fifo.open("rb") as fh:
                fh.read()
        writer.join()
    assert payload["spans"] == 2
    result = cli("coverage", str(tmp_path), cwd=hist)
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_malformed_line_names_file_and_line(hist: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", [request(T(3, 9), NEW), '{"resourceSpans": [', "[]"])
    result = cli("coverage", str(path), cwd=hist)
    assert result.exit_code == 2, result.stderr
    assert f"{path}:2" in result.stderr and "--skip-bad-lines" in result.stderr
    payload = coverage(hist, str(path), "--skip-bad-lines")
    assert payload["spans"] == 1
    assert payload["read"]["bad_lines"] == 2
    assert payload["read"]["bad_line_examples"][0].startswith(f"{path}:2:")
    assert payload["read"]["bad_line_examples"][1].startswith(f"{path}:3:")
    missing = cli("coverage", str(tmp_path / "nope.jsonl"), cwd=hist)
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_duplicates_across_lines_and_files(hist: Path, tmp_path: Path) -> None:
    first = request(T(3, 9), NEW)
    a = write(tmp_path / "a.jsonl", [first, first, request(T(3, 9), OLD)])
    b = write(tmp_path / "b.jsonl", [first])
    payload = coverage(hist, str(a), str(b), "--strict")
    assert payload["spans"] == 2
    assert payload["read"]["duplicates"] == 2  # model calls seen twice
    assert payload["read"]["files"] == 2 and payload["read"]["spans"] == 8
    assert rates(payload)[("support-bot", "production")][0] == 2


def test_trace_split_across_lines_and_files(hist: Path, tmp_path: Path) -> None:
    """The Collector exports a child before its parent (the child ends first): the call
    waits for the agent span that names its route, which comes in a later line."""
    trace = tid()
    root = server(trace, T(3, 9))
    agent = span(trace, sid(), root["spanId"], start=T(3, 9), kind=1, name="invoke_agent",
                 attrs={"gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": "support-assistant"})  # fmt: skip
    first = chat(trace, agent["spanId"], T(3, 9), NEW, route=None)
    second = chat(trace, agent["spanId"], T(3, 9), NEW, route=None)
    one = write(tmp_path / "one.jsonl", [line([first]), line([agent])])
    two = write(tmp_path / "two.jsonl", [line([root, second])])
    payload = coverage(hist, str(one), str(two), "--strict")
    assert payload["spans"] == 2 and payload["strict"]["covered"] == 2, payload["blind_spots"]
    assert payload["sources"]["route"] == {"match:gen_ai.agent.name": 2}
    assert rates(payload) == {("support-bot", "production"): (1, 0, 0.0)}  # one request
    # a call whose ancestors never arrive is reported, not lost
    orphan = write(
        tmp_path / "orphan.jsonl", [line([chat(tid(), sid(), T(3, 9), NEW, route=None)])]
    )
    payload = coverage(hist, str(orphan), "--strict")
    assert payload["spans"] == 1 and spots(payload) == {("no-route", NEW): 1}


# --- which spans count ----------------------------------------------------------------------


def test_only_model_calls_count_and_the_innermost_wins(hist: Path, tmp_path: Path) -> None:
    t = tid()
    root = server(t, T(3, 9), {"http.route": "/v1/support/chat"})
    agent = span(t, sid(), root["spanId"], start=T(3, 9), name="invoke_agent",
                 attrs={"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": NEW,
                        "gen_ai.agent.name": "support-assistant"})  # fmt: skip
    tool = span(t, sid(), agent["spanId"], start=T(3, 9),
                attrs={"gen_ai.operation.name": "execute_tool", "gen_ai.request.model": NEW})  # fmt: skip
    workflow = span(t, sid(), agent["spanId"], start=T(3, 9),
                    attrs={"traceloop.span.kind": "workflow", "gen_ai.request.model": NEW})  # fmt: skip
    chain = span(t, sid(), agent["spanId"], start=T(3, 9),
                 attrs={"openinference.span.kind": "CHAIN", "llm.model_name": NEW})  # fmt: skip
    no_model = span(t, sid(), agent["spanId"], start=T(3, 9),
                    attrs={"gen_ai.operation.name": "chat"})  # fmt: skip
    # LiteLLM: litellm_request over raw_gen_ai_request; only the inner one is the provider call
    litellm = span(t, sid(), agent["spanId"], start=T(3, 9), name="litellm_request",
                   attrs={"llm.request.type": "acompletion", "gen_ai.request.model": "support-bot",
                          "gen_ai.system": "openai", "metadata.model_group": "support-bot"})  # fmt: skip
    raw = span(t, sid(), litellm["spanId"], start=T(3, 9), name="raw_gen_ai_request",
               attrs={"gen_ai.request.model": NEW, "gen_ai.response.model": NEW})  # fmt: skip
    # a framework span over an SDK span, with a non-model span between them
    framework = span(t, sid(), agent["spanId"], start=T(3, 10),
                     attrs={"openinference.span.kind": "LLM", "llm.model_name": OLD})  # fmt: skip
    middle = span(t, sid(), framework["spanId"], start=T(3, 10), name="retry")
    sdk = span(t, sid(), middle["spanId"], start=T(3, 10), kind=3,
               attrs={"gen_ai.operation.name": "chat", "gen_ai.request.model": NEW,
                      "gen_ai.response.model": NEW})  # fmt: skip
    embed = span(t, sid(), agent["spanId"], start=T(3, 10),
                 attrs={"gen_ai.operation.name": "embeddings",
                        "gen_ai.request.model": "text-embedding-3-small"})  # fmt: skip
    spans = [
        root,
        agent,
        tool,
        workflow,
        chain,
        no_model,
        litellm,
        raw,
        framework,
        middle,
        sdk,
        embed,
    ]
    payload = coverage(hist, str(write(tmp_path / "s.jsonl", [line(spans)])), "--strict")
    assert payload["spans"] == 3  # raw_gen_ai_request, the SDK call, the embedding
    assert payload["strict"]["covered"] == 2
    assert spots(payload) == {("unknown-model", "text-embedding-3-small"): 1}
    assert payload["sources"]["model"] == {"gen_ai.response.model": 2, "gen_ai.request.model": 1}
    # gen_ai.agent.name outranks http.route (docs/traces.md, route keys in priority order)
    # the LiteLLM span names its route by its model group (as `export litellm` writes it)
    assert payload["sources"]["route"] == {"metadata.model_group": 1, "match:gen_ai.agent.name": 2}


def test_conventions_other_than_genai(hist: Path, tmp_path: Path) -> None:
    t = tid()
    spans = [
        # gen_ai.system only (semantic conventions before v1.37)
        span(t, sid(), start=T(3, 9), kind=3,
             attrs={"gen_ai.system": "openai", "gen_ai.request.model": NEW, "modelctl.route": "support-bot"}),
        span(t, sid(), start=T(3, 9), kind=3,
             attrs={"gen_ai.system": "anthropic", "gen_ai.response.model": NEW, "modelctl.route": "support-bot"}),
        # OpenInference only
        span(t, sid(), start=T(3, 9),
             attrs={"openinference.span.kind": "LLM", "llm.model_name": NEW, "llm.provider": "openai",
                    "modelctl.route": "support-bot"}),
        # traceAI before 2026-02: OpenInference-style keys and fi.span.kind
        span(t, sid(), start=T(3, 9),
             attrs={"fi.span.kind": "LLM", "llm.model_name": NEW, "modelctl.route": "support-bot"}),
        span(t, sid(), start=T(3, 9),
             attrs={"gen_ai.span.kind": "TOOL", "llm.model_name": NEW, "modelctl.route": "support-bot"}),
        # a lenient-only key
        span(t, sid(), start=T(3, 9), attrs={"llm.model.name": NEW, "modelctl.route": "support-bot"}),
    ]  # fmt: skip
    path = write(tmp_path / "s.jsonl", [line(spans)])
    payload = coverage(hist, str(path), "--strict")  # strict: no lenient-only keys
    assert payload["spans"] == 4
    assert payload["strict"]["covered"] == 3
    # the provider disagrees with the manifest's: a different model that shares the name
    assert spots(payload) == {("unknown-model", NEW): 1}
    assert payload["blind_spots"][0]["provider"] == "anthropic"
    assert payload["sources"]["model"] == {
        "gen_ai.request.model": 1, "gen_ai.response.model": 1, "llm.model_name": 2,
    }  # fmt: skip
    lenient = coverage(hist, str(path))
    assert lenient["spans"] == 5 and lenient["name"]["covered"] == 4
    assert lenient["sources"]["model"]["llm.model.name"] == 1


def test_langfuse_rows_and_naive_timestamps_are_utc(hist: Path, tmp_path: Path) -> None:
    rows = [
        {"id": "obs-1", "trace_id": "lf-trace-1", "type": "GENERATION", "name": "answer",
         "start_time": "2026-06-02 12:30:00.000000", "provided_model_name": NEW,
         "prompt_name": "support-system", "prompt_version": 4, "environment": "prod",
         "trace_name": "support-chat", "level": "DEFAULT"},
        {"id": "obs-2", "trace_id": "lf-trace-1", "type": "SPAN", "name": "retrieve",
         "start_time": "2026-06-02 12:30:00.000000", "model": NEW, "trace_name": "support-chat"},
        {"id": "obs-3", "trace_id": "lf-trace-2", "type": "GENERATION", "model": NEW,
         "startTime": "2026-06-02T14:30:00+02:00", "trace_name": "support-chat",
         "environment": "prod", "level": "ERROR"},
    ]  # fmt: skip
    path = write(tmp_path / "observations.jsonl", [json.dumps(r) for r in rows])
    # In Tokyo a naive 12:30 read as local time would be 03:30 UTC, before NEW went live.
    result = proc("coverage", str(path), "--strict", "--json", cwd=hist, env={"TZ": "Asia/Tokyo"})
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["spans"] == 2  # the SPAN observation is not a model call
    # obs-3: 14:30+02:00 is 12:30 UTC, when NEW was live (it failed: still a call)
    assert payload["strict"]["covered"] == 2, payload["blind_spots"]
    assert payload["sources"]["route"] == {"match:langfuse.trace.name": 2}


def test_counts_csv(hist: Path, tmp_path: Path) -> None:
    path = tmp_path / "counts.csv"
    path.write_text(
        "route,stage,model,prompt,time,count,fallback\n"
        f"support-bot,production,{NEW},support-system@4,{iso(3, 9)},120,\n"
        f"support-bot,prod,{OLD},support-system@3,{iso(3, 9)},5,\n"
        f"support-bot,production,{CLAUDE},support-system@4,{iso(3, 9)},3,\n"
        f"support-bot,production,{NEW},support-system@4,{iso(3, 10)},2,true\n"
    )
    payload = coverage(hist, str(path), "--strict")
    assert payload["spans"] == 130 and payload["strict"]["covered"] == 125
    assert spots(payload) == {("version-not-live", OLD): 5}
    assert rates(payload) == {("support-bot", "production"): (130, 5, 38461.5)}
    bad = tmp_path / "bad.csv"
    bad.write_text("route,stage,model,time\nsupport-bot,production,x,2026-06-03\n")
    result = cli("coverage", str(bad), cwd=hist)
    assert result.exit_code == 2 and "count" in result.stderr


# --- matching model strings ----------------------------------------------------------------


def test_model_strings_match_exactly_after_known_decorations(hist: Path, tmp_path: Path) -> None:
    def call(model: str, provider: str | None = None) -> dict[str, Any]:
        attrs = {"gen_ai.provider.name": provider} if provider else {}
        return chat(tid(), None, T(3, 9), model, route=None, attrs=attrs)

    cases = {
        "azure/gpt-4o-2024-11-20": ("azure", True),
        "gpt-4o-2024-11-20": ("openai", False),  # the manifest says azure: not the same model
        "us.anthropic.claude-3-5-haiku-20241022-v1:0": ("aws.bedrock", True),
        "bedrock/us.anthropic.claude-3-5-haiku-20241022-v1:0": (None, True),
        "projects/p1/locations/us-central1/publishers/google/models/gemini-2.0-flash-001": (
            "gcp.vertex_ai", True),
        "publishers/google/models/gemini-2.0-flash-001": (None, True),
        "gpt-4o-mini": (None, True),  # an alias of support-gpt@2026-03
        "openai/gpt-4o-mini-2024-07-18": ("openai", True),
        "gpt-4o": (None, False),  # never gpt-4o-mini
        "gpt-4o-mini-2024-09-99": (None, False),  # a snapshot nobody registered
        "GPT-4O-MINI": (None, False),
    }  # fmt: skip
    path = write(tmp_path / "m.jsonl", [line([call(m, p) for m, (p, _) in cases.items()])])
    payload = coverage(hist, str(path))  # name level
    assert payload["mode"] == "name" and payload["spans"] == len(cases)
    assert payload["name"]["covered"] == sum(hit for _, hit in cases.values())
    assert spots(payload) == {("unknown-model", m): 1 for m, (_, hit) in cases.items() if not hit}


def test_ambiguous_model_is_resolved_by_the_live_binding(hist: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path / "twin.jsonl",
        [
            request(T(3, 9), TWIN, route="triage"),  # triage serves support-gpt@2026-07
            request(T(3, 9), TWIN, route="support-bot"),  # bound to neither twin
            request(T(3, 9), TWIN, route=None),  # no route: cannot tell
            request(T(3, 9), TWIN, route="triage", attrs={"modelctl.model": "support-gpt@2026-06"}),
        ],
    )
    strict = coverage(hist, str(path), "--strict")
    assert strict["spans"] == 4 and strict["strict"]["covered"] == 1
    assert spots(strict) == {("ambiguous-model", TWIN): 2, ("version-not-live", TWIN): 1}
    stamped = next(g for g in strict["blind_spots"] if g["reason"] == "version-not-live")
    assert stamped["model"] == "support-gpt@2026-06" and stamped["route"] == "triage"
    name = coverage(hist, str(path))
    assert name["name"]["covered"] == 4  # every string names registered versions


def test_stamps(hist: Path, tmp_path: Path) -> None:
    t = tid()
    spans = [
        chat(t, None, T(3, 9), OLD, attrs={"modelctl.model": "support-gpt@2026-05"}),  # disagrees
        chat(
            t, None, T(3, 9), None, attrs={"modelctl.model": "support-gpt@2026-05"}
        ),  # the stamp alone
        chat(
            t,
            None,
            T(3, 9),
            NEW,
            attrs={"modelctl.model": "support-gpt", "modelctl.model.version": "2026-05"},
        ),
        chat(t, None, T(3, 9), NEW, attrs={"modelctl.model": "support-gpt@2099-01"}),
        chat(t, None, T(3, 9), NEW, attrs={"modelctl.prompt": "support-system@4"}),
        chat(t, None, T(3, 9), NEW, attrs={"modelctl.prompt": "support-system@9"}),
        chat(t, None, T(3, 9), NEW, prompt="support-system@3"),
        chat(t, None, T(3, 9), NEW, attrs={"modelctl.stage": "staging"}),
        chat(t, None, T(3, 9), NEW, route="triage", attrs={"modelctl.stage": "dev"}),
    ]
    payload = coverage(hist, str(write(tmp_path / "s.jsonl", [line(spans)])), "--strict")
    assert payload["spans"] == 9 and payload["strict"]["covered"] == 4
    assert spots(payload) == {
        ("stamp-mismatch", OLD): 1, ("unknown-model", NEW): 1, ("unknown-prompt", NEW): 1,
        ("prompt-not-live", NEW): 1, ("no-stage-binding", NEW): 1,
    }  # fmt: skip
    assert payload["name"]["covered"] == 6  # prompt-not-live and no-stage-binding are named
    by_reason = {g["reason"]: g for g in payload["blind_spots"]}
    assert by_reason["stamp-mismatch"]["model"] == "support-gpt@2026-05"
    assert by_reason["unknown-prompt"]["prompt"] == "support-system@9"
    assert by_reason["no-stage-binding"]["stage"] == "dev"


# --- time and the binding live then ------------------------------------------------------------


def test_stale_replica_after_a_switch_and_grace(hist: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path / "switch.jsonl",
        [
            request(T(1, 18), OLD, prompt="support-system@3"),  # OLD live: covered
            request(T(1, 18), NEW, prompt="support-system@4"),  # NEW not live yet
            request(T(2, 12, 5) - 1, OLD, prompt="support-system@3"),  # a replica, 5 min after
            request(T(2, 12, 30) - 1, OLD, prompt="support-system@3"),  # ... and 30 min after
            request(T(2, 13), NEW, prompt="support-system@4"),
            request(T(1, 11), OLD),  # before production served anything
        ],
    )
    payload = coverage(hist, str(path), "--strict")
    assert payload["spans"] == 6 and payload["strict"]["covered"] == 2
    assert spots(payload) == {
        ("version-not-live", OLD): 2, ("version-not-live", NEW): 1, ("no-stage-binding", OLD): 1,
    }  # fmt: skip
    assert payload["name"]["covered"] == 6
    stale = next(g for g in payload["blind_spots"] if g["model_string"] == OLD and g["count"] == 2)
    assert stale["first"] == iso(2, 12, 5) and stale["last"] == iso(2, 12, 30)
    graced = coverage(hist, str(path), "--strict", "--grace", "10m")
    assert graced["strict"]["covered"] == 3
    assert spots(graced)[("version-not-live", OLD)] == 1
    name = coverage(hist, str(path))
    assert name["mode"] == "name" and name["coverage_pct"] == 100.0 and name["blind_spots"] == []


def test_stage_names_are_checked_and_counting_nothing_never_passes_a_gate(
    hist: Path, tmp_path: Path
) -> None:
    path = write(tmp_path / "one.jsonl", [request(T(3, 9), NEW, prompt="support-system@4")])
    typo = cli("coverage", str(path), "--stage", "prodution", "--min-coverage", "99", cwd=hist)
    assert typo.exit_code == 2 and "--stage: no stage 'prodution'" in typo.stderr
    bad = cli("coverage", str(path), "--default-stage", "nope", cwd=hist)
    assert bad.exit_code == 2 and "--default-stage: no stage 'nope'" in bad.stderr
    assert coverage(hist, str(path), "--stage", "prod")["spans"] == 1  # an alias is a stage
    # a stage that served nothing: no call counted, so no coverage gate passes
    empty = coverage(hist, str(path), "--stage", "dev", "--min-coverage", "1", code=1)
    assert empty["spans"] == 0 and empty["ok"] is False
    assert cli("coverage", str(path), "--min-coverage", "250", cwd=hist).exit_code == 2
    fmt = cli("coverage", str(path), "--format", "csv", cwd=hist)
    assert fmt.exit_code == 2 and "unknown --format 'csv'" in fmt.stderr


def test_skew_counts_the_binding_either_side_of_a_change(hist: Path, tmp_path: Path) -> None:
    """A producer whose clock is off stamps calls a little before or after the change they
    really followed or preceded; --skew counts the binding live that close, either way."""
    path = write(
        tmp_path / "skewed.jsonl",
        [
            request(T(2, 11, 58), NEW, prompt="support-system@4"),  # 2 min before NEW went live
            request(T(2, 12, 3), OLD, prompt="support-system@3"),  # 3 min after OLD went away
            request(T(1, 11, 57), OLD, prompt="support-system@3"),  # 3 min before the first
            request(T(2, 11, 50), NEW, prompt="support-system@4"),  # 10 min before: not skew
        ],
    )
    exact = coverage(hist, str(path), "--strict")
    assert exact["strict"]["covered"] == 0 and exact["in_grace"] == 0
    skewed = coverage(hist, str(path), "--strict", "--skew", "5m")
    assert skewed["strict"]["covered"] == 3 and skewed["in_grace"] == 3
    assert spots(skewed) == {("version-not-live", NEW): 1}
    # --grace alone looks only after a change
    graced = coverage(hist, str(path), "--strict", "--grace", "5m")
    assert graced["strict"]["covered"] == 1
    bad = cli("coverage", str(path), "--skew", "-5m", cwd=hist)
    assert bad.exit_code == 2 and "--skew '-5m'" in bad.stderr


# --- routes and stages --------------------------------------------------------------------------


def test_route_matchers_ancestors_and_ambiguity(hist: Path, tmp_path: Path) -> None:
    lines = []
    t = tid()
    agent = span(t, sid(), start=T(3, 9), attrs={"gen_ai.operation.name": "invoke_agent",
                                                 "gen_ai.agent.name": "support-assistant"})  # fmt: skip
    lines.append(line([agent, chat(t, agent["spanId"], T(3, 9), NEW, route=None)]))
    t = tid()
    root = server(t, T(3, 9), {"http.route": "/v1/support/chat"})
    lines.append(line([root, chat(t, root["spanId"], T(3, 9), NEW, route=None)]))
    # the route's name in a key other than modelctl.route is not taken literally
    lines.append(
        line([chat(tid(), None, T(3, 9), NEW, route=None, attrs={"gen_ai.agent.name": "triage"})])
    )
    lines.append(
        line(
            [
                chat(
                    tid(),
                    None,
                    T(3, 9),
                    TWIN,
                    route=None,
                    attrs={"gen_ai.workflow.name": "ticket-triage"},
                )
            ]
        )
    )
    lines.append(
        line([chat(tid(), None, T(3, 9), NEW, route=None)], {"service.name": "shared-api"})
    )
    lines.append(
        line([chat(tid(), None, T(3, 9), NEW, route=None)], {"service.name": "support-api"})
    )
    # modelctl.route on an ancestor outranks a gen_ai.agent.name no route matches
    t = tid()
    root = server(t, T(3, 9), {"modelctl.route": "support-bot"})
    lines.append(line([root, chat(t, root["spanId"], T(3, 9), NEW, route=None,
                                  attrs={"gen_ai.agent.name": "Assistant"})]))  # fmt: skip
    # ... and one that matches too: key by key, modelctl.route is looked up everywhere first
    t = tid()
    root = server(t, T(3, 9), {"modelctl.route": "triage"})
    lines.append(line([root, chat(t, root["spanId"], T(3, 9), TWIN, route=None,
                                  attrs={"gen_ai.agent.name": "support-assistant"})]))  # fmt: skip
    payload = coverage(hist, str(write(tmp_path / "r.jsonl", lines)), "--strict")
    assert payload["spans"] == 8
    assert payload["strict"]["covered"] == 5  # TWIN on triage: support-gpt@2026-07
    assert spots(payload) == {("no-route", NEW): 2, ("ambiguous-route", NEW): 1}
    assert payload["sources"]["route"] == {
        "match:gen_ai.agent.name": 1, "match:http.route": 1, "match:gen_ai.workflow.name": 1,
        "modelctl.route": 2, "ambiguous-route": 1, "no-route": 2,
    }  # fmt: skip


def test_stage_keys_and_aliases(hist: Path, tmp_path: Path) -> None:
    lines = [
        line([chat(tid(), None, T(3, 9), NEW)], {"deployment.environment.name": "prod"}),
        line([chat(tid(), None, T(3, 9), NEW)], {"deployment.environment": "prod"}),
        line([chat(tid(), None, T(3, 9), NEW)], {"deployment.environment.name": "staging"}),
        line([chat(tid(), None, T(3, 9), NEW, attrs={"modelctl.stage": "dev"})], PROD),
        line([chat(tid(), None, T(3, 9), NEW, attrs={"langfuse.environment": "prod"})], {}),
        line([chat(tid(), None, T(3, 9), NEW)], {}),  # --default-stage
        line([chat(tid(), None, T(3, 9), NEW)], {"deployment.environment.name": "qa"}),
    ]
    path = write(tmp_path / "stages.jsonl", lines)
    payload = coverage(hist, str(path), "--strict", "--default-stage", "staging")
    assert payload["spans"] == 7 and payload["strict"]["covered"] == 6
    assert spots(payload) == {("no-stage-binding", NEW): 1}
    assert {(r["stage"], r["requests"]) for r in payload["fallback"]} == {
        ("production", 3), ("staging", 2), ("dev", 1), ("qa", 1),
    }  # fmt: skip
    prod = coverage(
        hist, str(path), "--strict", "--stage", "production", "--default-stage", "staging"
    )
    assert prod["spans"] == 3 and prod["stage"] == "production"


# --- fallbacks -----------------------------------------------------------------------------------


def test_fallback_rules(hist: Path, tmp_path: Path) -> None:
    at3 = T(3, 9)
    lines = [
        request(at3, NEW, attrs={"modelctl.fallback": True, "modelctl.fallback.reason": "429"}),
        request(at3, NEW, attrs={"metadata.attempted_fallbacks": 1}),
        request(
            at3,
            NEW,
            attrs={
                "metadata.original_model_group": "gpt-primary",
                "metadata.model_group": "gpt-backup",
            },
        ),
        request(at3, NEW, attrs={"http.response.header.x-litellm-attempted-fallbacks": "2"}),
        request(at3, NEW, attrs={"http.response.header.x-portkey-last-used-option-index": "1"}),
        request(at3, CLAUDE),  # in the fallback chain, not a target: the registry says so
        request(at3, CLAUDE, attrs={"modelctl.fallback": "false"}),  # explicit false wins
        request(at3, NEW, attrs={"metadata.attempted_fallbacks": 0}),
        request(at3, NEW, attrs={"http.response.header.x-portkey-last-used-option-index": "0"}),
    ]
    # a failed call, then a different registered model answered: a fallback by trace shape
    t = tid()
    root = server(t, at3)
    lines.append(line([root, chat(t, root["spanId"], at3, NEW, error=True),
                       chat(t, root["spanId"], at3 + 2, JUDGE)]))  # fmt: skip
    # a failed call, then the same model again: a retry
    t = tid()
    root = server(t, at3)
    lines.append(line([root, chat(t, root["spanId"], at3, NEW, error=True),
                       chat(t, root["spanId"], at3 + 2, NEW)]))  # fmt: skip
    payload = coverage(hist, str(write(tmp_path / "fb.jsonl", lines)), "--strict")
    assert payload["spans"] == 13
    assert rates(payload) == {("support-bot", "production"): (11, 7, 636363.6)}
    assert payload["fallback_conflicts"] == 1
    assert spots(payload) == {("off-registry", JUDGE): 1}
    # the gateway hints in a LiteLLM hidden_params JSON string are read too
    t = tid()
    hidden = json.dumps({"litellm_model_name": "azure/gpt-4o-2024-11-20",
                         "additional_headers": {"x-litellm-attempted-fallbacks": 1}})  # fmt: skip
    litellm = span(t, sid(), start=at3, kind=3, name="litellm_request",
                   attrs={"gen_ai.request.model": "support-bot", "modelctl.route": "support-bot",
                          "gen_ai.system": "azure", "hidden_params": hidden})  # fmt: skip
    payload = coverage(hist, str(write(tmp_path / "litellm.jsonl", [line([litellm])])), "--strict")
    assert payload["sources"]["model"] == {"hidden_params.litellm_model_name": 1}
    assert spots(payload) == {("off-registry", "azure/gpt-4o-2024-11-20"): 1}
    assert rates(payload) == {("support-bot", "production"): (1, 1, 1_000_000.0)}


# --- the real OpenTelemetry SDK -----------------------------------------------------------------


def sdk_export(build: Any) -> str:
    """Spans made by the OpenTelemetry SDK, encoded as one OTLP/JSON export request through
    the OpenTelemetry protobuf classes and protobuf's JSON mapping (as a Collector would)."""
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1 import trace_pb2
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "support-api", "deployment.environment.name": "prod"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("tests", "1.0"))
    provider.shutdown()

    def kv(key: str, value: Any) -> KeyValue:
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    finished = exporter.get_finished_spans()
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(
        kv(k, v) for k, v in finished[0].resource.attributes.items()
    )
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "tests"
    for s in finished:
        out = scope.spans.add()
        out.trace_id = s.context.trace_id.to_bytes(16, "big")
        out.span_id = s.context.span_id.to_bytes(8, "big")
        if s.parent is not None:
            out.parent_span_id = s.parent.span_id.to_bytes(8, "big")
        out.name = s.name
        out.kind = trace_pb2.Span.SpanKind.Value(f"SPAN_KIND_{s.kind.name}")
        out.start_time_unix_nano = s.start_time or 0
        out.end_time_unix_nano = s.end_time or 0
        out.attributes.extend(kv(k, v) for k, v in (s.attributes or {}).items())
        out.status.code = s.status.status_code.value
    return json_format.MessageToJson(request, indent=None)


def test_real_opentelemetry_sdk_spans(hist: Path, tmp_path: Path) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    traces: list[str] = []

    def build(tracer: Any) -> None:
        for start, failed in ((T(3, 9), False), (T(3, 10), True)):
            ns = start * 10**9
            root = tracer.start_span("POST /v1/support/chat", kind=SpanKind.SERVER, start_time=ns,
                                     attributes={"http.route": "/v1/support/chat"})  # fmt: skip
            traces.append(f"{root.get_span_context().trace_id:032x}")
            from opentelemetry.trace import set_span_in_context

            ctx = set_span_in_context(root)
            agent = tracer.start_span(
                "invoke_agent support-assistant", context=ctx, start_time=ns + 1000,
                attributes={"gen_ai.operation.name": "invoke_agent",
                            "gen_ai.agent.name": "support-assistant"},
            )  # fmt: skip
            actx = set_span_in_context(agent)
            first = tracer.start_span(
                f"chat {NEW}", context=actx, kind=SpanKind.CLIENT, start_time=ns + 2000,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": NEW, "gen_ai.usage.input_tokens": 812,
                            "gen_ai.prompt.name": "support-system", "gen_ai.prompt.version": "4"},
            )  # fmt: skip
            if failed:
                first.set_attribute("error.type", "RateLimitError")
                first.set_status(Status(StatusCode.ERROR))
                first.end(end_time=ns + 3000)
                second = tracer.start_span(
                    f"chat {CLAUDE}", context=actx, kind=SpanKind.CLIENT, start_time=ns + 4000,
                    attributes={"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
                                "gen_ai.request.model": "claude-sonnet-4-5",
                                "gen_ai.response.model": CLAUDE,
                                "gen_ai.prompt.name": "support-system", "gen_ai.prompt.version": "4"},
                )  # fmt: skip
                second.end(end_time=ns + 5000)
            else:
                first.set_attribute("gen_ai.response.model", NEW)
                first.end(end_time=ns + 3000)
            agent.end(end_time=ns + 6000)
            root.end(end_time=ns + 7000)

    text = sdk_export(build)
    assert '"SPAN_KIND_CLIENT"' in text and '"STATUS_CODE_ERROR"' in text  # enum names
    assert f'"traceId": "{traces[0]}"' not in text  # base64, as protobuf's JSON mapping does
    path = write(tmp_path / "sdk.otlp.jsonl", [text])
    payload = coverage(hist, str(path), "--strict")
    assert payload["spans"] == 3 and payload["strict"]["covered"] == 3
    assert payload["sources"]["route"] == {"match:gen_ai.agent.name": 3}
    assert rates(payload) == {("support-bot", "production"): (2, 1, 500000.0)}
    assert payload["read"]["repairs"] >= 3 * 7
    explained = cli("explain", traces[1], "--traces", str(path), "--json", cwd=hist)
    assert explained.exit_code == 0, explained.stderr
    result = explained.json
    assert result["model"] == "support-claude@2026-05" and result["fallback"] is True
    assert result["fallback_source"] == "registry"
    assert [a["model"] for a in result["attempts"]] == [
        "support-gpt@2026-05",
        "support-claude@2026-05",
    ]
    assert [a["error"] for a in result["attempts"]] == [True, False]


# --- explain -----------------------------------------------------------------------------------


def test_explain_picks_the_answer_and_lists_attempts(hist: Path, tmp_path: Path) -> None:
    t = tid()
    root = server(t, T(3, 9))
    failed_agent = span(t, sid(), root["spanId"], start=T(3, 9), error=True,
                        attrs={"gen_ai.operation.name": "invoke_agent"})  # fmt: skip
    # answered inside an agent that then failed: not the answer, though it ends last
    late = chat(t, failed_agent["spanId"], T(3, 9) + 3, NEW)
    late["endTimeUnixNano"] = str((T(3, 9) + 9) * 10**9)
    first = chat(t, root["spanId"], T(3, 9), NEW, error=True)
    answer = chat(t, root["spanId"], T(3, 9) + 1, CLAUDE)
    path = write(tmp_path / "e.jsonl", [line([root, failed_agent, late, first, answer])])
    result = cli("explain", t.upper(), "--traces", str(path), "--json", cwd=hist)
    assert result.exit_code == 0, result.stderr
    data = result.json
    assert data["trace_id"] == t
    assert (data["route"], data["stage"]) == ("support-bot", "production")
    assert data["model"] == "support-claude@2026-05" and data["model_string"] == CLAUDE
    assert data["fallback"] is True and data["fallback_source"] == "registry"
    assert data["covered"] is True and data["reason"] is None
    assert data["event"]["tag"] == "modelctl/support-bot/production/2"
    assert data["event"]["action"] == "promote" and data["event"]["time"] == iso(2, 12)
    assert data["binding"] == (
        "support-gpt@2026-05+support-system@4; fallback: support-claude@2026-05+support-system@4"
    )
    answered = [a for a in data["attempts"] if a["answered"]]
    assert [a["span_id"] for a in answered] == [answer["spanId"]]
    assert [(a["model"], a["error"]) for a in data["attempts"]] == [
        ("support-gpt@2026-05", True), ("support-claude@2026-05", False),
        ("support-gpt@2026-05", False),
    ]  # fmt: skip
    text = cli("explain", t, "--traces", str(path), cwd=hist)
    assert "answered by support-claude@2026-05" in text.stdout and "a fallback" in text.stdout
    missing = cli("explain", "f" * 32, "--traces", str(path), cwd=hist)
    assert missing.exit_code == 2 and "is not in" in missing.stderr


# --- across lines, and bounded memory -------------------------------------------------------------


def test_leaf_rule_across_lines(hist: Path, tmp_path: Path) -> None:
    """The SDK span ends first and is exported first: its wrapper, read later, is dropped.
    A wrapper read before its inner span cannot be taken back (docs/traces.md)."""
    t = tid()
    wrapper = span(t, sid(), start=T(3, 9), name="litellm_request",
                   attrs={"gen_ai.request.model": NEW, "modelctl.route": "support-bot"})  # fmt: skip
    middle = span(t, sid(), wrapper["spanId"], start=T(3, 9), name="retry")
    inner = span(t, sid(), middle["spanId"], start=T(3, 9), kind=3,
                 attrs={"gen_ai.response.model": NEW, "modelctl.route": "support-bot"})  # fmt: skip
    child_first = write(tmp_path / "a.jsonl", [line([inner]), line([middle]), line([wrapper])])
    payload = coverage(hist, str(child_first), "--strict")
    assert payload["spans"] == 1 and payload["sources"]["model"] == {"gen_ai.response.model": 1}
    parent_first = write(tmp_path / "b.jsonl", [line([wrapper, middle]), line([inner])])
    assert coverage(hist, str(parent_first), "--strict")["spans"] == 2


def test_assume_time(hist: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [line([chat(tid(), None, None, NEW)])])
    assert spots(coverage(hist, str(path), "--strict")) == {("no-time", NEW): 1}
    payload = coverage(hist, str(path), "--strict", "--assume-time", iso(3, 9))
    assert payload["strict"]["covered"] == 1 and payload["sources"]["time"] == {"assumed": 1}
    early = coverage(hist, str(path), "--strict", "--assume-time", "2026-06-01 18:00")
    assert spots(early) == {("version-not-live", NEW): 1}  # naive: UTC
    bad = cli("coverage", str(path), "--assume-time", "yesterday", cwd=hist)
    assert bad.exit_code == 2 and "--assume-time" in bad.stderr


def test_numeric_times_of_unknown_unit_need_epoch_unit(hist: Path, tmp_path: Path) -> None:
    """`timestamp: 1780000000000` could be ms or us: never guessed, counted, and read in the
    unit --epoch-unit names, in flat rows and in counts CSV alike."""
    seconds = T(3, 9)  # NEW live in production
    rows = [
        {"trace_id": tid(), "span_id": "1" * 16, "kind": "client", "timestamp": seconds * 1000,
         "attributes": {"gen_ai.operation.name": "chat", "gen_ai.response.model": NEW,
                        "modelctl.route": "support-bot"}},
        {"trace_id": tid(), "span_id": "2" * 16, "kind": "client", "timestamp": str(seconds * 1000),
         "attributes": {"gen_ai.operation.name": "chat", "gen_ai.response.model": NEW,
                        "modelctl.route": "support-bot"}},
    ]  # fmt: skip
    path = write(tmp_path / "flat.jsonl", [json.dumps(r) for r in rows])
    unknown = coverage(hist, str(path), "--strict")
    assert spots(unknown) == {("no-time", NEW): 2}
    assert unknown["read"]["unknown_unit_times"] == 2
    text = cli("coverage", str(path), "--strict", cwd=hist)
    assert "2 numeric time(s) of unknown unit" in " ".join(
        text.stdout.split() + text.stderr.split()
    )
    known = coverage(hist, str(path), "--strict", "--epoch-unit", "ms")
    assert known["strict"]["covered"] == 2 and known["read"]["unknown_unit_times"] == 0
    # read as seconds, the same numbers are tens of thousands of years ahead: unusable
    wrong = coverage(hist, str(path), "--strict", "--epoch-unit", "s")
    assert spots(wrong) == {("no-time", NEW): 2} and wrong["read"]["bad_times"] == 2
    counts = tmp_path / "counts.csv"
    counts.write_text(f"route,stage,model,time,count\nsupport-bot,production,{NEW},{seconds},7\n")
    assert spots(coverage(hist, str(counts), "--strict")) == {("no-time", NEW): 7}
    assert coverage(hist, str(counts), "--strict", "--epoch-unit", "s")["strict"]["covered"] == 7
    bad = cli("coverage", str(path), "--epoch-unit", "minutes", cwd=hist)
    assert bad.exit_code == 2 and "--epoch-unit 'minutes': use one of s, ms, us, ns" in bad.stderr


def test_waiting_calls_are_bounded(
    hist: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls wait for ancestors in later lines, at most `waiting_limit` of them: the oldest
    are decided with what is known (here: no route) when more arrive."""
    from modelctl.registry.snapshot import locate
    from modelctl.traces import calls
    from modelctl.traces import coverage as core

    monkeypatch.setattr(core, "Memory", lambda: calls.Memory(waiting_limit=2))
    agents = []
    lines = []
    for _ in range(5):
        t = tid()
        agent = span(t, sid(), start=T(3, 9), attrs={"gen_ai.agent.name": "support-assistant"})
        agents.append(agent)
        lines.append(line([chat(t, agent["spanId"], T(3, 9), NEW, route=None)]))
    lines.append(line(agents))  # every ancestor comes last
    result = core.coverage(locate(hist), [str(write(tmp_path / "w.jsonl", lines))], strict=True)
    assert result.spans == 5 and result.strict_covered == 2 and result.waiting_evicted == 3
    assert result.sources["route"] == {"no-route": 3, "match:gen_ai.agent.name": 2}


def test_window_forgets_only_beyond_its_size() -> None:
    from modelctl.traces.coverage import Window

    window = Window(2)
    assert [window.add(k) for k in (1, 2, 3, 1)] == [True, True, True, False]
    assert [window.add(k) for k in (4, 5, 1)] == [True, True, True]  # 1 was 4 entries ago
    requests = Window(4)
    assert [requests.add_to(7, v) for v in ("a", "b", "a", "b", "c")] == [
        True,
        True,
        False,
        False,
        True,
    ]


def test_a_trace_on_two_routes_is_a_request_on_each(hist: Path, tmp_path: Path) -> None:
    t = tid()
    root = server(t, T(3, 9))
    calls = [chat(t, root["spanId"], T(3, 9) + i, NEW if i % 2 == 0 else TWIN,
                  route="support-bot" if i % 2 == 0 else "triage") for i in range(4)]  # fmt: skip
    payload = coverage(hist, str(write(tmp_path / "r.jsonl", [line([root, *calls])])), "--strict")
    assert payload["spans"] == 4 and payload["strict"]["covered"] == 4
    assert rates(payload) == {("support-bot", "production"): (1, 0, 0.0),
                              ("triage", "production"): (1, 0, 0.0)}  # fmt: skip


def test_text_output_and_a_trace_without_calls(hist: Path, tmp_path: Path) -> None:
    t = tid()
    path = write(tmp_path / "s.jsonl", [request(T(3, 9), NEW), request(T(1, 18), NEW),
                                        line([server(t, T(3, 9))])])  # fmt: skip
    result = cli("coverage", str(path), "--strict", "--min-coverage", "40", cwd=hist)
    assert result.exit_code == 0, result.stderr
    assert "50.00% strict trace-to-version coverage of 2 model call(s)" in result.stdout
    assert "version-not-live" in result.stdout and "support-gpt@2026-05" in result.stdout
    assert "coverage meets 40.0%" in result.stderr
    nothing = cli("explain", t, "--traces", str(path), cwd=hist)
    assert nothing.exit_code == 2 and "has no model calls" in nothing.stderr


def test_a_call_without_time_takes_its_ancestors_start(hist: Path, tmp_path: Path) -> None:
    t = tid()
    root = server(t, T(2, 13))  # NEW is live then; OLD is not
    middle = span(t, sid(), root["spanId"], start=None, name="no time either")
    call = chat(t, middle["spanId"], None, NEW)
    stale = chat(t, middle["spanId"], None, OLD)
    payload = coverage(
        hist, str(write(tmp_path / "a.jsonl", [line([root, middle, call, stale])])), "--strict"
    )
    assert payload["sources"]["time"] == {"ancestor": 2}
    assert payload["strict"]["covered"] == 1
    assert spots(payload) == {("version-not-live", OLD): 1}
    assert payload["blind_spots"][0]["first"] == iso(2, 13)


def test_litellm_model_groups_written_by_export_name_their_route(
    hist: Path, tmp_path: Path
) -> None:
    """`modelctl export litellm` names each model group after its route, and each fallback
    group `<route>/fallback-N`: spans from that proxy attribute without a modelctl.route."""
    at3 = T(3, 9)
    lines = [
        request(at3, NEW, route=None, attrs={"metadata.model_group": "support-bot"}),
        request(at3, CLAUDE, route=None, attrs={"metadata.model_group": "support-bot/fallback-1"}),
        request(at3, NEW, route=None, attrs={"metadata.model_group": "someone-elses-group"}),
    ]
    payload = coverage(hist, str(write(tmp_path / "groups.jsonl", lines)), "--strict")
    assert payload["spans"] == 3 and payload["strict"]["covered"] == 2
    assert payload["sources"]["route"] == {"metadata.model_group": 2, "no-route": 1}
    assert spots(payload) == {("no-route", NEW): 1}
    assert rates(payload) == {("support-bot", "production"): (2, 1, 500000.0)}
