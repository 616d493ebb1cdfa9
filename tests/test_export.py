"""Exports: a LiteLLM proxy config loaded by the real LiteLLM Router, and the bindings JSON."""

from __future__ import annotations

import collections
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import cli, git, make_registry

FAKE_KEYS = {"OPENAI_API_KEY": "sk-test-openai", "ANTHROPIC_API_KEY": "test-anthropic"}


def ok(repo: Path, *args: str) -> Any:
    result = cli(*args, cwd=repo)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example registry: production serves a 90/10 split with a fallback (hand-written);
    dev and two more routes are deployed through modelctl."""
    path = make_registry(tmp_path_factory.mktemp("export") / "reg")
    ok(path, "deploy", "support-bot", "--stage", "dev", "--model", "support-gpt@2026-05",
       "--prompt", "support-system@4", "--fallback", "support-claude@2026-05,support-system@4",
       "--fallback", "support-gpt@2026-03,support-system@3")  # fmt: skip
    ok(path, "deploy", "faq-bot", "--stage", "dev", "--policy", "cost",
       "--target", "support-gpt@2026-03,support-system@3:50",
       "--target", "support-claude@2026-05,support-system@3:50")  # fmt: skip
    ok(path, "deploy", "triage", "--stage", "dev", "--policy", "priority",
       "--target", "support-claude@2026-05:1", "--target", "support-gpt@2026-05:1")  # fmt: skip
    return path


def export_litellm(repo: Path, *args: str) -> dict[str, Any]:
    result = cli("export", "litellm", *args, cwd=repo)
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load(result.stdout)  # as the proxy reads its config file
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def litellm() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of LiteLLM's price list
        for key, value in FAKE_KEYS.items():
            mp.setenv(key, value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import litellm as module
        yield module


def router(litellm: Any, config: dict[str, Any]) -> Any:
    """A LiteLLM Router built the way the proxy builds one from its config file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteLLM's own deprecations and lazy-import noise
        return litellm.Router(model_list=config["model_list"], **config["router_settings"])


