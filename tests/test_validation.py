"""One file at a time: kind, schema, path, secrets; every problem with path, line and field."""

from __future__ import annotations

from fakekeys import fake_keys
from modelctl.registry import manifests, schemas, validation

MODEL = b"""\
apiVersion: modelctl/v1
kind: Model
name: m
version: "1.10"
provider: openai
provider_model: gpt-4o-mini
parameters:
  temperature: 0.2
"""


def check(raw: bytes, path: str = "models/m/1.10.yaml", category: str = "models") -> list[str]:
    _, problems = validation.check_file(path, raw, category)
    return [str(p) for p in problems]


def test_valid_model_is_canonical() -> None:
    data, problems = validation.check_file("models/m/1.10.yaml", MODEL, "models")
    assert problems == []
    assert data is not None
    assert data["version"] == "1.10"
    assert data["parameters"] == {"temperature": 0.2}
    assert list(data)[:2] == ["apiVersion", "kind"]


def test_unquoted_version_that_looks_like_a_float_stays_a_string() -> None:
    data, problems = validation.check_file(
        "models/m/1.10.yaml", MODEL.replace(b'"1.10"', b"1.10"), "models"
    )
    assert problems == [] and data is not None and data["version"] == "1.10"


def test_every_problem_is_reported_with_field_and_line() -> None:
    raw = MODEL + b"colour: blue\nartifact:\n  uri: s3://x\n  sha256: nothex\n"
    found = check(raw)
    assert "models/m/1.10.yaml:9: colour: unknown field; remove it or check its spelling" in found
    assert any(p.startswith("models/m/1.10.yaml:12: artifact.sha256:") for p in found)


def test_missing_fields() -> None:
    found = check(b"apiVersion: modelctl/v1\nkind: Model\nname: m\nversion: '1.10'\n")
    assert "models/m/1.10.yaml: provider: required field is missing" in found
    assert "models/m/1.10.yaml: provider_model: required field is missing" in found


def test_kind_must_match_folder() -> None:
    found = check(MODEL.replace(b"kind: Model", b"kind: Prompt"))
    assert found == [
        "models/m/1.10.yaml:2: kind: is 'Prompt', but files under models/ hold kind: Model"
    ]


def test_path_must_match_name_and_version() -> None:
    found = check(MODEL, path="models/m/2.yaml")
    assert any("version: is '1.10' but the file's path says '2'" in p for p in found)


def test_secret_is_reported_once_and_never_echoed() -> None:
    key = fake_keys()["openai-project"]
    raw = MODEL + f"provider_key: {key}\n".encode()
    found = check(raw)
    assert len(found) == 1
    assert "provider_key: holds what looks like an OpenAI API key" in found[0]
    assert key not in found[0]
    assert key[:12] not in found[0]


def test_provider_key_must_be_a_reference() -> None:
    found = check(MODEL + b"provider_key: hunter2\n")
    assert len(found) == 1 and "provider_key" in found[0]
    assert "hunter2" not in found[0]


def test_prompt_needs_exactly_one_body() -> None:
    raw = b"apiVersion: modelctl/v1\nkind: Prompt\nname: p\nversion: '1'\ntemplate: hi\nmessages: []\n"
    found = check(raw, "prompts/p/1.yaml", "prompts")
    assert any("exactly one of template, messages or template_file" in p for p in found)


def test_route_weights_must_be_positive() -> None:
    raw = b"""\
apiVersion: modelctl/v1
kind: Route
name: r
stages:
  dev:
    targets:
      - model: m@1
        weight: 0
      - model: m@2
"""
    found = check(raw, "routes/r.yaml", "routes")
    assert "routes/r.yaml:8: stages.dev.targets[0].weight: Input should be greater than 0" in found
    assert "routes/r.yaml:9: stages.dev.targets[1].weight: required field is missing" in found


def test_dataset_uri_must_stay_inside_the_registry() -> None:
    raw = (
        b"apiVersion: modelctl/v1\nkind: Dataset\nname: d\nversion: '1'\nuri: ../../etc/passwd\n"
        b"sha256: " + b"a" * 64 + b"\n"
    )
    found = check(raw, "datasets/d/1.yaml", "datasets")
    assert any("must be a path inside the registry" in p for p in found)


def test_schemas_agree_with_models_on_examples() -> None:
    import jsonschema

    from conftest import EXAMPLE
    from modelctl.registry import yamlio

    for file in EXAMPLE.rglob("*.yaml"):
        data = yamlio.resolve_plain(yamlio.load(file.read_bytes(), str(file)).data)
        kind = data["kind"]
        schema = schemas.load_shipped(kind)
        # YAML 1.2 readers (editors) see unquoted 2026-05 as a string, as modelctl does.
        jsonschema.validate(data, schema)
        manifests.KINDS[kind].model_validate(data)
