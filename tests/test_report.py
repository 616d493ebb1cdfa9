"""The report's five signals, explain's chain to the signed history, and the timeline export,
on one registry with signed releases gated by eval runs and three rollbacks (June 2026):

    prod/1  Jun 1 12:00  promote  OLD (bootstrap, no eval)
    prod/2  Jun 2 14:00  promote  canary: OLD 90 + NEW 10       (eval `fixed`: pass)
    prod/3  Jun 3 10:00  promote  NEW                            (eval `fixed`)
    prod/4  Jun 3 12:00  rollback to 1, Detected-At 11:30
    prod/5  Jun 4 10:00  promote  NEW                (eval `recheck-4`, run after prod/4)
    prod/6  Jun 4 12:00  rollback to 1; eval `nightly` failed at 11:00
    prod/7  Jun 5 10:00  promote  NEW                (eval `recheck-5`, run after prod/6)
    prod/8  Jun 5 12:00  rollback to 1; no failing eval since prod/7
    prod/9  Jun 5 14:00  promote  NEW               (eval `recheck-5b`, run after prod/8)

The eval `regressed` (fail, Jun 2 12:00) blocked nothing that was released.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, cli, git, make_registry
from otlp import (
    CLAUDE,
    NEW,
    NEW_BINDING,
    OLD,
    OLD_BINDING,
    T,
    at,
    chat,
    coverage,
    iso,
    line,
    ok,
    request,
    server,
    spots,
    tid,
    write,
)  # fmt: skip
from signing import allow, make_ssh_key, set_signing, use_ssh_key

OUTPUTS = ROOT / "examples" / "outputs"
SIGNER = "release@acme.example"
PRODUCTION = ["support-bot", "--to", "production"]


def eval_run(repo: Path, run_id: str, outputs: str, created: str, expect: int) -> None:
    """An eval run written by modelctl, its `created` time set, committed at that time."""
    result = cli(
        "eval", "run", *PRODUCTION, "--dataset", "support-golden@2026-04",
        "--candidate-outputs", str(OUTPUTS / outputs),
        "--baseline-outputs", str(OUTPUTS / "baseline.jsonl"),
        "--evaluator", "contains", "--run-id", run_id, "--no-commit", "--json", cwd=repo,
    )  # fmt: skip
    assert result.exit_code == expect, result.stderr
    path = repo / result.json["path"]  # type: ignore[index]
    text = path.read_text()
    start = text.index("created: ")
    end = text.index("\n", start)
    path.write_text(text[:start] + f"created: {created}" + text[end:])
    git(repo, "add", str(path))
    git(repo, "commit", "-qm", f"eval {run_id}", env={"GIT_COMMITTER_DATE": created,
                                                       "GIT_AUTHOR_DATE": created})  # fmt: skip


@pytest.fixture(scope="module")
def rel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rel")
    repo = make_registry(root / "reg", routes=False)
    key = make_ssh_key(root / "keys", "release", SIGNER)
    allow(repo, key)
    set_signing(repo, "required")
    use_ssh_key(repo, key)
    ok(repo, "deploy", "support-bot", "--stage", "dev", *OLD_BINDING, env=at(1, 10))
    ok(repo, "promote", "support-bot", "--to", "staging", env=at(1, 11))
    ok(repo, "promote", *PRODUCTION, env=at(1, 12))
    ok(repo, "deploy", "support-bot", "--stage", "dev", *NEW_BINDING, env=at(2, 10))
    ok(repo, "promote", "support-bot", "--to", "staging", env=at(2, 11))
    eval_run(repo, "regressed", "candidate-regressed.jsonl", iso(2, 12), 1)
    eval_run(repo, "fixed", "candidate.jsonl", iso(2, 13), 0)
    ok(repo, "promote", *PRODUCTION, "--canary", "10", env=at(2, 14))
    ok(repo, "promote", *PRODUCTION, "-m", "canary clean", env=at(3, 10))
    rollback = ["rollback", "support-bot", "--stage", "production", "--to", "1"]
    ok(repo, *rollback, "--detected-at", iso(3, 11, 30), env=at(3, 12))
    # A rolled-back binding returns only with an eval recorded after the rollback.
    eval_run(repo, "recheck-4", "candidate.jsonl", iso(4, 9), 0)
    ok(repo, "promote", *PRODUCTION, env=at(4, 10))
    eval_run(repo, "nightly", "candidate-regressed.jsonl", iso(4, 11), 1)
    ok(repo, *rollback, env=at(4, 12))
    eval_run(repo, "recheck-5", "candidate.jsonl", iso(5, 9), 0)
    ok(repo, "promote", *PRODUCTION, env=at(5, 10))
    ok(repo, *rollback, env=at(5, 12))
    eval_run(repo, "recheck-5b", "candidate.jsonl", iso(5, 13), 0)
    ok(repo, "promote", *PRODUCTION, env=at(5, 14))
    tags = git(repo, "tag", "--list", "modelctl/support-bot/production/*").split()
    assert len(tags) == 9
    return repo


def production_spans(folder: Path) -> Path:
    """Traffic: the restored binding's first spans after each rollback (and a stale NEW
    replica before one of them), a fallback, and the newest call on June 5 at 15:00."""
    at = [
        (T(3, 11), NEW, 4),
        (T(3, 12, 3), NEW, 4),  # prod/3, then a stale replica after prod/4
        (T(3, 12, 7), OLD, 3),  # restored: 37 min after 11:30
        (T(3, 12, 9), OLD, 3),
        (T(4, 12, 2), OLD, 3),  # 62 min after `nightly` failed
        (T(5, 12, 10), OLD, 3),  # 10 min after the rollback (detection unknown)
        (T(5, 15), NEW, 4),
        (T(5, 15), CLAUDE, 4),
    ]  # the fallback chain answered
    # request() puts the call one second after its SERVER span
    lines = [request(t - 1, model, prompt=f"support-system@{p}") for t, model, p in at]  # fmt: skip
    return write(folder / "production.otlp.jsonl", lines)


# --- report ------------------------------------------------------------------------------------


def test_report_signals(rel: Path, tmp_path: Path) -> None:
    spans = production_spans(tmp_path)
    result = cli("report", "--traces", str(spans), "--json", cwd=rel)
    assert result.exit_code == 0, result.stderr
    data: Any = result.json
    assert data["production_stage"] == "production" and data["branch"] == "main"
    # 1. coverage: the stale replica is the only blind spot
    assert data["coverage"]["spans"] == 8 and data["coverage"]["strict_pct"] == 87.5
    assert [(b["reason"], b["model"], b["count"]) for b in data["coverage"]["blind_spots"]] == [
        ("version-not-live", NEW, 1)
    ]
    # 2. time to rollback: from Detected-At, from the failing eval, and unknown
    rollbacks = data["rollbacks"]
    assert [r["tag"] for r in rollbacks] == [
        f"modelctl/support-bot/production/{n}" for n in (4, 6, 8)
    ]
    assert [r["detected_from"] for r in rollbacks] == ["Modelctl-Detected-At", "eval nightly", None]
    assert [r["minutes"] for r in rollbacks] == [30.0, 60.0, None]
    assert (data["rollback_p50_minutes"], data["rollback_p95_minutes"]) == (30.0, 60.0)
    # ... and with traces, to the first span served by the restored binding
    assert [r["restored_traffic_at"] for r in rollbacks] == [
        iso(3, 12, 7),
        iso(4, 12, 2),
        iso(5, 12, 10),
    ]
    assert [r["minutes_to_traffic"] for r in rollbacks] == [37.0, 62.0, 10.0]
    assert (data["traffic_p50_minutes"], data["traffic_p95_minutes"]) == (37.0, 62.0)
    # 3. eval pass rate per release into production: five of six were gated by a passing eval
    releases = data["releases"]
    assert [(r["tag"][-1], r["eval_id"], r["verdict"]) for r in releases] == [
        ("1", None, None), ("2", "fixed", "pass"), ("3", "fixed", "pass"),
        ("5", "recheck-4", "pass"), ("7", "recheck-5", "pass"), ("9", "recheck-5b", "pass"),
    ]  # fmt: skip
    assert data["eval_pass_rate"] == 83.33
    fixed = releases[1]
    assert fixed["candidate_rate"] > fixed["baseline_rate"]
    assert {c["cohort"] for c in fixed["cohorts"]} == {"account", "billing", "technical"}
    # 4. fallbacks per million requests: one of eight
    assert data["fallback"] == [{"route": "support-bot", "stage": "production", "requests": 8,
                                 "fallbacks": 1, "per_million": 125000.0}]  # fmt: skip
    # 5. dataset drift: the live release's eval ran on a snapshot of April 18
    assert len(data["drift"]) == 1
    drift = data["drift"][0]
    assert (drift["eval_id"], drift["dataset"]) == ("recheck-5b", "support-golden@2026-04")
    assert drift["newest_traffic"] == iso(5, 15) and drift["days"] == 48.6


def test_report_without_traces_and_since(rel: Path) -> None:
    data: Any = cli("report", "--format", "json", cwd=rel).json
    assert data["coverage"] is None and data["fallback"] == []
    assert data["traffic_p50_minutes"] is None
    assert data["drift"][0]["days"] > 48  # against now
    since: Any = cli("report", "--since", iso(4, 0), "--json", cwd=rel).json
    assert [r["minutes"] for r in since["rollbacks"]] == [60.0, None]
    assert len(since["releases"]) == 3
    bad = cli("report", "--format", "yaml", cwd=rel)
    assert bad.exit_code == 2


def test_drift_follows_a_rollback_to_an_ungated_binding(rel: Path, tmp_path: Path) -> None:
    """After prod/8 production serves prod/1 again, which no eval gated: no drift can be
    computed (the eval of the rolled-back release says nothing about what is live)."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(rel), str(clone))
    git(clone, "reset", "-q", "--hard", "modelctl/support-bot/production/8")
    data: Any = cli("report", "--json", cwd=clone).json
    assert [(d["eval_id"], d["dataset"], d["days"]) for d in data["drift"]] == [(None, None, None)]
    text = cli("report", cwd=clone).stdout
    assert "not gated by an eval" in text
    git(clone, "reset", "-q", "--hard", "modelctl/support-bot/production/7")
    data = cli("report", "--json", cwd=clone).json
    assert [d["eval_id"] for d in data["drift"]] == ["recheck-5"]


