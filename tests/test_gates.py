"""The eval gate's memory: the newest run decides, rollbacks need a fresh eval, explicit
baselines from releases, and runs that compare a binding with itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import cli, git, refs_snapshot
from test_evals import DATASET, OUTPUTS, candidate_registry, eval_run

ROUTE = "support-bot"
OLD = "support-gpt@2026-03+support-system@3"  # what production serves in the fixture
NEW = "support-gpt@2026-05+support-system@4"  # what staging serves: the candidate


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return candidate_registry(tmp_path / "reg")


def _ok(repo: Path, *args: str) -> Any:
    result = cli(*args, cwd=repo)
    assert result.exit_code == 0, result.stderr
    return result


def _gate(repo: Path) -> Any:
    return cli("eval", "gate", ROUTE, "--to", "production", "--json", cwd=repo)


def _eval_gate(payload: Any) -> dict[str, Any]:
    return next(g for g in payload["gates"] if g["gate"] == "eval")


def _run_uncommitted(repo: Path, outputs: str, run_id: str, created: str) -> None:
    """An eval run committed by hand, with a `created` text that lies about when it ran."""
    result = eval_run(repo, outputs, "--run-id", run_id, "--no-commit")
    assert result.exit_code in (0, 1), result.stderr
    path = repo / result.json["path"]
    data = yaml.safe_load(path.read_text())
    data["created"] = created
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(repo, "add", str(path))
    git(repo, "commit", "-qm", f"record {run_id}")


# --- the newest run decides --------------------------------------------------------------------


def test_a_later_failing_run_vetoes_an_earlier_pass(repo: Path) -> None:
    assert eval_run(repo, "candidate.jsonl", "--run-id", "first-pass").exit_code == 0
    assert eval_run(repo, "candidate-regressed.jsonl", "--run-id", "then-fail").exit_code == 1
    before = refs_snapshot(repo)
    gate = _gate(repo)
    assert gate.exit_code == 1
    result = _eval_gate(gate.json)
    assert result["passed"] is False
    assert result["decided_by"]["id"] == "then-fail"
    assert [r["id"] for r in result["overridden"]] == ["first-pass"]
    text = cli("promote", ROUTE, "--to", "production", "--dry-run", cwd=repo)
    assert text.exit_code == 1
    assert "then-fail" in text.stderr and "first-pass" in text.stderr
    assert refs_snapshot(repo) == before


@pytest.mark.parametrize(
    ("setting", "stricter"),
    [("min_samples: 20", "min_samples: 1000"), ("max_regression: 0.05", "max_regression: 0.0")],
)
def test_a_run_judged_more_leniently_than_the_stage_now_asks_does_not_count(
    repo: Path, setting: str, stricter: str
) -> None:
    """The registry tightened production's eval gate after a run passed: the run's verdict
    was reached with the old, laxer thresholds, so it says nothing about the gate as it is."""
    assert eval_run(repo, "candidate.jsonl", "--run-id", "lenient").exit_code == 0
    settings = repo / "modelctl.yaml"
    settings.write_text(settings.read_text().replace(setting, stricter))
    git(repo, "commit", "-qam", "production asks more of its evals")
    gate = _gate(repo)
    assert gate.exit_code == 1, gate.stdout
    assert _eval_gate(gate.json)["passed"] is False
    text = cli("promote", ROUTE, "--to", "production", "--dry-run", cwd=repo).stderr
    assert "eval lenient does not count" in text and stricter.split(":")[0] in text


def test_a_later_pass_overrides_an_earlier_fail_and_says_so(repo: Path) -> None:
    assert eval_run(repo, "candidate-regressed.jsonl", "--run-id", "early-fail").exit_code == 1
    assert eval_run(repo, "candidate.jsonl", "--run-id", "later-pass").exit_code == 0
    gate = _gate(repo)
    assert gate.exit_code == 0, gate.stdout
    result = _eval_gate(gate.json)
    assert result["decided_by"] == {"id": "later-pass", "verdict": "pass", "dataset": DATASET[1]}
    assert [r["id"] for r in result["overridden"]] == ["early-fail"]
    dry = cli("promote", ROUTE, "--to", "production", "--dry-run", cwd=repo)
    assert dry.exit_code == 0, dry.stderr
    assert "decided by eval later-pass" in dry.stderr
    assert "overrides eval early-fail (fail)" in dry.stderr
    dry_json = cli("promote", ROUTE, "--to", "production", "--dry-run", "--json", cwd=repo)
    assert _eval_gate(dry_json.json)["overridden"][0]["verdict"] == "fail"


def test_commit_order_decides_not_the_created_text(repo: Path) -> None:
    # The pass claims to have run in 2099, but the failing run was committed after it.
    _run_uncommitted(repo, "candidate.jsonl", "claims-newest", "2099-01-01T00:00:00Z")
    assert eval_run(repo, "candidate-regressed.jsonl", "--run-id", "really-newest").exit_code == 1
    gate = _gate(repo)
    assert gate.exit_code == 1
    assert _eval_gate(gate.json)["decided_by"]["id"] == "really-newest"


def test_runs_committed_together_let_the_fail_decide(repo: Path) -> None:
    for outputs, run_id in (("candidate.jsonl", "together-pass"),
                            ("candidate-regressed.jsonl", "together-fail")):  # fmt: skip
        assert eval_run(repo, outputs, "--run-id", run_id, "--no-commit").exit_code in (0, 1)
    git(repo, "add", "evals")
    git(repo, "commit", "-qm", "two runs at once")
    gate = _gate(repo)
    assert gate.exit_code == 1
    result = _eval_gate(gate.json)
    assert result["decided_by"]["id"] == "together-fail"
    assert [r["id"] for r in result["overridden"]] == ["together-pass"]


def test_a_run_merged_in_later_is_newer_than_its_clock_says(repo: Path) -> None:
    # The fail ran first, on a side branch; the pass ran later on main. The branch received
    # the fail last, with the merge, so the fail decides.
    git(repo, "checkout", "-q", "-b", "side")
    assert eval_run(repo, "candidate-regressed.jsonl", "--run-id", "side-fail").exit_code == 1
    git(repo, "checkout", "-q", "main")
    assert eval_run(repo, "candidate.jsonl", "--run-id", "main-pass").exit_code == 0
    assert _gate(repo).exit_code == 0
    git(repo, "merge", "-q", "--no-ff", "-m", "merge the side branch", "side")
    gate = _gate(repo)
    assert gate.exit_code == 1
    result = _eval_gate(gate.json)
    assert result["decided_by"]["id"] == "side-fail"
    assert [r["id"] for r in result["overridden"]] == ["main-pass"]


def test_runs_for_another_dataset_or_baseline_do_not_override(repo: Path) -> None:
    # A failing run against another baseline says nothing about this candidate vs production.
    assert eval_run(repo, "candidate.jsonl", "--run-id", "vs-production").exit_code == 0
    other = eval_run(
        repo, "candidate-regressed.jsonl", "--run-id", "vs-dev", "--baseline-from", "dev"
    )
    assert other.exit_code == 1
    gate = _gate(repo)
    assert gate.exit_code == 0, gate.stdout
    result = _eval_gate(gate.json)
    assert result["decided_by"]["id"] == "vs-production" and result["overridden"] == []


def test_a_run_on_a_newer_version_of_the_dataset_answers_a_fail_on_an_older_one(
    repo: Path,
) -> None:
    """Fixing a dataset is a new version; its run decides for that dataset from then on. A
    fail on another dataset still vetoes (see the test above)."""
    assert eval_run(repo, "candidate-regressed.jsonl", "--run-id", "old-rows").exit_code == 1
    rows = repo / "datasets" / "support-golden" / "2026-04.jsonl"
    added = cli("add", "dataset", "support-golden", "2026-05", "--file", str(rows), cwd=repo)
    assert added.exit_code == 0, added.stderr
    newer = cli(
        "eval", "run", ROUTE, "--to", "production", "--dataset", "support-golden@2026-05",
        "--candidate-outputs", str(OUTPUTS / "candidate.jsonl"),
        "--baseline-outputs", str(OUTPUTS / "baseline.jsonl"),
        "--evaluator", "contains", "--run-id", "new-rows", cwd=repo,
    )  # fmt: skip
    assert newer.exit_code == 0, newer.stderr
    gate = _gate(repo)
    assert gate.exit_code == 0, gate.stdout
    result = _eval_gate(gate.json)
    assert result["decided_by"]["id"] == "new-rows"
    assert [r["id"] for r in result["overridden"]] == ["old-rows"]


def test_a_later_run_on_an_older_version_of_the_dataset_does_not_answer_a_newer_fail(
    repo: Path,
) -> None:
    """The other way round: the candidate fails on the fixed dataset (the newer version), so
    someone re-runs it on the older, easier version. Recorded later, that pass must not decide:
    the newest version of a dataset asks the question."""
    rows = repo / "datasets" / "support-golden" / "2026-04.jsonl"
    added = cli("add", "dataset", "support-golden", "2026-05", "--file", str(rows), cwd=repo)
    assert added.exit_code == 0, added.stderr
    newer = cli(
        "eval", "run", ROUTE, "--to", "production", "--dataset", "support-golden@2026-05",
        "--candidate-outputs", str(OUTPUTS / "candidate-regressed.jsonl"),
        "--baseline-outputs", str(OUTPUTS / "baseline.jsonl"),
        "--evaluator", "contains", "--run-id", "new-rows", cwd=repo,
    )  # fmt: skip
    assert newer.exit_code == 1, newer.stderr
    assert eval_run(repo, "candidate.jsonl", "--run-id", "old-rows-again").exit_code == 0
    gate = _gate(repo)
    assert gate.exit_code == 1, gate.stdout
    result = _eval_gate(gate.json)
    assert result["decided_by"]["id"] == "new-rows"
    assert [r["id"] for r in result["overridden"]] == ["old-rows-again"]


# --- rolled-back bindings need a fresh eval ----------------------------------------------------


def _promote_and_roll_back(repo: Path, *promote: str) -> str:
    assert eval_run(repo, "candidate.jsonl", "--run-id", "before-incident").exit_code == 0
    _ok(repo, "promote", ROUTE, "--to", "production", *promote)
    rolled = _ok(
        repo,
        "rollback",
        ROUTE,
        "--stage",
        "production",
        "--reason",
        "refunds answered wrong",
        "--json",
    )
    tag = rolled.json["tag"]
    assert isinstance(tag, str)
    return tag


def test_a_rolled_back_binding_needs_an_eval_after_the_rollback(repo: Path) -> None:
    tag = _promote_and_roll_back(repo)
    before = refs_snapshot(repo)
    dry = cli("promote", ROUTE, "--to", "production", "--dry-run", cwd=repo)
    assert dry.exit_code == 1
    assert tag in dry.stderr and "refunds answered wrong" in dry.stderr
    assert "before-incident" in dry.stderr
    gate = _gate(repo)
    assert gate.exit_code == 1
    result = _eval_gate(gate.json)
    assert result["rollback"] == tag
    assert [r["id"] for r in result["overridden"]] == ["before-incident"]
    assert cli("promote", ROUTE, "--to", "production", cwd=repo).exit_code == 1
    assert refs_snapshot(repo) == before
    # A fresh eval, recorded after the rollback, lets it return.
    assert eval_run(repo, "candidate.jsonl", "--run-id", "after-incident").exit_code == 0
    gate = _gate(repo)
    assert gate.exit_code == 0, gate.stdout
    result = _eval_gate(gate.json)
    assert result["decided_by"]["id"] == "after-incident"
    assert [r["id"] for r in result["overridden"]] == ["before-incident"]
    promoted = _ok(repo, "promote", ROUTE, "--to", "production", "--json")
    assert promoted.json["eval_id"] == "after-incident"


def test_deploying_a_rolled_back_binding_needs_a_fresh_eval_too(repo: Path) -> None:
    tag = _promote_and_roll_back(repo)
    new = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4"]
    new += ["--fallback", "support-claude@2026-05,support-system@4"]
    deploy = cli("deploy", ROUTE, "--stage", "production", *new, "--dry-run", cwd=repo)
    assert deploy.exit_code == 1
    assert tag in deploy.stderr and "refunds answered wrong" in deploy.stderr


def test_a_rolled_back_canary_needs_a_fresh_eval_too(repo: Path) -> None:
    tag = _promote_and_roll_back(repo, "--canary", "10")
    dry = cli("promote", ROUTE, "--to", "production", "--canary", "10", "--dry-run", cwd=repo)
    assert dry.exit_code == 1
    assert tag in dry.stderr and "refunds answered wrong" in dry.stderr


def test_a_rollback_of_another_binding_does_not_ask_for_a_fresh_eval(repo: Path) -> None:
    # A rollback on another stage, of another binding: the candidate's eval still counts.
    assert eval_run(repo, "candidate.jsonl", "--run-id", "unrelated").exit_code == 0
    _ok(repo, "deploy", ROUTE, "--stage", "dev", "--model", "support-claude@2026-05")
    _ok(repo, "rollback", ROUTE, "--stage", "dev", "--reason", "dev only")
    gate = _gate(repo)
    assert gate.exit_code == 0, gate.stdout


# --- baselines from releases -------------------------------------------------------------------


def test_baseline_from_a_tag_a_sequence_or_a_commit(repo: Path) -> None:
    assert eval_run(repo, "candidate.jsonl").exit_code == 0
    _ok(repo, "promote", ROUTE, "--to", "production")  # production/2 serves NEW now
    tag = f"modelctl/{ROUTE}/production/1"
    commit = git(repo, "rev-parse", f"{tag}^{{commit}}")
    for value in (tag, f"refs/tags/{tag}", "1", commit, commit[:12]):
        result = eval_run(
            repo, "candidate.jsonl", "--baseline-from", value, "--no-commit",
            "--run-id", f"from-{len(value)}-{value[:3].replace('/', '-')}",
        )  # fmt: skip
        assert result.exit_code == 0, (value, result.stderr)
        run = result.json["run"]
        assert run["baseline"]["targets"][0]["model"] == "support-gpt@2026-03", value
        assert run["candidate"]["targets"][0]["model"] == "support-gpt@2026-05", value


def test_baseline_from_also_works_for_eval_record(repo: Path, tmp_path: Path) -> None:
    results = _all_pass_results(repo, tmp_path)
    recorded = cli(
        "eval", "record", str(results), "--route", ROUTE, "--to", "production", *DATASET,
        "--baseline-from", f"modelctl/{ROUTE}/production/1", "--no-commit", "--json", cwd=repo,
    )  # fmt: skip
    assert recorded.exit_code == 0, recorded.stderr
    assert recorded.json["run"]["baseline"]["targets"][0]["model"] == "support-gpt@2026-03"


def test_bad_baseline_from_values_exit_2_naming_the_value(repo: Path) -> None:
    cases = {
        "nonsense-value": "nonsense-value",
        "99": "no event 99",
        "modelctl/other-route/production/1": "other-route",
        f"modelctl/{ROUTE}/production/7": "no event 7",
        "2000-01-01T00:00:00Z": "served nothing",
    }
    for value, expected in cases.items():
        result = eval_run(repo, "candidate.jsonl", "--baseline-from", value, "--no-commit")
        assert result.exit_code == 2, (value, result.stdout)
        assert "--baseline-from" in result.stderr and expected in result.stderr, result.stderr
        assert "stage" in result.stderr and "tag" in result.stderr, result.stderr


# --- a run that compares a binding with itself -------------------------------------------------


def _all_pass_results(repo: Path, tmp_path: Path) -> Path:
    import json

    rows = (repo / "datasets/support-golden/2026-04.jsonl").read_text().splitlines()
    results = tmp_path / "results.jsonl"
    with results.open("w") as fh:
        for row in rows:
            rid = json.loads(row)["id"]
            for side in ("candidate", "baseline"):
                line = {"id": rid, "side": side, "evaluator": "human", "passed": True}
                fh.write(json.dumps(line) + "\n")
    return results


def test_a_self_baseline_run_warns_and_does_not_count(repo: Path) -> None:
    result = eval_run(repo, "candidate.jsonl", "--baseline-from", "staging", "--run-id", "selfie")
    assert result.exit_code == 0, result.stderr
    warnings = result.json["warnings"]
    assert any("--baseline-from" in w and "itself" in w for w in warnings), warnings
    text = cli(
        "eval", "run", ROUTE, "--to", "production", *DATASET,
        "--candidate-outputs", str(OUTPUTS / "candidate.jsonl"),
        "--baseline-outputs", str(OUTPUTS / "candidate.jsonl"),
        "--evaluator", "contains", "--baseline-from", "staging", "--no-commit", "--run-id", "s2",
        cwd=repo,
    )  # fmt: skip
    assert text.exit_code == 0 and "--baseline-from" in text.stderr and "itself" in text.stderr
    gate = _gate(repo)
    assert gate.exit_code == 1
    detail = _eval_gate(gate.json)["detail"]
    assert "selfie" in detail and "with itself" in detail and "stale baseline" not in detail


def test_a_self_baseline_record_warns(repo: Path, tmp_path: Path) -> None:
    results = _all_pass_results(repo, tmp_path)
    args = ["eval", "record", str(results), "--route", ROUTE, "--to", "production", *DATASET]
    args += ["--baseline-from", "staging", "--no-commit"]
    recorded = cli(*args, "--json", cwd=repo)
    assert recorded.exit_code == 0, recorded.stderr
    assert any("--baseline-from" in w for w in recorded.json["warnings"])
    text = cli(*args, "--run-id", "again", cwd=repo)
    assert "--baseline-from" in text.stderr and "itself" in text.stderr
