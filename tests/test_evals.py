"""Datasets, evaluators, paired statistics, eval runs and the promote gate."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, cli, git, make_registry, refs_snapshot
from modelctl.evals import evaluators, stats

OUTPUTS = ROOT / "examples" / "outputs"
DATASET = ["--dataset", "support-golden@2026-04"]
FALLBACK3 = "support-claude@2026-05,support-system@3"
FALLBACK4 = "support-claude@2026-05,support-system@4"


# --- statistics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [  # reference values of the Clopper-Pearson interval (95%)
        (5, 10, 0.187086, 0.812914),
        (0, 10, 0.0, 0.308497),
        (10, 10, 0.691503, 1.0),
        (1, 20, 0.001265, 0.248733),
        (50, 100, 0.398321, 0.601679),
    ],
)
def test_clopper_pearson_matches_reference_values(k: int, n: int, low: float, high: float) -> None:
    got = stats.clopper_pearson(k, n, 0.95)
    assert got[0] == pytest.approx(low, abs=2e-6)
    assert got[1] == pytest.approx(high, abs=2e-6)


def test_paired_comparison_uses_discordant_pairs() -> None:
    same = stats.compare([(True, True)] * 20 + [(False, False)] * 10, 0.95)
    assert same.delta == 0 and same.ci_low == 0 and same.ci_high == 0
    worse = stats.compare([(False, True)] * 12 + [(True, True)] * 18, 0.95)
    assert worse.delta == pytest.approx(-0.4)
    assert worse.ci_high < -0.05 and worse.ci_low == pytest.approx(-0.4)
    better = stats.compare([(True, False)] * 5 + [(True, True)] * 25, 0.95)
    assert better.delta == pytest.approx(5 / 30) and better.ci_high == pytest.approx(
        5 / 30, abs=1e-6
    )
    assert better.ci_low == pytest.approx(5 / 30 * (2 * 0.478176 - 1), abs=1e-5)
    assert stats.compare([], 0.95).n == 0


# --- evaluators --------------------------------------------------------------------------------


def verdict(
    spec: str, row: dict[str, Any], output: Any, schema: dict[str, Any] | None = None
) -> bool:
    check = evaluators.builtin_check(evaluators.parse_spec(spec), schema)
    return check(row, output)[0]


def test_builtin_evaluators() -> None:
    row = {"id": "1", "input": "q", "expected": "Settings > Billing"}
    assert verdict("exact_match", row, " Settings > Billing ")
    assert not verdict("exact_match", row, "settings > billing")
    assert verdict("exact_match:ignore_case=true", row, "settings > billing")
    assert verdict("contains", row, "go to settings > billing now")
    assert not verdict("contains:ignore_case=false", row, "go to settings > billing now")
    assert verdict("contains:text=refund", row, "Refund policy")
    assert verdict("regex:pattern=^\\d{3},\\d{3}$", row, "123,456")  # commas inside a value
    assert not verdict("regex:pattern=^\\d+$,fullmatch=true", row, "12a")
    assert verdict("json_valid", row, '{"a": 1}') and not verdict("json_valid", row, "{a")
    schema = {"type": "object", "required": ["answer"]}
    assert verdict("json_schema", row, '{"answer": "x"}', schema)
    assert not verdict("json_schema", row, '{"other": 1}', schema)
    assert verdict("numeric_close:abs=0.01", {**row, "expected": "3.14"}, "3.141")
    assert not verdict("numeric_close", {**row, "expected": "3.14"}, "nan")


def test_evaluator_spec_errors() -> None:
    from modelctl.errors import UsageError

    with pytest.raises(UsageError, match="unknown evaluator"):
        evaluators.parse_spec("bleu")
    with pytest.raises(UsageError, match="key=value"):
        evaluators.parse_spec("regex:^x")
    with pytest.raises(UsageError, match="needs a schema"):
        evaluators.builtin_check(evaluators.parse_spec("json_schema"), None)
    with pytest.raises(UsageError, match="invalid pattern"):
        evaluators.builtin_check(evaluators.parse_spec("regex:pattern=("), None)
    with pytest.raises(UsageError, match="abs='x' is not a number >= 0"):
        evaluators.builtin_check(evaluators.parse_spec("numeric_close:abs=x"), None)
    with pytest.raises(UsageError, match="rel='-1' is not a number >= 0"):
        evaluators.builtin_check(evaluators.parse_spec("numeric_close:rel=-1"), None)
    with pytest.raises(UsageError, match="threshold='high' is not a number"):
        evaluators.parse_spec("external:cmd=judge,threshold=high")
    assert evaluators.parse_spec("external:cmd=judge,threshold=-0.5").threshold == -0.5


# --- eval runs on a real registry --------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return candidate_registry(tmp_path / "reg")


def candidate_registry(where: Path) -> Path:
    """production serves the old binding; staging holds the candidate."""
    path = make_registry(where, routes=False)

    def ok(*args: str) -> None:
        result = cli(*args, cwd=path)
        assert result.exit_code == 0, result.stderr

    old = [
        "--model",
        "support-gpt@2026-03",
        "--prompt",
        "support-system@3",
        "--fallback",
        FALLBACK3,
    ]
    ok("deploy", "support-bot", "--stage", "dev", *old)
    ok("promote", "support-bot", "--to", "staging")
    ok("promote", "support-bot", "--to", "production")  # an empty gated stage bootstraps
    new = [
        "--model",
        "support-gpt@2026-05",
        "--prompt",
        "support-system@4",
        "--fallback",
        FALLBACK4,
    ]
    ok("deploy", "support-bot", "--stage", "dev", *new)
    ok("promote", "support-bot", "--to", "staging")
    return path


def eval_run(repo: Path, candidate: str, *extra: str, baseline: str = "baseline.jsonl") -> Any:
    return cli(
        "eval", "run", "support-bot", "--to", "production", *DATASET,
        "--candidate-outputs", str(OUTPUTS / candidate) if "/" not in candidate else candidate,
        "--baseline-outputs", str(OUTPUTS / baseline) if "/" not in baseline else baseline,
        "--evaluator", "contains", *extra, "--json", cwd=repo,
    )  # fmt: skip


def test_gate_refuses_without_an_eval(repo: Path) -> None:
    result = cli("eval", "gate", "support-bot", "--to", "production", "--json", cwd=repo)
    assert result.exit_code == 1
    payload = result.json
    assert isinstance(payload, dict) and payload["passed"] is False
    assert any(g["gate"] == "eval" and not g["passed"] for g in payload["gates"])


def test_cohort_regression_fails_and_blocks_promote(repo: Path) -> None:
    result = eval_run(repo, "candidate-regressed.jsonl")
    assert result.exit_code == 1
    run = result.json["run"]
    assert run["verdict"] == "fail"
    assert run["overall"]["status"] == "pass"  # the aggregate alone would have let it through
    billing = next(c for c in run["comparisons"] if c["cohort"] == "billing")
    assert billing["status"] == "fail" and billing["delta"] == pytest.approx(-0.4)
    assert billing["ci_high"] < -0.05
    assert (repo / result.json["path"]).is_file()  # the failed run is on record too
    before = refs_snapshot(repo)
    promote = cli("promote", "support-bot", "--to", "production", cwd=repo)
    assert promote.exit_code == 1
    assert f"decided by eval {run['id']} (fail)" in promote.stderr
    assert refs_snapshot(repo) == before


def test_passing_eval_lets_promote_through_and_is_recorded(repo: Path) -> None:
    result = eval_run(repo, "candidate.jsonl")
    assert result.exit_code == 0, result.stderr
    run = result.json["run"]
    assert run["verdict"] == "pass"
    assert (
        run["dataset"]["sha256"]
        == "75dbf8260e3d6869e6a3e928109204cfe29a1e07ae07e18c9ff577fa35965646"
    )
    assert run["candidate"]["targets"][0]["model"] == "support-gpt@2026-05"
    assert run["baseline"]["targets"][0]["model"] == "support-gpt@2026-03"
    assert {c["cohort"] for c in run["comparisons"]} == {"account", "billing", "technical"}
    assert cli("eval", "gate", "support-bot", "--to", "production", cwd=repo).exit_code == 0
    promote = cli(
        "promote", "support-bot", "--to", "production", "--canary", "10", "--json", cwd=repo
    )
    assert promote.exit_code == 0, promote.stderr
    assert promote.json["eval_id"] == run["id"]
    assert f"Modelctl-Eval: {run['id']}" in git(repo, "log", "-1", "--format=%B")
    # completing the canary is judged by the same eval (its baseline is the pre-canary binding)
    complete = cli("promote", "support-bot", "--to", "production", "--json", cwd=repo)
    assert complete.exit_code == 0, complete.stderr
    history = cli("history", "support-bot", "--stage", "production", "--json", cwd=repo).json
    assert history["events"][-1]["eval_id"] == run["id"]
    assert cli("validate", cwd=repo).exit_code == 0


def test_stale_baseline_is_refused_naming_both(repo: Path) -> None:
    assert eval_run(repo, "candidate.jsonl").exit_code == 0
    # production changes after the eval: the eval's baseline is no longer what it serves
    other = [
        "--model",
        "support-claude@2026-05",
        "--prompt",
        "support-system@3",
        "--fallback",
        "support-gpt@2026-03,support-system@3",
    ]
    settings = repo / "modelctl.yaml"
    assert cli("deploy", "support-bot", "--stage", "production", *other, cwd=repo).exit_code == 1
    text = settings.read_text()
    settings.write_text(
        text.replace("    eval_gate:", "    eval_gate_off:").replace(
            "eval_gate_off:\n      max_regression: 0.05\n      min_samples: 20\n      confidence: 0.95\n",
            "",
        )
    )
    git(repo, "commit", "-qam", "lift the gate for a moment")
    assert cli("deploy", "support-bot", "--stage", "production", *other, cwd=repo).exit_code == 0
    git(repo, "checkout", "HEAD~2", "--", "modelctl.yaml")
    git(repo, "commit", "-qm", "gate back")
    result = cli("promote", "support-bot", "--to", "production", cwd=repo)
    assert result.exit_code == 1
    assert "a stale baseline" in result.stderr
    assert "support-gpt@2026-03+support-system@3" in result.stderr  # the eval's baseline
    assert "support-claude@2026-05+support-system@3" in result.stderr  # what production serves


def test_missing_unknown_and_duplicate_outputs(repo: Path, tmp_path: Path) -> None:
    lines = (OUTPUTS / "candidate.jsonl").read_text().splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[:-5]) + "\n")
    result = eval_run(repo, str(short))
    assert result.exit_code == 2 and "5 dataset row(s) have no candidate output" in result.stderr
    fail = eval_run(repo, str(short), "--allow-missing", "fail")
    assert fail.json["run"]["missing"] == {"candidate": 5}
    assert fail.json["run"]["overall"]["n"] == 90
    skip = eval_run(repo, str(short), "--allow-missing", "skip")
    assert skip.json["run"]["overall"]["n"] == 85 and skip.json["run"]["missing"]["skipped"] == 5
    extra = tmp_path / "extra.jsonl"
    extra.write_text(
        "\n".join([*lines, lines[0], json.dumps({"id": "nope", "output": "x"})]) + "\n"
    )
    result = eval_run(repo, str(extra))
    assert result.exit_code == 1
    assert (
        "duplicate id 'bill-001'" in result.stderr
        and "id 'nope' is not in the dataset" in result.stderr
    )


def test_underpowered_cohort_is_not_passed(repo: Path, tmp_path: Path) -> None:
    settings = repo / "modelctl.yaml"
    settings.write_text(settings.read_text().replace("min_samples: 20", "min_samples: 40"))
    git(repo, "commit", "-qam", "min_samples: 40")
    result = eval_run(repo, "candidate.jsonl")
    assert result.exit_code == 1
    cohorts = {c["cohort"]: c["status"] for c in result.json["run"]["comparisons"]}
    assert set(cohorts.values()) == {"underpowered"}
    assert result.json["run"]["overall"]["status"] == "pass"


def test_dataset_digest_is_checked(repo: Path) -> None:
    data = repo / "datasets/support-golden/2026-04.jsonl"
    data.write_text(data.read_text().replace("Settings > Members", "Settings > Team"))
    result = eval_run(repo, "candidate.jsonl")
    assert result.exit_code == 1 and "sha256 differs from the digest pinned" in result.stderr
    check = cli("dataset", "verify", "--json", cwd=repo)
    assert check.exit_code == 1 and check.json["datasets"][0]["status"] == "mismatch"


def test_dataset_rows_without_ids_are_refused_by_eval(repo: Path) -> None:
    """A dataset registered by its digest alone was never read: eval reads it carefully."""
    rows = b'{"id": "a", "input": "x"}\n{"input": "no id"}\n{"id": "a", "input": "again"}\n'
    (repo / "datasets/noid").mkdir()
    (repo / "datasets/noid/1.jsonl").write_bytes(rows)
    (repo / "datasets/noid/1.yaml").write_text(
        "apiVersion: modelctl/v1\nkind: Dataset\nname: noid\nversion: '1'\n"
        f"uri: datasets/noid/1.jsonl\nsha256: {hashlib.sha256(rows).hexdigest()}\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a dataset registered by digest")
    result = cli(
        "eval", "run", "support-bot", "--to", "production", "--dataset", "noid@1",
        "--candidate-outputs", str(OUTPUTS / "candidate.jsonl"),
        "--baseline-outputs", str(OUTPUTS / "baseline.jsonl"), "--evaluator", "contains",
        cwd=repo,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    text = " ".join(result.stderr.split())
    assert "datasets/noid/1.jsonl:2: id: every row needs an id" in text
    assert "datasets/noid/1.jsonl:3: id: duplicate id 'a'" in text


def test_an_uncommitted_eval_run_is_not_overwritten(repo: Path) -> None:
    first = eval_run(repo, "candidate.jsonl", "--run-id", "r1", "--no-commit")
    assert first.exit_code == 0, first.stderr
    written = (repo / "evals/support-bot/r1.yaml").read_bytes()
    again = eval_run(repo, "candidate.jsonl", "--run-id", "r1", "--no-commit")
    assert again.exit_code == 3 and "already exists; eval runs are immutable" in again.stderr
    assert (repo / "evals/support-bot/r1.yaml").read_bytes() == written


def test_dataset_verify_ok_and_remote(repo: Path) -> None:
    assert (
        cli(
            "add",
            "dataset",
            "big",
            "1",
            "--uri",
            "s3://b/big.jsonl",
            "--sha256",
            "a" * 64,
            cwd=repo,
        ).exit_code
        == 0
    )
    result = cli("dataset", "verify", "--json", cwd=repo)
    assert result.exit_code == 0
    status = {d["ref"]: d["status"] for d in result.json["datasets"]}
    assert status == {"big@1": "remote", "support-golden@2026-04": "ok"}


def _judge_script(tmp_path: Path) -> Path:
    script = tmp_path / "judge.py"
    script.write_text(
        "import json, sys\n"
        "for line in sys.stdin:\n"
        "    row = json.loads(line)\n"
        "    score = 5 if row['expected'].lower() in row['output'].lower() else 1\n"
        "    print(json.dumps({'id': row['id'], 'score': score, 'reason': row['side']}))\n"
    )
    return script


def test_external_evaluator_and_judge_pin(repo: Path, tmp_path: Path) -> None:
    script = _judge_script(tmp_path)
    result = eval_run(
        repo,
        "candidate.jsonl",
        "--evaluator",
        f"external:cmd={sys.executable} {script},threshold=4,name=grounded",
    )
    assert result.exit_code == 0, result.stderr
    names = {e["name"] for e in result.json["run"]["evaluators"]}
    assert names == {"contains", "grounded"}
    # a judge manifest with a command runs the same way, and its pin is recorded
    add = cli(
        "add", "judge", "grounded", "2", "--model", "judge-gpt@2026-01", "--rubric",
        "groundedness-rubric@1", "--evaluator", "groundedness", "--threshold", "4",
        "--command", f"{sys.executable} {script}", cwd=repo,
    )  # fmt: skip
    assert add.exit_code == 0, add.stderr
    judged = eval_run(repo, "candidate.jsonl", "--judge", "grounded@2", "--run-id", "judged-1")
    assert judged.exit_code == 0, judged.stderr
    assert judged.json["run"]["judges"] == ["grounded@2"]
    no_command = eval_run(repo, "candidate.jsonl", "--judge", "groundedness@1")
    assert no_command.exit_code == 2 and "has no command" in no_command.stderr


def test_external_evaluator_errors_name_the_command(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.stdin.read()\nprint('not json')\n")
    result = eval_run(
        repo, "candidate.jsonl", "--evaluator", f"external:cmd={sys.executable} {bad}"
    )
    assert (
        result.exit_code == 1
        and "bad.py" in result.stderr
        and "expected {id, score, passed, reason}" in result.stderr
    )
    crash = tmp_path / "crash.py"
    crash.write_text("raise SystemExit('judge api key missing')\n")
    result = eval_run(
        repo, "candidate.jsonl", "--evaluator", f"external:cmd={sys.executable} {crash}"
    )
    assert result.exit_code == 2 and "judge api key missing" in result.stderr


def test_record_modelctl_results(repo: Path, tmp_path: Path) -> None:
    rows = [
        json.loads(x)
        for x in (repo / "datasets/support-golden/2026-04.jsonl").read_text().splitlines()
    ]
    results = tmp_path / "results.jsonl"
    with results.open("w") as fh:
        for row in rows:
            for side in ("candidate", "baseline"):
                fh.write(
                    json.dumps(
                        {"id": row["id"], "side": side, "evaluator": "human", "passed": True}
                    )
                    + "\n"
                )
    result = cli(
        "eval", "record", str(results), "--route", "support-bot", "--to", "production", *DATASET, "--json",
        cwd=repo,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.json["run"]["source"] == "modelctl-record"
    assert result.json["run"]["evaluators"] == [{"name": "human"}]


def test_record_promptfoo_output(repo: Path, tmp_path: Path) -> None:
    rows = [
        json.loads(x)
        for x in (repo / "datasets/support-golden/2026-04.jsonl").read_text().splitlines()
    ]
    results = []
    for index, row in enumerate(rows):
        for provider, ok in (
            ("openai:gpt-4.1-mini", True),
            ("openai:gpt-4o-mini", row["cohort"] != "billing"),
        ):
            results.append(
                {
                    "provider": {"id": provider},
                    "vars": {"id": row["id"], "question": row["input"]},
                    "success": ok,
                    "score": float(ok),
                    "testIdx": index,
                    "promptIdx": 0,
                }
            )
    out = tmp_path / "promptfoo.json"
    out.write_text(json.dumps({"evalId": "x", "results": {"version": 3, "results": results}}))
    base = [
        "eval",
        "record",
        str(out),
        "--route",
        "support-bot",
        "--to",
        "production",
        *DATASET,
        "--json",
    ]
    result = cli(
        *base,
        "--candidate-label",
        "openai:gpt-4.1-mini",
        "--baseline-label",
        "openai:gpt-4o-mini",
        cwd=repo,
    )
    assert result.exit_code == 0, result.stderr
    billing = next(c for c in result.json["run"]["comparisons"] if c["cohort"] == "billing")
    assert billing["candidate"]["rate"] == 1.0 and billing["baseline"]["rate"] == 0.0
    assert result.json["run"]["source"] == "promptfoo"
    unlabelled = cli(*base, cwd=repo)
    assert unlabelled.exit_code == 2 and "--candidate-label" in unlabelled.stderr


def test_an_eval_on_a_dataset_without_cohorts_prints_its_result(repo: Path, tmp_path: Path) -> None:
    """A run with no per-cohort comparisons is committed without that (empty) field: the text
    output must not need it (it ended in an internal error after the run was committed)."""
    rows = tmp_path / "rows.jsonl"
    outputs = tmp_path / "out.jsonl"
    rows.write_text(
        "".join(json.dumps({"id": f"q{i}", "expected": "yes"}) + "\n" for i in range(30))
    )
    outputs.write_text(
        "".join(json.dumps({"id": f"q{i}", "output": "yes"}) + "\n" for i in range(30))
    )
    added = cli("add", "dataset", "flat", "1", "--file", str(rows), cwd=repo)
    assert added.exit_code == 0, added.stderr
    result = cli(
        "eval", "run", "support-bot", "--to", "production", "--dataset", "flat@1",
        "--candidate-outputs", str(outputs), "--baseline-outputs", str(outputs),
        "--evaluator", "contains", "--run-id", "flat-run", cwd=repo,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "verdict: pass" in result.stderr + result.stdout