def _hand_made_rollback(repo: Path, seq: int, detected: str, when: dict[str, str]) -> None:
    """A rollback commit made by hand, its Detected-At trailer whatever its author wrote."""
    (repo / "routes/support-bot.yaml").write_text(
        git(repo, "show", "HEAD~1:routes/support-bot.yaml") + "\n"
    )
    message = (
        "rollback by hand\n\nModelctl-Action: rollback\nModelctl-Route: support-bot\n"
        f"Modelctl-Stage: dev\nModelctl-Seq: {seq}\nModelctl-Detected-At: {detected}\n"
    )
    git(repo, "commit", "-qam", message, env=when)


def test_time_to_rollback_is_never_negative_nor_counted_from_before_the_release(
    tmp_path: Path,
) -> None:
    repo = make_registry(tmp_path / "reg", routes=False)
    dev = ["deploy", "support-bot", "--stage", "dev"]
    ok(repo, *dev, *OLD_BINDING, env=at(1, 10))
    ok(repo, *dev, *NEW_BINDING, env=at(2, 10))
    _hand_made_rollback(repo, 3, iso(1, 12), at(2, 12))  # detected before the release
    ok(repo, *dev, *NEW_BINDING, env=at(3, 10))
    _hand_made_rollback(repo, 5, iso(3, 14), at(3, 12))  # detected after the rollback
    ok(repo, *dev, *NEW_BINDING, env=at(4, 10))
    rollback = ["rollback", "support-bot", "--stage", "dev"]
    ok(repo, *rollback, "--detected-at", iso(4, 9, 58), env=at(4, 12))  # within the clock skew
    ok(repo, *dev, *NEW_BINDING, env=at(5, 10))
    ok(repo, *rollback, "--detected-at", iso(5, 11), env=at(5, 12))
    ok(repo, *dev, *NEW_BINDING, env=at(6, 10))
    _hand_made_rollback(repo, 11, "yesterday", at(6, 12))
    data: Any = cli("report", "--json", cwd=repo).json
    rollbacks = data["rollbacks"]
    assert [r["minutes"] for r in rollbacks] == [None, None, 120.0, 60.0, None]
    assert rollbacks[4]["problem"] == "Modelctl-Detected-At 'yesterday' is not a time"
    assert all(r["minutes"] is None or r["minutes"] >= 0 for r in rollbacks)
    assert rollbacks[0]["problem"] == (
        f"detected at {iso(1, 12)}, before the release went live ({iso(2, 10)})"
    )
    assert rollbacks[1]["problem"] == f"detected at {iso(3, 14)}, after the rollback ({iso(3, 12)})"
    assert rollbacks[2]["detected_at"] == iso(4, 10) and rollbacks[2]["problem"] is None
    assert (data["rollback_p50_minutes"], data["rollback_p95_minutes"]) == (60.0, 120.0)
    text = cli("report", cwd=repo).stdout
    assert "not counted" in text and "before the release went live" in text
    markdown = cli("report", "--format", "markdown", cwd=repo).stdout
    assert "not counted: detected at" in markdown


