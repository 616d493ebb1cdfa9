"""A misspelt stage, route or version is a usage error that suggests the nearest name.

It must never read as an empty answer ("served nothing", "0 events") that exits 0. Every
option that names a stage, in every command, goes through one check; the table below is
checked against the CLI itself, so an option added later without the check fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli, make_registry, refs_snapshot
from modelctl.registry.suggest import nearest

ROUTE = "support-bot"
GOLDEN = "support-golden@2026-04"
TYPO = "prodution"
STAGES = "stages: dev, staging, production"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev, staging and production each serve something, through lifecycle commands."""
    repo = make_registry(tmp_path_factory.mktemp("names") / "reg", routes=False)
    binding = ["--model", "support-gpt@2026-05", "--prompt", "support-system@4",
               "--fallback", "support-claude@2026-05,support-system@4"]  # fmt: skip
    for argv in (
        ["deploy", ROUTE, "--stage", "dev", *binding],
        ["promote", ROUTE, "--to", "staging"],
        ["promote", ROUTE, "--to", "production"],
    ):
        result = cli(*argv, cwd=repo)
        assert result.exit_code == 0, result.stderr
    (repo.parent / "empty.jsonl").write_text("")
    (repo.parent / "out.jsonl").write_text("")
    return repo


def _files(repo: Path) -> dict[str, str]:
    return {"{EMPTY}": str(repo.parent / "empty.jsonl"), "{OUT}": str(repo.parent / "out.jsonl")}


def _argv(repo: Path, argv: list[str], name: str) -> list[str]:
    files = _files(repo)
    return [files.get(a, a).replace("{X}", name) for a in argv]


EVAL = ["--dataset", GOLDEN, "--candidate-outputs", "{OUT}", "--baseline-outputs", "{OUT}"]
# (command, option) -> a command line whose stage is {X}
STAGE_OPTIONS: dict[tuple[str, str], list[str]] = {
    ("history", "--stage"): ["history", ROUTE, "--stage", "{X}"],
    ("resolve", "--stage"): ["resolve", ROUTE, "--stage", "{X}", "--at", "HEAD"],
    ("deploy", "--stage"): ["deploy", ROUTE, "--stage", "{X}", "--model", "support-gpt@2026-05"],
    ("promote", "--to"): ["promote", ROUTE, "--to", "{X}"],
    ("promote", "--from"): ["promote", ROUTE, "--to", "production", "--from", "{X}"],
    ("rollback", "--stage"): ["rollback", ROUTE, "--stage", "{X}", "--dry-run"],
    ("eval gate", "--to"): ["eval", "gate", ROUTE, "--to", "{X}"],
    ("eval run", "--to"): ["eval", "run", ROUTE, "--to", "{X}", *EVAL, "--no-commit"],
    ("eval run", "--candidate-from"): [
        "eval",
        "run",
        ROUTE,
        "--to",
        "production",
        "--candidate-from",
        "{X}",
        *EVAL,
    ],
    ("eval run", "--baseline-from"): [
        "eval",
        "run",
        ROUTE,
        "--to",
        "production",
        "--baseline-from",
        "{X}",
        *EVAL,
    ],
    ("eval record", "--to"): [
        "eval",
        "record",
        "{OUT}",
        "--route",
        ROUTE,
        "--to",
        "{X}",
        "--dataset",
        GOLDEN,
    ],
    ("eval record", "--candidate-from"): [
        "eval",
        "record",
        "{OUT}",
        "--route",
        ROUTE,
        "--to",
        "production",
        "--dataset",
        GOLDEN,
        "--candidate-from",
        "{X}",
    ],
    ("eval record", "--baseline-from"): [
        "eval",
        "record",
        "{OUT}",
        "--route",
        ROUTE,
        "--to",
        "production",
        "--dataset",
        GOLDEN,
        "--baseline-from",
        "{X}",
    ],
    ("coverage", "--stage"): ["coverage", "{EMPTY}", "--stage", "{X}"],
    ("coverage", "--default-stage"): ["coverage", "{EMPTY}", "--default-stage", "{X}"],
    ("explain", "--default-stage"): [
        "explain",
        "0" * 32,
        "--traces",
        "{EMPTY}",
        "--default-stage",
        "{X}",
    ],
    ("export litellm", "--stage"): ["export", "litellm", "--stage", "{X}"],
    ("export json", "--stage"): ["export", "json", "--stage", "{X}"],
    ("lineage", "--stage"): ["lineage", ROUTE, "--stage", "{X}"],
}
# Options spelt like a stage option that name something else.
NOT_STAGES = {("rollback", "--to")}  # SEQ or tag


