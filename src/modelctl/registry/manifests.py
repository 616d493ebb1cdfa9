"""Pydantic models of every manifest kind; `schemas/` is generated from these.

Fields follow docs/registry-format.md. Every model forbids unknown fields and non-finite numbers;
names, versions and references are checked by `modelctl.registry.refs`, so the same rule applies whether a
name arrives on the command line or in a file.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from modelctl.registry import refs, yamlio
from modelctl.registry.secretscan import SECRET_REF_PATTERN

API_VERSION = "modelctl/v1"


def _name(value: str) -> str:
    problem = refs.name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _ref_checker(kind: refs.Kind) -> Any:
    def check(value: str) -> str:
        try:
            ref = refs.parse_ref(value, kind)
        except Exception as exc:
            raise ValueError(getattr(exc, "message", str(exc))) from None
        return refs.format_ref(ref, with_kind=False)

    return check


def _ref_schema(kind: refs.Kind) -> dict[str, Any]:
    name = refs.NAME_SCHEMA_PATTERN[1:-1]
    return {
        "type": "string",
        "pattern": rf"^({kind.value}/|{kind.singular}/)?{name}@{name}$",
        "description": f"a {kind.singular} reference: name@version",
    }


def _utc(value: datetime) -> datetime:
    """Timestamps without an offset are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Name = Annotated[
    str,
    AfterValidator(_name),
    WithJsonSchema({"type": "string", "pattern": refs.NAME_SCHEMA_PATTERN, "maxLength": 64}),
]
ModelRef = Annotated[
    str,
    AfterValidator(_ref_checker(refs.Kind.MODEL)),
    WithJsonSchema(_ref_schema(refs.Kind.MODEL)),
]
PromptRef = Annotated[
    str,
    AfterValidator(_ref_checker(refs.Kind.PROMPT)),
    WithJsonSchema(_ref_schema(refs.Kind.PROMPT)),
]
JudgeRef = Annotated[
    str,
    AfterValidator(_ref_checker(refs.Kind.JUDGE)),
    WithJsonSchema(_ref_schema(refs.Kind.JUDGE)),
]
DatasetRef = Annotated[
    str,
    AfterValidator(_ref_checker(refs.Kind.DATASET)),
    WithJsonSchema(_ref_schema(refs.Kind.DATASET)),
]
Digest = Annotated[
    str,
    Field(pattern=r"^[0-9a-f]{64}$", description="a lowercase hex sha256 digest"),
]
CommitId = Annotated[
    str,
    Field(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$", description="a full git commit id"),
]
SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF_PATTERN,
        description="a reference to a secret, never the secret: env:NAME, vault:PATH, "
        "aws-sm:NAME, gcp-sm:NAME or azure-kv:NAME",
    ),
]
Timestamp = Annotated[datetime, AfterValidator(_utc)]
Text = Annotated[str, Field(max_length=4000)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Scalar = str | int | float | bool | None
FreeForm = Annotated[dict[str, Any], BeforeValidator(yamlio.resolve_plain)]
_RELATIVE_PATH = r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]{1,300}$"
_RELATIVE_RE = re.compile(_RELATIVE_PATH)


def _relative_path(value: str) -> str:
    if not _RELATIVE_RE.match(value):
        raise ValueError(
            f"{value!r} must be a path inside the registry: relative, '/'-separated, no '..', "
            "letters, digits, '.', '_', '-' only"
        )
    return value


RelativePath = Annotated[
    str,
    AfterValidator(_relative_path),
    WithJsonSchema({"type": "string", "pattern": _RELATIVE_PATH}),
]


def _fingerprint(value: str) -> str:
    return value.replace(" ", "").upper()


# 40 hex digits (v4 keys; groups of four may be spaced as `gpg --fingerprint` prints them) or
# 64 (v5 keys).
GpgFingerprint = Annotated[
    str,
    Field(pattern=r"^(?:[0-9A-Fa-f]{4} {0,2}){9}[0-9A-Fa-f]{4}$|^[0-9A-Fa-f]{64}$"),
    AfterValidator(_fingerprint),
]