def test_report_markdown_appends_to_the_step_summary(rel: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    spans = production_spans(tmp_path)
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    result = cli("report", "--traces", str(spans), "--format", "markdown", cwd=rel, env=env)
    assert result.exit_code == 0, result.stderr
    text = summary.read_text()
    assert text.startswith("earlier step\n## modelctl report (main @ ")
    assert text.removeprefix("earlier step\n") == result.stdout
    for row in [
        "| trace-to-version coverage | 87.5% strict, 100.0% by name (8 calls) |",
        "| time to rollback | p50 30.0 min, p95 60.0 min (3 rollbacks) |",
        "| time to restored traffic | p50 37.0 min, p95 62.0 min |",
        "| regression-eval pass rate | 83.33% of 6 releases to production |",
        "| fallback hit rate support-bot production | 125,000.0 per million (1 of 8) |",
        "| dataset drift support-bot | 48.6 days (support-golden@2026-04, eval recheck-5b) |",
        f"| version-not-live | support-bot | production | {NEW} | support-gpt@2026-05 | 1 |",
    ]:
        assert row in text, row
    cli("report", "--format", "markdown", cwd=rel, env=env)
    assert summary.read_text().count("## modelctl report") == 2
    table = cli("report", "--traces", str(spans), cwd=rel)
    assert "83.33%" in table.stdout and "125,000.0 per million" in table.stdout


# --- explain and strict coverage on a canary -------------------------------------------------


def test_explain_names_the_signed_event_the_eval_and_its_dataset(rel: Path, tmp_path: Path) -> None:
    t = tid()
    root = server(t, T(3, 11))
    failed = chat(t, root["spanId"], T(3, 11), NEW, prompt="support-system@4", error=True)
    answer = chat(t, root["spanId"], T(3, 11) + 2, CLAUDE, prompt="support-system@4")
    path = write(tmp_path / "e.jsonl", [line([root, failed, answer]),
                                        request(T(3, 13), OLD, prompt="support-system@3")])  # fmt: skip
    after = json.loads(path.read_text().splitlines()[1])["resourceSpans"][0]["scopeSpans"][0]
    after_trace = after["spans"][0]["traceId"]
    data: Any = cli("explain", t, "--traces", str(path), "--json", cwd=rel).json
    assert data["model"] == "support-claude@2026-05" and data["prompt"] == "support-system@4"
    assert (data["fallback"], data["fallback_source"]) == (True, "registry")
    event = data["event"]
    assert event["tag"] == "modelctl/support-bot/production/3" and event["action"] == "promote"
    assert event["commit"] == git(rel, "rev-parse", "modelctl/support-bot/production/3^{commit}")
    assert (event["signature"], event["signer"]) == ("G", SIGNER)
    assert data["eval_run"]["id"] == "fixed" and data["eval_run"]["verdict"] == "pass"
    assert data["eval_run"]["dataset"] == "support-golden@2026-04"
    assert data["dataset"]["sha256"] == (
        "75dbf8260e3d6869e6a3e928109204cfe29a1e07ae07e18c9ff577fa35965646"
    )
    assert data["dataset"]["snapshot_at"] == "2026-04-18T00:00:00Z"
    assert [(a["model"], a["error"], a["answered"]) for a in data["attempts"]] == [
        ("support-gpt@2026-05", True, False), ("support-claude@2026-05", False, True),
    ]  # fmt: skip
    assert event["reason"] == "canary clean"
    text = cli("explain", t, "--traces", str(path), cwd=rel).stdout
    assert f"signed by {SIGNER}" in text and "gated by eval fixed: pass" in text
    assert "reason: canary clean" in text
    # after the rollback: the event is the rollback, and the restored binding had no eval
    rolled: Any = cli("explain", after_trace, "--traces", str(path), "--json", cwd=rel).json
    assert rolled["event"]["tag"] == "modelctl/support-bot/production/4"
    assert rolled["event"]["action"] == "rollback" and rolled["eval_run"] is None
    assert rolled["model"] == "support-gpt@2026-03" and rolled["covered"] is True


def test_canary_pairs_models_with_their_prompts(rel: Path, tmp_path: Path) -> None:
    """During the canary, OLD runs with prompt 3 and NEW with prompt 4: each pair is live,
    a crossed pair is not (both prompts being in the binding is not enough)."""
    path = write(
        tmp_path / "canary.jsonl",
        [
            request(T(2, 15), OLD, prompt="support-system@3"),
            request(T(2, 15), NEW, prompt="support-system@4"),
            request(T(2, 15), NEW, prompt="support-system@3"),
            request(T(2, 15), OLD, prompt="support-system@4"),
            request(T(2, 15), CLAUDE, prompt="support-system@3"),  # the fallback step's pair
        ],
    )
    payload = coverage(rel, str(path), "--strict")
    assert payload["strict"]["covered"] == 3
    assert spots(payload) == {("prompt-not-live", NEW): 1, ("prompt-not-live", OLD): 1}


# --- timeline ------------------------------------------------------------------------------------


def test_timeline_rows_and_intervals(rel: Path, tmp_path: Path) -> None:
    result = cli("timeline", "support-bot", cwd=rel)
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    production = [r for r in rows if r["stage"] == "production"]
    targets = [(r["model"], r["weight"], r["valid_from"], r["valid_to"], r["tag"][-1])
               for r in production if r["role"] == "target"]  # fmt: skip
    assert targets[:4] == [
        ("support-gpt@2026-03", "100", iso(1, 12), iso(2, 14), "1"),
        ("support-gpt@2026-03", "90", iso(2, 14), iso(3, 10), "2"),
        ("support-gpt@2026-05", "10", iso(2, 14), iso(3, 10), "2"),
        ("support-gpt@2026-05", "100", iso(3, 10), iso(3, 12), "3"),
    ]
    assert targets[-1] == ("support-gpt@2026-05", "100", iso(5, 14), "", "9")
    fallbacks = [r for r in production if r["role"] == "fallback"]
    assert len(fallbacks) == 9 and {r["fallback_position"] for r in fallbacks} == {"1"}
    assert fallbacks[0]["model"] == "support-claude@2026-05" and fallbacks[0]["weight"] == ""
    assert production[-1]["action"] == "promote" and production[-3]["action"] == "rollback"
    commit = git(rel, "rev-parse", "modelctl/support-bot/production/4^{commit}")
    assert {r["commit"] for r in production if r["tag"].endswith("/4")} == {commit}
    # every interval of a stage ends where the next begins
    starts = sorted({r["valid_from"] for r in production})
    ends = sorted({r["valid_to"] for r in production} - {""})
    assert starts[1:] == ends
    out = tmp_path / "timeline.jsonl"
    assert cli("timeline", "--json", "-o", str(out), cwd=rel).exit_code == 0
    records = [json.loads(x) for x in out.read_text().splitlines()]
    every = list(csv.DictReader(io.StringIO(cli("timeline", cwd=rel).stdout)))
    assert len(records) == len(every) == len(rows)  # one route in this registry
    assert list(records[0]) == list(rows[0])
    assert records[0]["weight"] == 100 and records[1]["fallback_position"] == 1
    assert cli("timeline", "--format", "xml", cwd=rel).exit_code == 2
    # A bad question is refused before anything is written: -o keeps its old content.
    unknown = cli("timeline", "nosuchroute", "-o", str(out), cwd=rel)
    assert unknown.exit_code == 2 and "no route 'nosuchroute'" in unknown.stderr
    bad_name = cli("timeline", "../x", "-o", str(out), cwd=rel)
    assert bad_name.exit_code == 2
    assert [json.loads(x) for x in out.read_text().splitlines()] == records
    nowhere = cli("timeline", "-o", str(tmp_path / "missing" / "t.csv"), cwd=rel)
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failing_eval_of_another_candidate_is_not_the_detection(tmp_path: Path) -> None:
    """A rollback without --detected-at is timed from the failing eval of what it rolled
    back: a failing eval of the next candidate, recorded while the release was live, judged
    something else and says nothing about when this regression was found."""
    repo = make_registry(tmp_path / "reg", routes=False)
    ok(repo, "deploy", "support-bot", "--stage", "dev", *OLD_BINDING, env=at(1, 10))
    ok(repo, "promote", "support-bot", "--to", "staging", env=at(1, 11))
    ok(repo, "promote", *PRODUCTION, env=at(1, 12))
    ok(repo, "deploy", "support-bot", "--stage", "dev", *NEW_BINDING, env=at(2, 8))
    ok(repo, "promote", "support-bot", "--to", "staging", env=at(2, 8, 30))
    eval_run(repo, "fixed", "candidate.jsonl", iso(2, 9), 0)
    ok(repo, "promote", *PRODUCTION, env=at(2, 10))
    # The next candidate on staging fails its eval against what production serves (NEW).
    nxt = ["--model", "support-claude@2026-05", "--prompt", "support-system@4",
           "--fallback", "support-gpt@2026-05,support-system@4"]  # fmt: skip
    ok(repo, "deploy", "support-bot", "--stage", "dev", *nxt, env=at(2, 10, 30))
    ok(repo, "promote", "support-bot", "--to", "staging", env=at(2, 10, 40))
    eval_run(repo, "next", "candidate-regressed.jsonl", iso(2, 11), 1)
    ok(repo, "rollback", "support-bot", "--stage", "production", env=at(2, 12))
    data: Any = cli("report", "--json", cwd=repo).json
    [rollback] = data["rollbacks"]
    assert (rollback["detected_at"], rollback["detected_from"]) == (None, None)
    assert rollback["minutes"] is None
