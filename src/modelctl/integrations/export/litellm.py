"""A LiteLLM proxy config from resolved bindings (`modelctl export litellm`).

Mapping (see LiteLLM's routing, reliability and config docs):

- a route is one model group (`model_name: <route>`); each target is a deployment with `weight`
  set on every deployment, so a canary's 90/10 split is what the router uses;
- a fallback chain becomes one group per step (`<route>/fallback-<n>`) and an ordered
  `router_settings.fallbacks` entry; LiteLLM tries at most 5 fallbacks (`max_fallbacks`);
- provider keys become `os.environ/NAME` references, never values;
- the route policy picks `routing_strategy`: weighted -> simple-shuffle, priority ->
  simple-shuffle with `order` per target (and `enable_pre_call_checks`), cost ->
  cost-based-routing (with per-token costs), latency -> latency-based-routing. One config has one
  strategy, so routes that need different ones are refused together, by name;
- `model_info` carries the deployment's registry identity (`id` and `modelctl.*` keys), so
  callback logs and the `x-litellm-model-id` header can be attributed to the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from modelctl.errors import ManifestError, Problem, UsageError
from modelctl.integrations.export.bindings import Resolution, RouteBinding, Served
from modelctl.registry import yamlio

MAX_FALLBACKS = 5  # LiteLLM's default max_fallbacks
STRATEGIES = {
    "weighted": "simple-shuffle",
    "priority": "simple-shuffle",
    "cost": "cost-based-routing",
    "latency": "latency-based-routing",
}
# LiteLLM provider prefixes for provider names it spells differently.
PROVIDER_PREFIX = {
    "google": "gemini",
    "vertex": "vertex_ai",
    "vertex-ai": "vertex_ai",
    "aws-bedrock": "bedrock",
    "azure-openai": "azure",
    "together": "together_ai",
    "self-hosted": "openai",  # an OpenAI-compatible server at `endpoint`
}
# Secret managers LiteLLM reads `os.environ/NAME` from when general_settings names one.
KEY_MANAGERS = {
    "aws-sm": "aws_secret_manager",
    "azure-kv": "azure_key_vault",
    "gcp-sm": "google_secret_manager",
    "vault": "hashicorp_vault",
}
# litellm_params keys the export sets itself; a model parameter may not override them.
RESERVED = frozenset(
    ["model", "api_key", "api_base", "weight", "order", "input_cost_per_token",
     "output_cost_per_token", "model_info", "litellm_credential_name"]
)  # fmt: skip


@dataclass
class LitellmExport:
    stage: str
    commit: str
    routing_strategy: str
    groups: list[str]
    deployments: int
    config: dict[str, Any]
    text: str
    warnings: list[str] = field(default_factory=list)
    written: str | None = None


def fallback_group(route: str, step: int) -> str:
    """The model group of a route's fallback step (route names cannot hold '/')."""
    return f"{route}/fallback-{step}"


def _strategy(bindings: list[RouteBinding]) -> str:
    wanted = {b.route: STRATEGIES[b.policy] for b in bindings}
    distinct = sorted(set(wanted.values()))
    if len(distinct) > 1:
        detail = "; ".join(
            f"{b.route} (policy {b.policy}) needs {wanted[b.route]}" for b in bindings
        )
        raise UsageError(
            f"these routes need different LiteLLM routing strategies, and a proxy config has "
            f"exactly one routing_strategy: {detail}",
            hint="export them into separate configs, one per strategy (and run one proxy each): "
            + " ; ".join(
                f"modelctl export litellm {' '.join(r for r, s in wanted.items() if s == strategy)}"
                f" --stage {bindings[0].stage} -o {strategy}.yaml"
                for strategy in distinct
            ),
        )
    return distinct[0] if distinct else STRATEGIES["weighted"]


def _key(ref: str, warnings: list[str]) -> str:
    scheme, _, name = ref.partition(":")
    if scheme != "env":
        manager = KEY_MANAGERS.get(scheme, scheme)
        warnings.append(
            f"provider key {ref} is exported as os.environ/{name}: LiteLLM reads it from its "
            f"secret manager only when general_settings.key_management_system is {manager}"
        )
    return f"os.environ/{name}"


def _per_token(per_mtok: float) -> float:
    # Decimal keeps 0.4 per million at 4e-07 rather than 4.0000000000000003e-07.
    return float(Decimal(str(per_mtok)) / Decimal(1_000_000))