def deployments(r: Any, group: str) -> list[dict[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found = r.get_model_list(model_name=group)
    return [dict(d) for d in found or []]


def answered_by(r: Any, **kwargs: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LiteLLM's own deprecations and lazy-import noise
        response = r.completion(
            model="support-bot",
            messages=[{"role": "user", "content": "Where do I change my plan?"}],
            mock_response="Settings > Billing",  # no provider is called
            **kwargs,
        )
    return str(response._hidden_params["model_id"])


# --- LiteLLM ---------------------------------------------------------------------------------


def test_litellm_router_sees_groups_weights_keys_and_fallbacks(repo: Path, litellm: Any) -> None:
    config = export_litellm(repo, "support-bot", "--stage", "production")
    r = router(litellm, config)
    primary = deployments(r, "support-bot")
    by_id = {d["model_info"]["id"]: d for d in primary}
    gpt = "support-bot/production/support-gpt@2026-03+support-system@3"
    claude = "support-bot/production/support-claude@2026-05+support-system@3"
    assert set(by_id) == {gpt, claude}
    assert by_id[gpt]["litellm_params"]["weight"] == 90
    assert by_id[claude]["litellm_params"]["weight"] == 10
    assert by_id[gpt]["litellm_params"]["model"] == "openai/gpt-4o-mini-2024-07-18"
    # the key is a reference in the file; LiteLLM resolved it from the environment
    assert by_id[gpt]["litellm_params"]["api_key"] == FAKE_KEYS["OPENAI_API_KEY"]
    assert by_id[claude]["litellm_params"]["api_key"] == FAKE_KEYS["ANTHROPIC_API_KEY"]
    info = by_id[claude]["model_info"]
    assert info["modelctl.route"] == "support-bot" and info["modelctl.stage"] == "production"
    assert info["modelctl.model"] == "support-claude@2026-05"
    assert info["modelctl.prompt"] == "support-system@3" and info["modelctl.fallback"] is False
    (backup,) = deployments(r, "support-bot/fallback-1")
    assert backup["litellm_params"]["weight"] == 1
    assert backup["model_info"]["modelctl.fallback"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        settings = r.settings() if callable(getattr(r, "settings", None)) else r
        assert settings.routing_strategy == "simple-shuffle"
        assert settings.fallbacks == [{"support-bot": ["support-bot/fallback-1"]}]
    # and LiteLLM routes by them: the split, and the fallback when the group fails
    counts = collections.Counter(answered_by(r) for _ in range(400))
    assert set(counts) == {gpt, claude}
    assert 300 <= counts[gpt] <= 390, counts  # 90% of 400 is 360
    assert answered_by(r, mock_testing_fallbacks=True) == backup["model_info"]["id"]


def test_every_deployment_has_a_weight_and_an_env_key(repo: Path, litellm: Any) -> None:
    config = export_litellm(repo, "support-bot", "--stage", "dev")
    groups = [d["model_name"] for d in config["model_list"]]
    assert groups == ["support-bot", "support-bot/fallback-1", "support-bot/fallback-2"]
    for deployment in config["model_list"]:
        params = deployment["litellm_params"]
        assert isinstance(params["weight"], int) and params["weight"] > 0
        assert params["api_key"].startswith("os.environ/")
        assert isinstance(params["input_cost_per_token"], float)
    assert config["router_settings"]["fallbacks"] == [
        {"support-bot": ["support-bot/fallback-1", "support-bot/fallback-2"]}
    ]
    r = router(litellm, config)
    assert len(deployments(r, "support-bot/fallback-2")) == 1


def test_cost_policy_maps_to_cost_based_routing(repo: Path, litellm: Any) -> None:
    config = export_litellm(repo, "faq-bot", "--stage", "dev")
    assert config["router_settings"]["routing_strategy"] == "cost-based-routing"
    gpt = config["model_list"][0]["litellm_params"]
    assert gpt["input_cost_per_token"] == 1.5e-07 and gpt["output_cost_per_token"] == 6e-07
    r = router(litellm, config)
    assert {d["litellm_params"]["weight"] for d in deployments(r, "faq-bot")} == {50}


def test_priority_policy_orders_targets(repo: Path, litellm: Any) -> None:
    config = export_litellm(repo, "triage", "--stage", "dev")
    assert config["router_settings"]["routing_strategy"] == "simple-shuffle"
    assert config["router_settings"]["enable_pre_call_checks"] is True
    orders = [d["litellm_params"]["order"] for d in config["model_list"]]
    assert orders == [1, 2]
    assert "modelctl.prompt" not in config["model_list"][0]["model_info"]
    router(litellm, config)  # LiteLLM accepts it


def test_routes_needing_different_strategies_are_refused_by_name(repo: Path) -> None:
    result = cli("export", "litellm", "support-bot", "faq-bot", "--stage", "dev", cwd=repo)
    assert result.exit_code == 2
    stderr = " ".join(result.stderr.split())  # as one line, whatever the terminal's width
    assert "support-bot (policy weighted) needs simple-shuffle" in stderr
    assert "faq-bot (policy cost) needs cost-based-routing" in stderr
    assert "modelctl export litellm faq-bot --stage dev" in stderr
    # weighted and priority share simple-shuffle, so they go together
    together = export_litellm(repo, "support-bot", "triage", "--stage", "dev")
    assert {d["model_name"] for d in together["model_list"]} >= {"support-bot", "triage"}


def test_output_file_is_the_same_config_and_stable(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "litellm.yaml"
    result = cli("export", "litellm", "support-bot", "-s", "production", "-o", str(out), cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert "wrote" in result.stderr and "2 model group(s), 3 deployment(s)" in result.stderr
    again = cli("export", "litellm", "support-bot", "--stage", "production", cwd=repo).stdout
    assert out.read_text() == again
    head = git(repo, "rev-parse", "HEAD")
    assert f"at commit {head}" in again and "Do not edit" in again
    payload = cli("export", "litellm", "support-bot", "-s", "production", "--json", cwd=repo)
    assert payload.json["routing_strategy"] == "simple-shuffle"  # type: ignore[index]
    assert payload.json["config"] == yaml.safe_load(again)  # type: ignore[index]


def test_long_fallback_chains_and_non_env_keys(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg", routes=False)
    steps = [
        f"{m},support-system@{p}"
        for m in ("support-gpt@2026-03", "support-claude@2026-05", "judge-gpt@2026-01")
        for p in (3, 4)
    ]
    fallback = [arg for step in steps for arg in ("--fallback", step)]
    ok(repo, "deploy", "long", "--stage", "dev", "--model", "support-gpt@2026-05", *fallback)
    result = cli("export", "litellm", "long", "--stage", "dev", cwd=repo)
    assert result.exit_code == 1
    assert "routes/long.yaml: stages.dev.fallback: has 6 steps; LiteLLM tries at most 5" in (
        result.stderr
    )
    model = repo / "models" / "support-gpt" / "2026-05.yaml"
    git(repo, "rm", "-q", "models/support-gpt/2026-05.yaml")
    text = model.parent.joinpath("2026-03.yaml").read_text()
    model.write_text(
        text.replace("2026-03", "2026-05").replace("env:OPENAI_API_KEY", "vault:kv/openai")
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a vault key")
    ok(repo, "deploy", "short", "--stage", "dev", "--model", "support-gpt@2026-05")
    result = cli("export", "litellm", "short", "--stage", "dev", cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert "api_key: os.environ/kv/openai" in result.stdout
    assert "key_management_system is hashicorp_vault" in result.stderr


# --- bindings JSON ---------------------------------------------------------------------------


def test_export_json_resolves_models_prompts_and_release(repo: Path) -> None:
    result = cli("export", "json", "--stage", "dev", cwd=repo)
    assert result.exit_code == 0, result.stderr
    doc = result.json
    assert isinstance(doc, dict)
    assert doc["kind"] == "ResolvedBindings" and doc["stage"] == "dev"
    assert doc["commit"] == git(repo, "rev-parse", "HEAD")
    assert list(doc["routes"]) == ["faq-bot", "support-bot", "triage"]  # every route on dev
    bot = doc["routes"]["support-bot"]
    assert bot["release"]["tag"] == "modelctl/support-bot/dev/1"  # the first made by modelctl
    assert bot["release"]["action"] == "deploy"
    (target,) = bot["targets"]
    assert target["weight"] == 100 and target["share"] == 1.0
    assert target["model"]["ref"] == "support-gpt@2026-05"
    assert target["model"]["provider_model"] == "gpt-4.1-mini-2025-04-14"
    assert target["model"]["provider_key"] == "env:OPENAI_API_KEY"
    assert target["prompt"]["ref"] == "support-system@4"
    assert target["prompt"]["messages"][0]["role"] == "system"
    assert [s["model"]["ref"] for s in bot["fallback"]] == [
        "support-claude@2026-05",
        "support-gpt@2026-03",
    ]
    faq = doc["routes"]["faq-bot"]
    assert [t["share"] for t in faq["targets"]] == [0.5, 0.5] and faq["policy"] == "cost"


def test_export_json_inlines_a_pinned_template_file(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg", routes=False)
    template = repo / "prompts" / "support-system" / "5.txt"
    template.write_text("Answer {{question}} briefly.\n")
    ok(repo, "add", "prompt", "support-system", "5", "--template-file", str(template))
    ok(repo, "deploy", "support-bot", "--stage", "dev", "--model", "support-gpt@2026-05",
       "--prompt", "support-system@5")  # fmt: skip
    out = tmp_path / "bindings.json"
    ok(repo, "export", "json", "support-bot", "--stage", "dev", "-o", str(out))
    doc = json.loads(out.read_text())
    prompt = doc["routes"]["support-bot"]["targets"][0]["prompt"]
    assert prompt["template"] == "Answer {{question}} briefly.\n"
    assert prompt["template_file"]["path"] == "prompts/support-system/5.txt"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["support-bot", "--stage", "qa"], 2, "no stage 'qa' in modelctl.yaml"),
        (["nope", "--stage", "dev"], 2, "no route 'nope'"),
        (["triage", "--stage", "production"], 2, "route triage serves nothing on stage production"),
        (["support-bot"], 2, "Missing option '--stage'"),
        (["support-bot", "--stage", "dev", "--rev", "no-such-rev"], 2, "does not exist"),
    ],
)
def test_export_usage_errors(repo: Path, args: list[str], code: int, message: str) -> None:
    for kind in ("litellm", "json"):
        result = cli("export", kind, *args, cwd=repo)
        assert result.exit_code == code, result.stderr
        assert message in result.stderr


def test_a_broken_reference_is_refused_naming_the_field(tmp_path: Path) -> None:
    repo = make_registry(tmp_path / "reg")
    route = repo / "routes" / "support-bot.yaml"
    route.write_text(route.read_text().replace("support-gpt@2026-03", "support-gpt@2099-01"))
    git(repo, "commit", "-qam", "a reference to nothing")
    for kind in ("litellm", "json"):
        result = cli("export", kind, "support-bot", "--stage", "production", cwd=repo)
        assert result.exit_code == 1
        assert (
            "routes/support-bot.yaml: stages.production.targets[0].model: "
            "model support-gpt@2099-01 does not exist" in result.stderr
        )


def test_an_earlier_revision_can_be_exported(repo: Path) -> None:
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    doc = cli("export", "json", "support-bot", "--stage", "dev", "--rev", first, cwd=repo).json
    assert isinstance(doc, dict) and doc["commit"] == first
    assert doc["routes"]["support-bot"]["release"]["action"] == "unattested"
