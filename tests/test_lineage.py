"""Lineage on a real registry whose history was made with the CLI: deploy, promote, a passing
eval, a canary, its completion and a rollback to the canary."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, cli, git, make_registry

OUTPUTS = ROOT / "examples" / "outputs"
OLD = ["--model", "support-gpt@2026-03", "--prompt", "support-system@3",
       "--fallback", "support-claude@2026-05,support-system@3"]  # fmt: skip
NEW = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4",
       "--fallback", "support-claude@2026-05,support-system@4"]  # fmt: skip
CODE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
FINE_TUNED = f"""\
apiVersion: modelctl/v1
kind: Model
name: support-ft
version: 2026-06
provider: self-hosted
provider_model: support-ft-2026-06
endpoint: https://llm.acme.example/v1
artifact:
  uri: s3://acme-models/support-ft/2026-06/
  sha256: {"ab" * 32}
lineage:
  trained_on: [support-golden@2026-04]
  base: support-gpt@2026-05
  code:
    repo: https://github.com/acme/support-training
    commit: {CODE_COMMIT}
    path: train.py
"""


def ok(repo: Path, *args: str) -> Any:
    result = cli(*args, cwd=repo)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_registry(tmp_path_factory.mktemp("lineage") / "reg", routes=False)
    (path / "models" / "support-ft").mkdir()
    (path / "models" / "support-ft" / "2026-06.yaml").write_text(FINE_TUNED)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "a fine-tuned model")
    ok(path, "deploy", "support-bot", "--stage", "dev", *OLD)  # dev 1
    ok(path, "promote", "support-bot", "--to", "staging")  # staging 1
    ok(path, "promote", "support-bot", "--to", "production")  # production 1, bootstraps
    ok(path, "deploy", "support-bot", "--stage", "dev", *NEW)  # dev 2
    ok(path, "promote", "support-bot", "--to", "staging")  # staging 2
    ok(
        path, "eval", "run", "support-bot", "--to", "production",
        "--dataset", "support-golden@2026-04", "--run-id", "fixed", "--evaluator", "contains",
        "--candidate-outputs", str(OUTPUTS / "candidate.jsonl"),
        "--baseline-outputs", str(OUTPUTS / "baseline.jsonl"),
    )  # fmt: skip
    ok(path, "promote", "support-bot", "--to", "production", "--canary", "10")  # production 2
    ok(path, "promote", "support-bot", "--to", "production")  # production 3
    ok(path, "rollback", "support-bot", "--stage", "production", "--to", "2")  # production 4
    return path


def lineage(repo: Path, *args: str) -> dict[str, Any]:
    result = cli("lineage", *args, "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr
    payload = result.json
    assert isinstance(payload, dict)
    return payload


def edge(payload: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    found = [e for e in payload["edges"] if e["source"] == source and e["target"] == target]
    assert len(found) == 1, (source, target, payload["edges"])
    return found[0]


def node_ids(payload: dict[str, Any]) -> set[str]:
    return {n["id"] for n in payload["nodes"]}


# --- upstream --------------------------------------------------------------------------------


def test_upstream_of_a_model_data_base_models_and_code(repo: Path) -> None:
    payload = lineage(repo, "support-ft@2026-06", "--up")
    assert payload["roots"] == ["models/support-ft@2026-06"]
    code = f"code:https://github.com/acme/support-training@{CODE_COMMIT}"
    assert node_ids(payload) == {
        "models/support-ft@2026-06",
        "datasets/support-golden@2026-04",
        "models/support-gpt@2026-05",
        "models/support-gpt@2026-03",  # the base of the base
        code,
        "source:https://support.acme.example/exports/tickets-2026-04",
    }
    root = "models/support-ft@2026-06"
    assert edge(payload, "datasets/support-golden@2026-04", root)["relation"] == "trained_on"
    assert edge(payload, "models/support-gpt@2026-05", root)["relation"] == "base"
    assert edge(payload, code, root)["relation"] == "code"
    code_node = next(n for n in payload["nodes"] if n["id"] == code)
    assert code_node["detail"] == {
        "repo": "https://github.com/acme/support-training",
        "commit": CODE_COMMIT,
        "path": "train.py",
    }
    assert all(e["side"] == "up" for e in payload["edges"])


def test_depth_limits_the_walk(repo: Path) -> None:
    one = lineage(repo, "support-ft@2026-06", "--up", "--depth", "1")
    assert "models/support-gpt@2026-03" not in node_ids(one)
    assert "models/support-gpt@2026-05" in node_ids(one)
    assert {n["distance"] for n in one["nodes"]} == {0, 1}
    zero = lineage(repo, "support-ft@2026-06", "--depth", "0")
    assert node_ids(zero) == {"models/support-ft@2026-06"} and zero["edges"] == []


def test_a_stage_upstream_is_what_it_serves_now_and_its_pins(repo: Path) -> None:
    payload = lineage(repo, "support-bot", "--stage", "production", "--up")
    stage = "routes/support-bot/production"
    assert payload["roots"] == [stage]
    old = edge(payload, "models/support-gpt@2026-03", stage)
    assert old["relation"] == "serves" and old["current"] is True
    # served twice: until the canary was completed, and again since the rollback to the canary
    spans = [(p["start"]["seq"], p["end"] and p["end"]["seq"], p["weight"]) for p in old["periods"]]
    assert spans == [(1, 3, 90), (4, None, 90)]
    new = edge(payload, "models/support-gpt@2026-05", stage)
    assert [(p["start"]["seq"], p["start"]["canary"], p["end"]) for p in new["periods"]] == [
        (2, 10, None)
    ]
    fallback = edge(payload, "models/support-claude@2026-05", stage)
    assert fallback["relation"] == "fallback"
    # the rollback restored the canary, which eval `fixed` gated: that eval is a pin of it
    gated = edge(payload, "evals/support-bot/fixed", stage)
    assert gated["relation"] == "gated" and gated["current"] is True
    assert [e["seq"] for e in gated["events"]] == [2, 3]
    ids = node_ids(payload)
    assert {"prompts/support-system@3", "prompts/support-system@4"} <= ids  # prompt pins
    assert "datasets/support-golden@2026-04" in ids  # through the eval
    eval_node = next(n for n in payload["nodes"] if n["id"] == "evals/support-bot/fixed")
    assert eval_node["detail"]["verdict"] == "pass"


def test_upstream_skips_what_a_stage_no_longer_serves(repo: Path) -> None:
    payload = lineage(repo, "support-bot", "--stage", "dev", "--up", "--depth", "1")
    assert node_ids(payload) == {
        "routes/support-bot/dev",
        "models/support-gpt@2026-05",
        "prompts/support-system@4",
        "models/support-claude@2026-05",
    }


def test_a_route_starts_from_all_its_stages_in_order(repo: Path) -> None:
    payload = lineage(repo, "support-bot", "--up", "--depth", "1")
    assert payload["roots"] == [
        "routes/support-bot/dev",
        "routes/support-bot/staging",
        "routes/support-bot/production",
    ]


# --- downstream ------------------------------------------------------------------------------


def test_downstream_of_a_model_evals_stages_and_events(repo: Path) -> None:
    payload = lineage(repo, "models/support-gpt@2026-03", "--down")
    root = "models/support-gpt@2026-03"
    assert edge(payload, root, "models/support-gpt@2026-05")["relation"] == "base"
    assert edge(payload, root, "evals/support-bot/fixed")["relation"] == "baseline"
    dev = edge(payload, root, "routes/support-bot/dev")
    assert dev["relation"] == "served" and dev["current"] is False
    (period,) = dev["periods"]
    assert period["start"]["action"] == "deploy" and period["start"]["seq"] == 1
    assert period["end"]["seq"] == 2 and period["end"]["tag"] == "modelctl/support-bot/dev/2"
    production = edge(payload, root, "routes/support-bot/production")
    assert production["relation"] == "serves" and len(production["periods"]) == 2
    assert production["periods"][1]["start"]["action"] == "rollback"
    # transitively: the fine-tuned model based on a model based on this one
    assert "models/support-ft@2026-06" in node_ids(payload)
    assert all(e["side"] == "down" for e in payload["edges"])


def test_downstream_of_a_dataset_reaches_the_release_it_gated(repo: Path) -> None:
    payload = lineage(repo, "support-golden@2026-04", "--down")
    root = "datasets/support-golden@2026-04"
    assert edge(payload, root, "evals/support-bot/fixed")["relation"] == "evaluated_on"
    assert edge(payload, root, "models/support-ft@2026-06")["relation"] == "trained_on"
    gated = edge(payload, "evals/support-bot/fixed", "routes/support-bot/production")
    assert [e["tag"] for e in gated["events"]] == [
        "modelctl/support-bot/production/2",
        "modelctl/support-bot/production/3",
    ]
    distances = {n["id"]: n["distance"] for n in payload["nodes"]}
    assert distances["routes/support-bot/production"] == 2


def test_judges_and_rubrics_are_upstream_of_the_judge(repo: Path) -> None:
    payload = lineage(repo, "judges/groundedness@1", "--up")
    root = "judges/groundedness@1"
    assert edge(payload, "models/judge-gpt@2026-01", root)["relation"] == "runs_on"
    assert edge(payload, "prompts/groundedness-rubric@1", root)["relation"] == "rubric"


def test_an_eval_run_by_its_path(repo: Path) -> None:
    for text in ("eval/support-bot/fixed", "evals/support-bot/fixed"):
        payload = lineage(repo, text, "--depth", "1")
        assert payload["roots"] == ["evals/support-bot/fixed"]
        sides = {n["side"] for n in payload["nodes"]}
        assert sides == {"root", "up", "down"}


# --- formats ---------------------------------------------------------------------------------


def test_tree_reads_as_sentences(repo: Path) -> None:
    result = cli("lineage", "support-ft@2026-06", cwd=repo)
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("models/support-ft@2026-06")
    assert "upstream: what it is made of" in text and "downstream: where it went" in text
    assert "trained on datasets/support-golden@2026-04" in text
    assert f"built from https://github.com/acme/support-training@{CODE_COMMIT[:12]}" in text
    assert "nothing" in text  # nothing is downstream of the fine-tuned model
    served = cli("lineage", "support-gpt@2026-03", "--down", cwd=repo).stdout
    assert "support-bot dev served this" in served
    assert "target (weight 100) from #1 deploy" in served and "until #2 deploy" in served


def test_mermaid_declares_every_node_once_and_every_edge(repo: Path) -> None:
    payload = lineage(repo, "support-gpt@2026-03")
    result = cli("lineage", "support-gpt@2026-03", "--format", "mermaid", cwd=repo)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    declared = [
        line for line in lines if line.startswith("  n") and "-->" not in line and ".->" not in line
    ]
    assert len(declared) == len(payload["nodes"])
    arrows = [line for line in lines if "-->|" in line or "-.->|" in line]
    assert len(arrows) == len(payload["edges"])
    assert "-.->|served|" in result.stdout  # what a stage served in the past is dashed
    assert "class n0 root" in result.stdout
    shape = re.compile(r'^  n\d+(\[|\[/|\{\{|\[\(|\(\[|\[\[|>)"[^"]*"(\]|/\]|\}\}|\)\]|\]\)|\]\])$')
    assert all(shape.match(line) for line in declared), declared  # one quoted label each


def test_mermaid_escapes_labels() -> None:
    from modelctl import render
    from modelctl.audit import lineage as core

    node = core.Node('x"y<z>|w', "model", 'x"y<z>|w')
    result = core.LineageResult([node.id], "both", None, "test", [node], [])
    text = render.lineage_mermaid(result)
    assert 'n0["x#quot;y#lt;z#gt;#124;w"]' in text


def test_dot_is_a_valid_graph(repo: Path, tmp_path: Path) -> None:
    result = cli("lineage", "support-bot", "--stage", "production", "-f", "dot", cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("digraph lineage {") and result.stdout.rstrip().endswith("}")
    assert '"evals/support-bot/fixed" -> "routes/support-bot/production"' in result.stdout
    dot = shutil.which("dot")
    if dot is not None:  # Graphviz itself, where installed
        proc = subprocess.run([dot, "-Tsvg"], input=result.stdout, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_json_format_equals_json_flag(repo: Path) -> None:
    a = cli("lineage", "support-bot", "--stage", "dev", "--format", "json", cwd=repo)
    b = cli("lineage", "support-bot", "--stage", "dev", "--json", cwd=repo)
    assert a.exit_code == b.exit_code == 0
    assert a.json == b.json


# --- errors and edge cases ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost@1"], "no version 'ghost@1'"),
        (["no-such-route"], "is not a version, eval run or route"),
        (["support-bot", "--stage", "canary"], "no stage 'canary' in modelctl.yaml"),
        (["support-bot", "--format", "svg"], "unknown format 'svg'"),
        (["Bad@Ref"], "invalid name"),
    ],
)
def test_usage_errors(repo: Path, args: list[str], message: str) -> None:
    result = cli("lineage", *args, cwd=repo)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr


def test_missing_references_and_a_detached_head(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg")
    ghost = FINE_TUNED.replace("support-golden@2026-04", "ghost-data@1")
    (repo / "models" / "support-ft").mkdir()
    (repo / "models" / "support-ft" / "2026-06.yaml").write_text(ghost)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a model trained on data nobody registered")
    git(repo, "checkout", "-q", "--detach")  # as a CI checkout leaves it
    payload = lineage(repo, "support-ft@2026-06", "--up", "--depth", "1")
    ghost_node = next(n for n in payload["nodes"] if n["id"] == "datasets/ghost-data@1")
    assert ghost_node["missing"] is True
    assert payload["source"].startswith("HEAD (")
    mermaid = cli("lineage", "support-ft@2026-06", "--up", "-f", "mermaid", cwd=repo).stdout
    assert "missing" in mermaid.splitlines()[-1]
    # the hand-written route file is history too (unattested), so the route can be traced
    routes = lineage(repo, "support-bot", "--up", "--depth", "1")
    assert len(routes["roots"]) == 3


def test_a_route_without_history(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg", routes=False)
    result = cli("lineage", "support-bot", cwd=repo)
    assert result.exit_code == 2
    assert "is not a version, eval run or route" in result.stderr


def test_a_prompt_downstream_and_judge_pins_of_an_eval(repo: Path, tmp_path: Path) -> None:
    prompt = lineage(repo, "prompts/support-system@4", "--down", "--depth", "1")
    assert edge(prompt, "prompts/support-system@4", "routes/support-bot/dev")["relation"] == (
        "serves"
    )
    assert edge(prompt, "prompts/support-system@4", "evals/support-bot/fixed")["relation"] == (
        "candidate"
    )
    # an eval that pinned a judge: the judge, its model and its rubric are upstream of it
    other = make_registry(tmp_path / "reg", routes=False)
    record = (repo / "evals" / "support-bot" / "fixed.yaml").read_text()
    record = record.replace("id: fixed", "id: judged").replace(
        "evaluators:", "judges:\n- groundedness@1\nevaluators:"
    )
    (other / "evals" / "support-bot").mkdir(parents=True)
    (other / "evals" / "support-bot" / "judged.yaml").write_text(record)
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "an eval run with a judge")
    payload = lineage(other, "eval/support-bot/judged", "--up")
    run = "evals/support-bot/judged"
    assert edge(payload, "judges/groundedness@1", run)["relation"] == "judge"
    assert edge(payload, "models/judge-gpt@2026-01", "judges/groundedness@1")["relation"] == (
        "runs_on"
    )
    assert "prompts/groundedness-rubric@1" in node_ids(payload)