class Strict(BaseModel):
    """Base of every manifest model: unknown fields and non-finite numbers are errors."""

    model_config = ConfigDict(
        extra="forbid", allow_inf_nan=False, populate_by_name=True, defer_build=True
    )


class Manifest(Strict):
    """Fields every versioned manifest has."""

    api_version: Literal["modelctl/v1"] = Field(alias="apiVersion")
    name: Name
    version: Name
    description: Text = ""
    owner: str | None = None
    created: Timestamp | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def ref(self) -> refs.Ref:
        return refs.Ref(self.name, self.version, KIND_OF[type(self).__name__])


# --- Model -------------------------------------------------------------------------------------


class Artifact(Strict):
    uri: str = Field(
        min_length=1, description="where the weights live: s3://, gs://, hf://, a path"
    )
    sha256: Digest
    bytes: int | None = Field(None, ge=0)
    format: str | None = None


class CodeRef(Strict):
    repo: str = Field(min_length=1)
    commit: CommitId
    path: str | None = None


class Lineage(Strict):
    trained_on: list[DatasetRef] = Field(default_factory=list)
    base: ModelRef | None = None
    code: CodeRef | None = None


class Cost(Strict):
    input_per_mtok: float = Field(ge=0, description="price per million input tokens")
    output_per_mtok: float = Field(ge=0, description="price per million output tokens")
    currency: str = "USD"


class Model(Manifest):
    """One version of a model: a provider model id, or self-hosted weights."""

    kind: Literal["Model"]
    provider: Name = Field(
        description="openai, anthropic, azure, bedrock, vertex_ai, self-hosted..."
    )
    provider_model: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^\S+$",
        description="the exact model id the provider reports in traces (gen_ai.response.model)",
    )
    aliases: list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S+$")]] = Field(
        default_factory=list,
        description="other exact strings that identify this version in traces",
    )
    provider_key: SecretRef | None = None
    endpoint: str | None = Field(None, description="API base URL for self-hosted or proxied models")
    parameters: FreeForm = Field(default_factory=dict)
    artifact: Artifact | None = None
    lineage: Lineage = Field(default_factory=Lineage)
    cost: Cost | None = None


# --- Prompt ------------------------------------------------------------------------------------


class TemplateFile(Strict):
    path: RelativePath = Field(description="a file in the registry, relative to its root")
    sha256: Digest


class Message(Strict):
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class Prompt(Manifest):
    """One version of a prompt: exactly one of template, messages or template_file."""

    kind: Literal["Prompt"]
    template: str | None = Field(None, max_length=200_000)
    messages: list[Message] | None = None
    template_file: TemplateFile | None = None
    variables: list[Identifier] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_body(self) -> Prompt:
        given = [
            f for f in ("template", "messages", "template_file") if getattr(self, f) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a prompt needs exactly one of template, messages or template_file"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self


# --- Judge -------------------------------------------------------------------------------------


class Judge(Manifest):
    """An LLM judge: the model it runs on, its rubric prompt and how it scores."""

    kind: Literal["Judge"]
    model: ModelRef
    rubric: PromptRef
    evaluator: Name = Field(description="the evaluator it implements, e.g. groundedness")
    threshold: float = Field(description="a score at or above this passes")
    score_range: tuple[float, float] | None = None
    command: list[str] | None = Field(
        None, description="the external evaluator command that runs this judge (argv)"
    )


# --- Dataset -----------------------------------------------------------------------------------


class DatasetSource(Strict):
    uri: str | None = None
    description: Text = ""
    derived_from: list[DatasetRef] = Field(default_factory=list)


_REMOTE_SCHEMES = ("s3://", "gs://", "hf://", "https://", "http://", "az://", "abfss://")


class Dataset(Manifest):
    """One pinned version of an evaluation or training dataset."""

    kind: Literal["Dataset"]
    uri: str = Field(
        min_length=1,
        description="a path relative to the registry root, or s3://, gs://, hf://...@revision",
    )
    sha256: Digest
    bytes: int | None = Field(None, ge=0)
    rows: int | None = Field(None, ge=0)
    format: Literal["jsonl"] = "jsonl"
    row_schema: dict[str, str] = Field(
        default_factory=dict, alias="schema", description="field name -> JSON type of each row"
    )
    cohort_field: str | None = None
    snapshot_at: Timestamp | None = Field(None, description="when the data was collected")
    source: DatasetSource | None = None
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema that outputs must satisfy (json_schema evaluator)"
    )

    @property
    def is_remote(self) -> bool:
        return self.uri.startswith(_REMOTE_SCHEMES)

    @model_validator(mode="after")
    def _local_path(self) -> Dataset:
        if not self.is_remote and not _RELATIVE_RE.match(self.uri):
            raise ValueError(
                f"uri {self.uri!r} must be a path inside the registry (relative, no '..') "
                f"or a remote URI ({', '.join(_REMOTE_SCHEMES)})"
            )
        return self


