"""Eval over a large dataset: examples per second against reading and joining the same files.

Floor: parse the dataset and both outputs files with the stdlib JSON parser and join them by
id in a dict, which any evaluator must do. Target (issue 4): `modelctl eval run` with three
built-in evaluators within 3x of that floor at 100,000 examples.

    python benchmarks/bench_eval.py [--examples 100000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MODELCTL, median_time, ms, run, table
from synth import bench_env, git

SETTINGS = """\
apiVersion: modelctl/v1
kind: Registry
name: bench
signing: off
stages:
  - name: dev
  - name: production
    eval_gate: {max_regression: 0.02, min_samples: 30, confidence: 0.95}
"""


def make(repo: Path, examples: int, env: dict[str, str]) -> tuple[Path, Path]:
    rng = random.Random(7)
    cohorts = ["billing", "technical", "account", "other"]
    (repo / "datasets" / "big").mkdir(parents=True)
    data = repo / "datasets" / "big" / "1.jsonl"
    with data.open("w") as fh:
        for i in range(examples):
            fh.write(
                json.dumps(
                    {
                        "id": f"e{i}",
                        "input": f"question {i}",
                        "expected": str(i % 97),
                        "cohort": cohorts[i % 4],
                    }
                )
                + "\n"
            )
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    (repo / "modelctl.yaml").write_text(SETTINGS)
    (repo / "datasets" / "big" / "1.yaml").write_text(
        f"apiVersion: modelctl/v1\nkind: Dataset\nname: big\nversion: '1'\nuri: datasets/big/1.jsonl\n"
        f"sha256: {digest}\ncohort_field: cohort\n"
    )
    for name in ("a", "b"):
        (repo / "models" / name).mkdir(parents=True)
        (repo / "models" / name / "1.yaml").write_text(
            f"apiVersion: modelctl/v1\nkind: Model\nname: {name}\nversion: '1'\nprovider: p\nprovider_model: {name}\n"
        )
    (repo / "routes").mkdir()
    (repo / "routes" / "r.yaml").write_text(
        "apiVersion: modelctl/v1\nkind: Route\nname: r\nstages:\n"
        "  dev:\n    targets: [{model: b@1, weight: 100}]\n"
        "  production:\n    targets: [{model: a@1, weight: 100}]\n"
    )
    outs = []
    for side in ("candidate", "baseline"):
        path = repo.parent / f"{side}.jsonl"
        with path.open("w") as fh:
            for i in range(examples):
                ok = rng.random() < 0.9
                fh.write(json.dumps({"id": f"e{i}", "output": str(i % 97) if ok else "x"}) + "\n")
        outs.append(path)
    git(repo, "init", "-q", "-b", "main", env=env)
    git(repo, "add", "-A", env=env)
    git(repo, "commit", "-q", "-m", "bench", env=env)
    return outs[0], outs[1]


def floor(data: Path, cand: Path, base: Path) -> None:
    # Text mode: json.loads on str skips the encoding detection it does on bytes.
    rows = [json.loads(line) for line in data.open(encoding="utf-8")]
    c = {o["id"]: o["output"] for o in map(json.loads, cand.open(encoding="utf-8"))}
    b = {o["id"]: o["output"] for o in map(json.loads, base.open(encoding="utf-8"))}
    joined = [(r, c[r["id"]], b[r["id"]]) for r in rows]
    assert len(joined) == len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mctl-bench-eval-") as tmp:
        env = {**os.environ, **bench_env(Path(tmp) / "home"), "NO_COLOR": "1"}
        repo = Path(tmp) / "reg"
        repo.mkdir()
        cand, base = make(repo, args.examples, env)
        data = repo / "datasets" / "big" / "1.jsonl"
        floor_t = median_time(lambda: floor(data, cand, base), args.repeat)
        argv = [
            *MODELCTL, "eval", "run", "r", "--to", "production", "--dataset", "big@1",
            "--candidate-outputs", str(cand), "--baseline-outputs", str(base),
            "--evaluator", "exact_match", "--evaluator", "contains", "--evaluator", "numeric_close",
            "--no-commit", "--json",
        ]  # fmt: skip
        counter = iter(range(10_000))
        ours = median_time(
            lambda: run([*argv, "--run-id", f"run-{next(counter)}"], repo, env), args.repeat
        )
    ratio = ours / floor_t
    print(
        table(
            [
                (
                    "read + join 3 JSONL files (floor)",
                    str(args.examples),
                    ms(floor_t),
                    f"{args.examples / floor_t:,.0f}",
                    "1.00x",
                    "",
                ),
                (
                    "modelctl eval run, 3 evaluators",
                    str(args.examples),
                    ms(ours),
                    f"{args.examples / ours:,.0f}",
                    f"{ratio:.2f}x",
                    ("meets" if ratio <= 3 else "MISSES") + " 3x",
                ),
            ],
            ("what", "examples", "median", "examples/s", "vs floor", "target"),
        )
    )


if __name__ == "__main__":
    started = time.perf_counter()
    main()