def _cli_options() -> set[tuple[str, str]]:
    """(command path, option) for every option of the CLI spelt like one naming a stage."""
    import typer.main  # noqa: TID251  (a test reading the CLI's own option table)

    from modelctl.cli.app import app

    spelt = {"--stage", "--to", "--from", "--candidate-from", "--baseline-from", "--default-stage"}
    found: set[tuple[str, str]] = set()

    def visit(command: object, path: str) -> None:
        for sub_name, sub in getattr(command, "commands", {}).items():
            visit(sub, f"{path} {sub_name}".strip())
        for param in getattr(command, "params", []):
            for opt in set(param.opts) & spelt:
                found.add((path, opt))

    visit(typer.main.get_command(app), "")
    return found - NOT_STAGES


def test_every_option_naming_a_stage_is_checked_here() -> None:
    assert _cli_options() == set(STAGE_OPTIONS)


@pytest.mark.parametrize("key", sorted(STAGE_OPTIONS), ids=" ".join)
def test_a_misspelt_stage_is_a_usage_error_that_suggests_the_nearest(
    served: Path, key: tuple[str, str]
) -> None:
    before = refs_snapshot(served)
    result = cli(*_argv(served, STAGE_OPTIONS[key], TYPO), cwd=served)
    assert result.exit_code == 2, result.stderr + result.stdout
    assert f"{key[1]}: no stage '{TYPO}'" in result.stderr
    assert "did you mean production?" in result.stderr
    assert STAGES in result.stderr
    assert refs_snapshot(served) == before  # nothing written


@pytest.mark.parametrize(
    "key", [("history", "--stage"), ("eval run", "--baseline-from"), ("coverage", "--stage")]
)
def test_the_json_error_carries_the_suggestions(served: Path, key: tuple[str, str]) -> None:
    result = cli(*_argv(served, STAGE_OPTIONS[key], "stagin"), "--json", cwd=served)
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 2 and error["type"] == "UsageError"
    assert error["unknown"] == {
        "what": "stage",
        "value": "stagin",
        "option": key[1],
        "suggestions": ["staging"],
        "choices": ["dev", "staging", "production"],
    }


ROUTE_COMMANDS = [
    ["status", "{X}"],
    ["history", "{X}"],
    ["resolve", "{X}", "--stage", "production", "--at", "HEAD"],
    ["promote", "{X}", "--to", "staging"],
    ["rollback", "{X}", "--stage", "production"],
    ["eval", "gate", "{X}", "--to", "production"],
    ["eval", "run", "{X}", "--to", "production", *EVAL, "--no-commit"],
    ["eval", "record", "{OUT}", "--route", "{X}", "--to", "production", "--dataset", GOLDEN],
    ["timeline", "{X}"],
    ["export", "json", "{X}", "--stage", "production"],
    ["export", "litellm", "{X}", "--stage", "production"],
    ["show", "{X}"],
    ["show", "route/{X}"],
    ["lineage", "{X}", "--stage", "production"],
]


@pytest.mark.parametrize("argv", ROUTE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_misspelt_route_suggests_the_nearest(served: Path, argv: list[str]) -> None:
    result = cli(*_argv(served, argv, "suport-bot"), cwd=served)
    assert result.exit_code == 2, result.stderr + result.stdout
    assert "no route 'suport-bot'" in result.stderr
    assert "did you mean support-bot?" in result.stderr
    assert "routes: support-bot" in result.stderr


REF_COMMANDS = [
    (["deploy", ROUTE, "--stage", "dev", "--model", "support-gpt@2026-5"], "model",
     "support-gpt@2026-5", "support-gpt@2026-05"),
    (["deploy", ROUTE, "--stage", "dev", "--model", "support-gpt@2026-05", "--prompt",
      "support-sytem@4"], "prompt", "support-sytem@4", "support-system@4"),
    (["show", "support-gpt@2026-5"], "version", "support-gpt@2026-5", "support-gpt@2026-05"),
    (["show", "models/support-gpt@2026-5"], "model", "support-gpt@2026-5",
     "support-gpt@2026-05"),
    (["lineage", "support-gpt@2026-5"], "version", "support-gpt@2026-5", "support-gpt@2026-05"),
    (["dataset", "verify", "support-golden@2026-4"], "dataset", "support-golden@2026-4", GOLDEN),
    (["eval", "run", ROUTE, "--to", "production", "--dataset", "support-golden@2026-4",
      "--candidate-outputs", "{OUT}", "--baseline-outputs", "{OUT}", "--no-commit"], "dataset",
     "support-golden@2026-4", GOLDEN),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "kind", "given", "nearest_ref"), REF_COMMANDS,
                         ids=lambda v: v[0] if isinstance(v, list) else None)  # fmt: skip