# --- Route -------------------------------------------------------------------------------------


class Target(Strict):
    model: ModelRef
    prompt: PromptRef | None = None
    weight: int = Field(gt=0, le=1_000_000, description="relative share of traffic")


class FallbackStep(Strict):
    model: ModelRef
    prompt: PromptRef | None = None


class Binding(Strict):
    """What one stage of a route serves."""

    policy: Literal["weighted", "cost", "latency", "priority"] = "weighted"
    targets: list[Target] = Field(min_length=1)
    fallback: list[FallbackStep] = Field(default_factory=list)


class Route(Strict):
    """What each stage serves on one route. The only registry files that change."""

    api_version: Literal["modelctl/v1"] = Field(alias="apiVersion")
    kind: Literal["Route"]
    name: Name
    description: Text = ""
    match: dict[str, str] = Field(
        default_factory=dict,
        description="span attributes that identify this route in traces, e.g. "
        "{gen_ai.workflow.name: ticket-triage} or {http.route: /v1/support/chat}",
    )
    stages: dict[Name, Binding] = Field(default_factory=dict)


# --- EvalRun -----------------------------------------------------------------------------------


class PinnedDataset(Strict):
    ref: DatasetRef
    sha256: Digest


class EvaluatorSpec(Strict):
    name: Name
    args: FreeForm = Field(default_factory=dict)
    judge: JudgeRef | None = None


class Side(Strict):
    """Pass counts of one side (candidate or baseline) over a set of examples."""

    passed: int = Field(ge=0)
    total: int = Field(ge=0)
    rate: float = Field(ge=0, le=1)


class Comparison(Strict):
    """Candidate against baseline on the same examples (one cohort, or all of them)."""

    cohort: str | None = Field(None, description="None for all examples")
    evaluator: str | None = Field(None, description="None for all evaluators together")
    n: int = Field(ge=0, description="paired examples compared")
    candidate: Side
    baseline: Side
    delta: float = Field(description="candidate rate - baseline rate")
    ci_low: float
    ci_high: float
    status: Literal["pass", "fail", "underpowered"]
    reason: str = ""


class EvalRun(Strict):
    """One regression eval: candidate vs an explicit baseline on a pinned dataset."""

    api_version: Literal["modelctl/v1"] = Field(alias="apiVersion")
    kind: Literal["EvalRun"]
    id: Name
    route: Name
    stage: Name | None = Field(None, description="the stage whose promotion this run gates")
    created: Timestamp
    dataset: PinnedDataset
    candidate: Binding
    baseline: Binding
    evaluators: list[EvaluatorSpec] = Field(min_length=1)
    judges: list[JudgeRef] = Field(default_factory=list)
    gate: dict[str, float | int] = Field(
        default_factory=dict, description="the gate settings the verdict was computed with"
    )
    method: str = Field("", description="how the confidence interval was computed")
    source: str = Field("modelctl", description="modelctl, or the tool whose results were recorded")
    missing: dict[str, int] = Field(default_factory=dict)
    overall: Comparison
    comparisons: list[Comparison] = Field(default_factory=list)
    verdict: Literal["pass", "fail"]


