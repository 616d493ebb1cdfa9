"""Synthetic registries for benchmarks: N manifests across the kinds, committed with plain git."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

SETTINGS = """\
apiVersion: modelctl/v1
kind: Registry
name: bench
signing: off
stages:
  - name: dev
  - name: staging
  - name: production
"""


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env=full
    ).stdout


def bench_env(home: Path) -> dict[str, str]:
    """A hermetic git identity so benchmarks run on machines with no git config."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / ".gitconfig"
    config.write_text(
        "[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
        "[commit]\n\tgpgSign = false\n[tag]\n\tgpgSign = false\n[gc]\n\tauto = 0\n"
    )
    return {"HOME": str(home), "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}


def write_registry(repo: Path, manifests: int, routes: int = 10) -> Path:
    """A registry of about `manifests` files: 70% models, 20% prompts, 10% datasets, + routes."""
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "modelctl.yaml").write_text(SETTINGS)
    n_models = int(manifests * 0.7)
    n_prompts = int(manifests * 0.2)
    n_datasets = manifests - n_models - n_prompts
    per_name = 10
    for i in range(n_models):
        name, version = f"model-{i // per_name}", f"{i % per_name + 1}.0"
        folder = repo / "models" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{version}.yaml").write_text(
            f"apiVersion: modelctl/v1\nkind: Model\nname: {name}\nversion: '{version}'\n"
            f"description: synthetic model {i}\nowner: bench@example.com\n"
            f"created: 2026-01-01T00:00:00Z\nprovider: openai\nprovider_model: gpt-bench-{i}\n"
            "provider_key: env:OPENAI_API_KEY\nparameters:\n  temperature: 0.2\n  max_tokens: 512\n"
            "cost:\n  input_per_mtok: 0.15\n  output_per_mtok: 0.6\nlabels:\n  team: bench\n"
        )
    for i in range(n_prompts):
        name, version = f"prompt-{i // per_name}", str(i % per_name + 1)
        folder = repo / "prompts" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{version}.yaml").write_text(
            f"apiVersion: modelctl/v1\nkind: Prompt\nname: {name}\nversion: '{version}'\n"
            f"template: 'Answer {{{{question}}}} briefly ({i})'\nvariables:\n  - question\n"
        )
    for i in range(n_datasets):
        name, version = f"data-{i // per_name}", f"2026-{i % per_name + 1:02d}"
        folder = repo / "datasets" / name
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(str(i).encode()).hexdigest()
        (folder / f"{version}.yaml").write_text(
            f"apiVersion: modelctl/v1\nkind: Dataset\nname: {name}\nversion: {version}\n"
            f"uri: s3://bench/{name}/{version}.jsonl\nsha256: {digest}\nrows: 1000\n"
        )
    (repo / "routes").mkdir(exist_ok=True)
    for r in range(routes):
        model = f"model-{r % max(1, n_models // per_name)}@1.0"
        fallback = f"model-{(r + 1) % max(1, n_models // per_name)}@1.0"
        (repo / "routes" / f"route-{r}.yaml").write_text(
            f"apiVersion: modelctl/v1\nkind: Route\nname: route-{r}\nstages:\n"
            f"  dev:\n    targets:\n      - model: {model}\n        weight: 100\n"
            f"    fallback:\n      - model: {fallback}\n"
        )
    return repo


def make_repo(repo: Path, manifests: int, env: dict[str, str], routes: int = 10) -> Path:
    write_registry(repo, manifests, routes)
    git(repo, "init", "-q", "-b", "main", env=env)
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "synthetic registry", env=env)
    return repo


# --- fast-import streams of lifecycle history (bench_lifecycle, bench_traces) ------------------

IDENT = "Bench <bench@example.com>"


def fi_data(payload: bytes) -> bytes:
    """A `git fast-import` data block."""
    return b"data %d\n" % len(payload) + payload + b"\n"


def first_commit(stamp: str, files: list[tuple[str, bytes]]) -> bytes:
    """The stream's first commit (mark :1): `files` on refs/heads/main."""
    return (
        f"commit refs/heads/main\nmark :1\nauthor {stamp}\ncommitter {stamp}\n".encode()
        + fi_data(b"synthetic registry\n")
        + b"".join(f"M 100644 inline {path}\n".encode() + fi_data(body) for path, body in files)
    )


def lifecycle_commit(
    mark: int,
    stamp: str,
    route: str,
    stage: str,
    seq: int,
    action: str,
    source: str | None,
    promotion_id: str,
    route_yaml: bytes,
    detail: str = "",
) -> bytes:
    """One lifecycle event as modelctl writes it: the commit changing routes/ROUTE.yaml, with
    its message and trailers, and the annotated tag modelctl/ROUTE/STAGE/SEQ."""
    title = f"modelctl: {action} {route} {stage}" + (f" (from {source})" if source else "")
    trailers = [f"Action: {action}", f"Route: {route}", f"Stage: {stage}", f"Seq: {seq}"]
    trailers += [f"From: {source}"] if source else []
    trailers += ["Ref: refs/heads/main", f"Promotion-Id: {promotion_id}"]
    trailer_text = "\n".join(f"Modelctl-{t}" for t in trailers)
    message = (
        f"{title}\n\n{detail}\n\n{trailer_text}\n" if detail else f"{title}\n\n{trailer_text}\n"
    )
    return (
        f"commit refs/heads/main\nmark :{mark}\nauthor {stamp}\ncommitter {stamp}\n".encode()
        + fi_data(message.encode())
        + f"M 100644 inline routes/{route}.yaml\n".encode()
        + fi_data(route_yaml)
        + f"tag modelctl/{route}/{stage}/{seq}\nfrom :{mark}\ntagger {stamp}\n".encode()
        + fi_data(f"{title}\n\n{trailer_text}\n".encode())
    )
