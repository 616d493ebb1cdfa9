"""Registry reads: `list` and `validate`, cold and warm, against the git floor; `--help` start-up.

Floor: `git ls-tree -r` of the registry tree plus one `git cat-file --batch` of every blob in
it, i.e. the least work any tool must do to read every manifest. Targets (issue 2): warm `list`
at 10k within 1.5x of the floor, cold within 4x; `--help` within 1.3x of a minimal typer app.

    python benchmarks/bench_registry.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MINIMAL_TYPER, MODELCTL, drop_cache, median_time, ms, run, table
from synth import bench_env, make_repo


def git_floor(repo: Path, env: dict[str, str]) -> None:
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "-z", "HEAD"], cwd=repo, env=env, capture_output=True, check=True
    ).stdout
    oids = b"".join(
        rec.split(b"\t")[0].split(b" ")[2] + b"\n" for rec in listing.split(b"\0") if rec
    )
    subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        env=env,
        input=oids,
        capture_output=True,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mctl-bench-") as tmp:
        env = {**os.environ, **bench_env(Path(tmp) / "home"), "NO_COLOR": "1"}
        for size in args.sizes:
            repo = make_repo(Path(tmp) / f"r{size}", size, env)
            floor = median_time(lambda: git_floor(repo, env), args.repeat)
            rows.append(
                ("git floor (ls-tree + cat-file --batch)", str(size), ms(floor), "1.00x", "")
            )
            for label, argv, target in [
                ("list --json", [*MODELCTL, "list", "--json"], (1.5, 4.0)),
                ("list (table)", [*MODELCTL, "list"], None),
                ("validate", [*MODELCTL, "validate"], None),
            ]:
                cold = median_time(
                    lambda: run(argv, repo, env), args.repeat, before=drop_cache(repo)
                )
                run(argv, repo, env)
                warm = median_time(lambda: run(argv, repo, env), args.repeat)
                for kind, value, goal in [
                    ("cold", cold, target[1] if target else None),
                    ("warm", warm, target[0] if target else None),
                ]:
                    ratio = value / floor
                    verdict = (
                        ""
                        if goal is None
                        else ("meets" if ratio <= goal else "MISSES") + f" {goal}x"
                    )
                    rows.append(
                        (f"modelctl {label} {kind}", str(size), ms(value), f"{ratio:.2f}x", verdict)
                    )
        script = Path(tmp) / "minimal.py"
        script.write_text(MINIMAL_TYPER)
        typer_help = median_time(
            lambda: run([sys.executable, str(script), "--help"], Path(tmp), env), args.repeat
        )
        ours = median_time(lambda: run([*MODELCTL, "--help"], Path(tmp), env), args.repeat)
        rows.append(("minimal typer app --help", "-", ms(typer_help), "1.00x", ""))
        ratio = ours / typer_help
        rows.append(
            (
                "modelctl --help",
                "-",
                ms(ours),
                f"{ratio:.2f}x",
                ("meets" if ratio <= 1.3 else "MISSES") + " 1.3x",
            )
        )
    print(table(rows, ("what", "manifests", "median", "vs floor", "target")))


if __name__ == "__main__":
    main()
