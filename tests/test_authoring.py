"""`modelctl add`: one commit per version, checked against the registry first."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import cli, git, refs_snapshot
from fakekeys import fake_keys


def add(repo: Path, *args: str) -> dict[str, object]:
    result = cli("add", *args, "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr + result.stdout
    payload = result.json
    assert isinstance(payload, dict)
    return payload


def test_add_model_is_one_commit_touching_one_file(registry: Path) -> None:
    payload = add(
        registry,
        "model",
        "support-gpt",
        "1.10",
        "--provider",
        "openai",
        "--provider-model",
        "gpt-4.1",
        "--provider-key",
        "env:OPENAI_API_KEY",
        "--param",
        "temperature=0.3",
        "--param",
        "seed=7",
        "--base",
        "support-gpt@2026-05",
        "--trained-on",
        "support-golden@2026-04",
        "--label",
        "team=support",
    )
    assert payload["path"] == "models/support-gpt/1.10.yaml"
    assert git(registry, "rev-parse", "HEAD") == payload["commit"]
    assert (
        git(registry, "show", "--name-only", "--format=", "HEAD") == "models/support-gpt/1.10.yaml"
    )
    message = git(registry, "log", "-1", "--format=%B")
    assert "Modelctl-Action: add" in message and "Modelctl-Ref: models/support-gpt@1.10" in message
    text = (registry / "models/support-gpt/1.10.yaml").read_text()
    assert "version: '1.10'" in text and "temperature: 0.3" in text and "seed: 7" in text
    assert git(registry, "status", "--porcelain") == ""
    assert cli("validate", cwd=registry).exit_code == 0


def test_add_refuses_broken_reference_and_writes_nothing(registry: Path) -> None:
    before = refs_snapshot(registry)
    result = cli(
        "add",
        "judge",
        "j",
        "1",
        "--model",
        "nope@1",
        "--rubric",
        "groundedness-rubric@1",
        "--evaluator",
        "groundedness",
        "--threshold",
        "4",
        cwd=registry,
    )
    assert result.exit_code == 1
    assert "model: model nope@1 does not exist in the registry" in result.stderr
    assert refs_snapshot(registry) == before
    assert not (registry / "judges/j").exists()


def test_add_refuses_a_raw_key(registry: Path) -> None:
    key = fake_keys()["openai-legacy"]
    result = cli(
        "add",
        "model",
        "m",
        "1",
        "--provider",
        "openai",
        "--provider-model",
        "x",
        "--param",
        f"api_key={key}",
        cwd=registry,
    )
    assert result.exit_code == 1
    assert "OpenAI API key" in result.stderr and key not in result.stderr + result.stdout


def test_add_prompt_finds_variables_and_pins_template_file(registry: Path) -> None:
    payload = add(registry, "prompt", "greet", "1", "--template", "Hi {{ name }}, about {topic}")
    data = (registry / str(payload["path"])).read_text()
    assert "- name\n- topic" in data
    (registry / "prompts/greet").mkdir(exist_ok=True)
    (registry / "prompts/greet/2.txt").write_text("Hello {{name}}\n")
    payload = add(registry, "prompt", "greet", "2", "--template-file", "prompts/greet/2.txt")
    files = git(registry, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(files) == ["prompts/greet/2.txt", "prompts/greet/2.yaml"]
    digest = hashlib.sha256(b"Hello {{name}}\n").hexdigest()
    assert digest in (registry / "prompts/greet/2.yaml").read_text()


def test_add_dataset_records_digest_rows_and_schema(registry: Path, tmp_path: Path) -> None:
    rows = [
        {"id": f"r{i}", "input": "q", "expected": "a", "cohort": "x" if i % 2 else "y"}
        for i in range(10)
    ]
    source = tmp_path / "golden.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    payload = add(
        registry,
        "dataset",
        "golden",
        "2026-06",
        "--file",
        str(source),
        "--snapshot-at",
        "2026-06-01",
    )
    manifest = (registry / "datasets/golden/2026-06.yaml").read_text()
    assert hashlib.sha256(source.read_bytes()).hexdigest() in manifest
    assert "rows: 10" in manifest and "cohort_field: cohort" in manifest
    assert "uri: datasets/golden/2026-06.jsonl" in manifest
    assert (registry / "datasets/golden/2026-06.jsonl").read_bytes() == source.read_bytes()
    assert payload["committed"] is True


def test_add_dataset_rejects_bad_rows(registry: Path, tmp_path: Path) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "a", "input": "x"}\n{"id": "a", "input": "y"}\nnot json\n')
    result = cli("add", "dataset", "bad", "1", "--file", str(source), cwd=registry)
    assert result.exit_code == 1
    assert "bad.jsonl:2: id: duplicate id 'a'" in result.stderr
    assert "bad.jsonl:3: not valid JSON" in result.stderr


def test_add_remote_dataset_as_given(registry: Path) -> None:
    add(
        registry,
        "dataset",
        "big",
        "1",
        "--uri",
        "s3://bucket/big.jsonl",
        "--sha256",
        "a" * 64,
        "--rows",
        "5",
    )
    assert "uri: s3://bucket/big.jsonl" in (registry / "datasets/big/1.yaml").read_text()


def test_add_file_and_no_commit(registry: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "apiVersion: modelctl/v1\nkind: Model\nname: side\nversion: '1'\nprovider: openai\n"
        "provider_model: gpt-x\n"
    )
    head = git(registry, "rev-parse", "HEAD")
    payload = add(registry, "--file", str(manifest), "--no-commit")
    assert payload["committed"] is False
    assert git(registry, "rev-parse", "HEAD") == head
    assert (registry / "models/side/1.yaml").is_file()
    assert "?? models/side/" in git(registry, "status", "--porcelain")


def test_add_file_refuses_routes(registry: Path) -> None:
    result = cli("add", "--file", str(registry / "routes/support-bot.yaml"), cwd=registry)
    assert result.exit_code == 2 and "deploy/promote/rollback" in result.stderr


def test_add_keeps_the_users_staged_changes(registry: Path) -> None:
    (registry / "notes.md").write_text("wip\n")
    git(registry, "add", "notes.md")
    add(registry, "model", "m", "1", "--provider", "openai", "--provider-model", "x")
    assert git(registry, "status", "--porcelain") == "A  notes.md"