# --- Registry settings -------------------------------------------------------------------------


class EvalGate(Strict):
    """Regression-eval gate for promotions into a stage."""

    max_regression: float = Field(
        0.02, ge=0, le=1, description="largest tolerated drop in pass rate (absolute)"
    )
    min_samples: int = Field(
        30, ge=1, description="cohorts with fewer paired examples are under-powered"
    )
    confidence: float = Field(0.95, gt=0.5, lt=1)
    max_age_days: int | None = Field(None, ge=1, description="refuse eval runs older than this")


class StageSettings(Strict):
    name: Name
    aliases: list[str] = Field(
        default_factory=list,
        description="environment names traces use for this stage (deployment.environment.name)",
    )
    require_fallback: bool = False
    eval_gate: EvalGate | None = None
    require_signed: bool | None = Field(
        None,
        description="overrides the registry's signing setting for this stage: "
        "true means required, false means optional",
    )


class Registry(Strict):
    """`modelctl.yaml`: stages, gates and signing policy of a registry."""

    api_version: Literal["modelctl/v1"] = Field(alias="apiVersion")
    kind: Literal["Registry"]
    name: Name
    description: Text = ""
    stages: list[StageSettings] = Field(min_length=1)
    allow_stage_skip: bool = False
    signing: Literal["required", "optional", "off"] = "optional"
    allowed_signers: RelativePath = ".modelctl/allowed_signers"
    gpg_signers: list[GpgFingerprint] = Field(
        default_factory=list,
        description="fingerprints of the GPG keys allowed to sign (primary key or signing "
        "subkey); when set, a GPG signature by any other key fails verify, however much the "
        "verifier's keyring trusts it",
    )
    provider_prefixes: list[str] = Field(
        default_factory=list,
        description="extra prefixes to strip from model strings in traces (e.g. 'azure/')",
    )

    @model_validator(mode="after")
    def _unique_stages(self) -> Registry:
        seen: set[str] = set()
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage {stage.name!r} is listed twice")
            seen.add(stage.name)
        return self

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> StageSettings | None:
        return next((s for s in self.stages if s.name == name), None)


KINDS: dict[str, type[Strict]] = {
    "Model": Model,
    "Prompt": Prompt,
    "Judge": Judge,
    "Dataset": Dataset,
    "EvalRun": EvalRun,
    "Route": Route,
    "Registry": Registry,
}
KIND_OF: dict[str, refs.Kind] = {
    "Model": refs.Kind.MODEL,
    "Prompt": refs.Kind.PROMPT,
    "Judge": refs.Kind.JUDGE,
    "Dataset": refs.Kind.DATASET,
}
# The `kind:` each registry folder holds.
CATEGORY_KIND = {
    "models": "Model",
    "prompts": "Prompt",
    "judges": "Judge",
    "datasets": "Dataset",
    "evals": "EvalRun",
    "routes": "Route",
    "settings": "Registry",
}


def to_data(model: BaseModel) -> dict[str, Any]:
    """The manifest as plain YAML/JSON data, aliases as field names, defaults left out."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    # apiVersion and kind first, as people write them.
    return {"apiVersion": data.pop("apiVersion"), "kind": data.pop("kind"), **data}


def build(kind: str, **fields: Any) -> Any:
    """Validate `fields` as a manifest of `kind`, filling in apiVersion and kind."""
    return KINDS[kind].model_validate({"apiVersion": API_VERSION, "kind": kind, **fields})