def test_a_misspelt_version_suggests_the_nearest(
    served: Path, argv: list[str], kind: str, given: str, nearest_ref: str
) -> None:
    before = refs_snapshot(served)
    result = cli(*_argv(served, argv, ""), cwd=served)
    assert result.exit_code == 2, result.stderr + result.stdout
    assert f"no {kind} '{given}'" in result.stderr
    assert f"did you mean {nearest_ref}?" in result.stderr
    assert refs_snapshot(served) == before


def test_a_stage_that_left_the_path_keeps_its_history(served: Path, tmp_path: Path) -> None:
    """The check is against modelctl.yaml and the route's own past: an audit question about a
    stage since removed from the path is still answered."""
    from conftest import git

    repo = tmp_path / "copy"
    git(served.parent, "clone", "-q", str(served), str(repo))
    settings = repo / "modelctl.yaml"
    settings.write_text(settings.read_text().replace("  - name: dev\n", "  - name: qa\n"))
    git(repo, "commit", "-qam", "dev becomes qa")
    events = json.loads(cli("history", ROUTE, "--stage", "dev", "--json", cwd=repo).stdout)
    assert [e["action"] for e in events["events"]] == ["deploy"]
    result = cli("history", ROUTE, "--stage", "de", cwd=repo)
    assert result.exit_code == 2 and "did you mean dev?" in result.stderr
    assert "stages: qa, staging, production, dev" in result.stderr


def test_a_known_name_costs_no_suggestion_and_is_answered(served: Path) -> None:
    result = cli("resolve", ROUTE, "--stage", "production", "--at", "HEAD", "--json", cwd=served)
    assert result.exit_code == 0 and result.json["binding"] is not None  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "choices", "expected"),
    [
        ("prodution", ["dev", "staging", "production"], ["production"]),
        ("Production", ["dev", "staging", "production"], ["production"]),
        ("prod", ["dev", "staging", "production"], ["production"]),
        ("qa", ["dev", "staging", "production"], []),
        ("support-gpt@2026-5", ["support-gpt@2026-03", "support-gpt@2026-05"],
         ["support-gpt@2026-05"]),
        ("stag", ["dev", "staging", "stage-2"], ["staging", "stage-2"]),
    ],
)  # fmt: skip
def test_nearest(value: str, choices: list[str], expected: list[str]) -> None:
    assert nearest(value, choices) == expected


def test_history_is_answered_while_modelctl_yaml_is_broken(served: Path, tmp_path: Path) -> None:
    """An audit question about a stage the route's history holds does not depend on today's
    settings; any other stage is refused, saying why it cannot be checked."""
    from conftest import git

    repo = tmp_path / "copy"
    git(served.parent, "clone", "-q", str(served), str(repo))
    (repo / "modelctl.yaml").write_text("apiVersion: modelctl/v1\nkind: Registry\nname: x\n")
    git(repo, "commit", "-qam", "broken settings")
    ok = cli("history", ROUTE, "--stage", "dev", "--json", cwd=repo)
    assert ok.exit_code == 0, ok.stderr
    bad = cli("history", ROUTE, "--stage", "qa", cwd=repo)
    assert bad.exit_code == 2 and "modelctl.yaml is missing or invalid" in bad.stderr


def test_a_misspelt_eval_run_is_named(served: Path) -> None:
    result = cli("show", f"eval/{ROUTE}/nope", "--json", cwd=served)
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert "no eval run 'nope' of route support-bot" in error["message"]
    assert error["unknown"]["what"] == "eval run"