def _deployment(
    binding: RouteBinding,
    item: Served,
    group: str,
    weight: int,
    problems: list[Problem],
    warnings: list[str],
) -> dict[str, Any]:
    model = item.model
    where = f"stages.{binding.stage}.{'targets' if item.role == 'target' else 'fallback'}"
    where += f"[{item.position - 1}]"
    provider = str(model["provider"])
    params: dict[str, Any] = {
        "model": f"{PROVIDER_PREFIX.get(provider, provider)}/{model['provider_model']}"
    }
    if provider == "self-hosted" and not model.get("endpoint"):
        problems.append(
            Problem(
                binding.path,
                f"{where}.model",
                f"model {item.model_ref} is self-hosted but has no endpoint; LiteLLM needs "
                "api_base (set endpoint in the model manifest)",
            )
        )
    if model.get("provider_key"):
        params["api_key"] = _key(model["provider_key"], warnings)
    if model.get("endpoint"):
        params["api_base"] = model["endpoint"]
    for key, value in (model.get("parameters") or {}).items():
        if key in RESERVED:
            problems.append(
                Problem(
                    binding.path,
                    f"{where}.model",
                    f"model {item.model_ref} sets parameter {key!r}, which the export sets "
                    "itself; remove it from parameters",
                )
            )
        else:
            params[key] = value
    params["weight"] = weight
    if binding.policy == "priority" and item.role == "target":
        params["order"] = item.position
    cost = model.get("cost")
    if cost:
        params["input_cost_per_token"] = _per_token(cost["input_per_mtok"])
        params["output_cost_per_token"] = _per_token(cost["output_per_mtok"])
        if cost.get("currency", "USD") != "USD":
            warnings.append(
                f"model {item.model_ref} is priced in {cost['currency']}; LiteLLM assumes USD"
            )
    elif binding.policy == "cost":
        warnings.append(
            f"model {item.model_ref} has no cost; cost-based routing falls back to LiteLLM's "
            "own price list for it"
        )
    info: dict[str, Any] = {
        "id": deployment_id(binding, item),
        "modelctl.route": binding.route,
        "modelctl.stage": binding.stage,
        "modelctl.model": item.model_ref,
    }
    if item.prompt_ref:
        info["modelctl.prompt"] = item.prompt_ref
    info["modelctl.fallback"] = item.role == "fallback"
    return {"model_name": group, "litellm_params": params, "model_info": info}


def deployment_id(binding: RouteBinding, item: Served) -> str:
    """Stable and unique in a config: route, stage, fallback step, model and prompt."""
    step = f"fallback-{item.position}/" if item.role == "fallback" else ""
    prompt = f"+{item.prompt_ref}" if item.prompt_ref else ""
    return f"{binding.route}/{binding.stage}/{step}{item.model_ref}{prompt}"


def build(resolution: Resolution) -> LitellmExport:
    """The proxy config for every route of `resolution`; refuses what LiteLLM cannot express."""
    bindings = resolution.routes
    strategy = _strategy(bindings)
    problems: list[Problem] = []
    warnings: list[str] = []
    model_list: list[dict[str, Any]] = []
    fallbacks: list[dict[str, list[str]]] = []
    groups: list[str] = []
    for binding in bindings:
        if len(binding.fallback) > MAX_FALLBACKS:
            problems.append(
                Problem(
                    binding.path,
                    f"stages.{binding.stage}.fallback",
                    f"has {len(binding.fallback)} steps; LiteLLM tries at most {MAX_FALLBACKS} "
                    "fallbacks (max_fallbacks), so the rest would never run: shorten the chain",
                )
            )
        groups.append(binding.route)
        for target in binding.targets:
            model_list.append(
                _deployment(binding, target, binding.route, target.weight or 1, problems, warnings)
            )
        chain = []
        for step in binding.fallback:
            group = fallback_group(binding.route, step.position)
            chain.append(group)
            model_list.append(_deployment(binding, step, group, 1, problems, warnings))
        if chain:
            fallbacks.append({binding.route: chain})
            groups.extend(chain)
    if problems:
        raise ManifestError(problems, hint="fix the route or model, then export again")
    router: dict[str, Any] = {"routing_strategy": strategy}
    if fallbacks:
        router["fallbacks"] = fallbacks
    if any(b.policy == "priority" for b in bindings):
        router["enable_pre_call_checks"] = True  # LiteLLM honours `order` only with these checks
    config = {"model_list": model_list, "router_settings": router}
    return LitellmExport(
        stage=resolution.stage,
        commit=resolution.commit,
        routing_strategy=strategy,
        groups=groups,
        deployments=len(model_list),
        config=config,
        text=_header(resolution) + yamlio.dump(config),
        warnings=list(dict.fromkeys(warnings)),
    )


def _header(resolution: Resolution) -> str:
    routes = " ".join(b.route for b in resolution.routes)
    return (
        f"# Generated by modelctl from registry {resolution.registry} at commit "
        f"{resolution.commit}\n"
        f"# (stage {resolution.stage}). Do not edit: regenerate with\n"
        f"#   modelctl export litellm {routes} --stage {resolution.stage} -o FILE\n"
        "# Use it as the proxy config, or pull it into one with `include: [FILE]`; keep models\n"
        "# out of the admin UI and database so that this file stays the source of truth.\n"
    )
