"""Every benchmark in one run: modelctl against GTO and the git floor, at growing registry sizes.

For each size (artifacts x 10 versions) a GTO registry is generated with one `git fast-import`
stream: ten commits and, per artifact, the annotated tags the `gto` CLI writes (same names,
messages, tagger lines): a registration per version, assignments to dev (every version),
staging (every 2nd) and prod (every 5th), an unassignment on every 10th artifact and a
deprecation on every 50th, each a second after the last. `gto show` reads them back, and at
every size it must agree with `modelctl status` on every artifact and stage, or the run stops.
A copy is imported with `modelctl import gto`; refs are packed in both copies afterwards, as
`git gc` would. Then, on the same logical registry:

    gto show                vs  modelctl status            floor: git for-each-ref (all GTO tags)
    gto show NAME           vs  modelctl status ROUTE      floor: git for-each-ref (NAME's tags)
    gto history NAME        vs  modelctl history ROUTE     floor: git log of ROUTE's commits

modelctl runs cold (its caches under .git/modelctl deleted before each run) and warm. Targets
(issue 7) at 1000 x 10: modelctl at least 100x faster than GTO on each pair and within 3x of
the floor, its cost growing no faster than linearly with the number of versions (log-log slope
<= 1), and a warm `status ROUTE` flat in the number of other routes (slope <= 0.1). The other
benchmark scripts (bench_*.py) run afterwards and their tables are printed as they are.

    python benchmarks/run.py                 # 10, 100, 500, 1000 artifacts; a long run
    python benchmarks/run.py --quick         # 10 and 100 artifacts, small sizes elsewhere
    python benchmarks/run.py --sizes 10 100 --no-others --gto-repeat 1

Writes benchmarks/out/scaling.png (log-log cost against versions) when matplotlib is there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MODELCTL, cpu_time, drop_cache, median_time, ms, table
from synth import IDENT, bench_env, git

HERE = Path(__file__).resolve().parent
VERSIONS = 10
STAGES = ("dev", "staging", "prod")
T0 = 1704067200  # 2024-01-01T00:00:00Z
SIZES = [10, 100, 500, 1000]
QUICK_SIZES = [10, 100]
TARGET_SPEEDUP = 100.0
TARGET_FLOOR = 3.0
TARGET_SLOPE = 1.0
TARGET_FLAT = 0.1
# Arguments for the other benchmark scripts in --quick mode (full mode uses their defaults).
QUICK_ARGS = {
    "bench_registry.py": ["--sizes", "1000", "--repeat", "3"],
    "bench_eval.py": ["--examples", "10000", "--repeat", "3"],
}


# --- a GTO registry, written the way the gto CLI writes it -------------------------------------


def artifact_name(index: int) -> str:
    return f"model-{index:04d}"


def _data(payload: str) -> bytes:
    raw = payload.encode()
    return b"data %d\n%s\n" % (len(raw), raw)


def gto_stream(artifacts: int) -> Iterator[bytes]:
    """fast-import input: VERSIONS commits, then every artifact's GTO tags."""
    clock = T0
    yield b"commit refs/heads/main\nmark :1\n"
    yield f"author {IDENT} {clock} +0000\ncommitter {IDENT} {clock} +0000\n".encode()
    yield _data("a GTO registry (synthetic)")
    yield b"M 100644 inline .gto\n" + _data("stages: [dev, staging, prod]\n")
    for i in range(1, VERSIONS + 1):
        clock += 60
        yield f"commit refs/heads/main\nmark :{i + 1}\n".encode()
        yield f"author {IDENT} {clock} +0000\ncommitter {IDENT} {clock} +0000\n".encode()
        yield _data(f"train model generation {i}")
        yield b"M 100644 inline model.bin\n" + _data(f"weights {i}\n")
    for a in range(artifacts):
        name = artifact_name(a)
        counter = 0
        tags: list[tuple[str, int, str]] = []  # (tag, commit mark, message)
        for i in range(VERSIONS):
            version = f"v1.{i}.0"
            tags.append(
                (f"{name}@{version}", i + 2, f"Registering artifact {name} version {version}")
            )
        for i in range(VERSIONS):
            version = f"v1.{i}.0"
            for stage, every in (("dev", 1), ("staging", 2), ("prod", 5)):
                if (i + 1) % every == 0:
                    counter += 1
                    message = f"Assigning stage {stage} to artifact {name} version {version}"
                    tags.append((f"{name}#{stage}#{counter}", i + 2, message))
        if a % 10 == 3:
            counter += 1
            version = f"v1.{VERSIONS - 1}.0"
            message = f"Unassigning stage 'dev' to artifact '{name}' version '{version}'"
            tags.append((f"{name}#dev!#{counter}", VERSIONS + 1, message))
        if a % 50 == 7:
            tags.append((f"{name}@deprecated", VERSIONS + 1, f"Deprecating artifact '{name}'"))
        for tag, mark, message in tags:
            clock += 1
            yield f"tag {tag}\nfrom :{mark}\ntagger {IDENT} {clock} +0000\n".encode()
            yield _data(message + "\n")  # gto's tags end with a newline
    yield b"done\n"


def make_gto_repo(repo: Path, artifacts: int, env: dict[str, str]) -> None:
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main", env=env)
    stream = b"".join(gto_stream(artifacts))
    subprocess.run(
        ["git", "fast-import", "--quiet", "--done"],
        cwd=repo, input=stream, env=env, check=True, capture_output=True,
    )  # fmt: skip
    git(repo, "reset", "-q", "--hard", "main", env=env)
    git(repo, "pack-refs", "--all", env=env)


# --- timing ----------------------------------------------------------------------------------


def gto_executable() -> str | None:
    found = shutil.which("gto")
    local = Path(sys.executable).parent / "gto"
    return found or (str(local) if local.is_file() else None)


def output(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-800:]}")
    return proc.stdout


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}"
            )

    return run


@dataclass
class Sample:
    label: str  # the command as a reader sees it
    pair: str  # which comparison it belongs to
    side: str  # floor-gto, floor-modelctl, gto, modelctl-cold, modelctl-warm, info
    size: int
    seconds: float


@dataclass
class Results:
    clock: str = "wall"
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def measure(
        self, fn: Callable[[], None], repeat: int, before: Callable[[], None] | None = None
    ) -> float:
        return (cpu_time if self.clock == "cpu" else median_time)(fn, repeat, before)

    def add(self, label: str, pair: str, side: str, size: int, seconds: float) -> None:
        self.samples.append(Sample(label, pair, side, size, seconds))
        print(f"  {label} @ {size}x{VERSIONS}: {ms(seconds)}", file=sys.stderr, flush=True)

    def get(self, pair: str, side: str, size: int) -> float | None:
        for s in self.samples:
            if (s.pair, s.side, s.size) == (pair, side, size):
                return s.seconds
        return None


def agree(gto_show: dict[str, object], status: dict[str, object]) -> int:
    """Compare `gto show --json` with `modelctl status --json`; the number of stages compared."""
    served: dict[str, dict[str, str | None]] = {}
    for route in status["routes"]:  # type: ignore[attr-defined]
        served[route["route"]] = {
            s["stage"]: (
                s["binding"]["targets"][0]["model"].partition("@")[2] if s["binding"] else None
            )
            for s in route["stages"]
        }
    compared = 0
    for name, state in gto_show.items():
        for stage, version in state["stage"].items():  # type: ignore[attr-defined]
            if served[name].get(stage) != version:
                raise SystemExit(
                    f"GTO and modelctl disagree: {name} {stage}: gto {version}, "
                    f"modelctl {served[name].get(stage)}"
                )
            compared += 1
    for name, stages in served.items():
        if name not in gto_show and any(stages.values()):
            raise SystemExit(f"{name} is hidden by GTO (deprecated) but modelctl serves {stages}")
    return compared


def bench_size(
    size: int, tmp: Path, env: dict[str, str], gto: str | None, args: argparse.Namespace,
    results: Results,
) -> None:  # fmt: skip
    print(f"\n{size} x {VERSIONS}:", file=sys.stderr, flush=True)
    gto_repo = tmp / f"gto-{size}"
    make_gto_repo(gto_repo, size, env)
    repo = tmp / f"modelctl-{size}"
    shutil.copytree(gto_repo, repo, symlinks=True)
    printed: list[str] = []
    seconds = results.measure(
        lambda: printed.append(output([*MODELCTL, "import", "gto", "--json"], repo, env)), 1
    )
    results.add("modelctl import gto", "import", "info", size, seconds)
    imported = json.loads(printed[0])
    git(repo, "pack-refs", "--all", env=env)
    name = artifact_name(size // 2 + 3)  # has an unassignment
    tag_fields = "--format=%(refname)%00%(*objectname)%00%(taggerdate:raw)%00%(taggername)%00%(contents:subject)"
    log_fields = "--format=%H%x00%an%x00%ct%x00%(trailers:only,unfold)"
    route_log = ["git", "log", "--no-show-signature", "--first-parent", "--raw", log_fields]
    floors = [
        ("state", "floor-gto", "git for-each-ref (all GTO tags)", gto_repo,
         ["git", "for-each-ref", tag_fields, "refs/tags/"]),
        ("state", "floor-modelctl", "git log (all route commits)", repo,
         [*route_log, "--", "routes/"]),
        ("artifact", "floor-gto", "git for-each-ref (NAME's GTO tags)", gto_repo,
         ["git", "for-each-ref", tag_fields, f"refs/tags/{name}@*", f"refs/tags/{name}#*"]),
        ("artifact", "floor-modelctl", "git log (ROUTE's commits)", repo,
         [*route_log, "--", f"routes/{name}.yaml"]),
    ]  # fmt: skip
    pairs = [
        ("state", "gto show", ["show", "--json"], [("modelctl status", ["status", "--json"])]),
        ("artifact", "gto show NAME", ["show", name, "--json"], [
            ("modelctl status ROUTE", ["status", name, "--json"]),
            ("modelctl show ROUTE", ["show", name, "--json"]),
        ]),
        ("history", "gto history NAME", ["history", name, "--json"], [
            ("modelctl history ROUTE", ["history", name, "--json"]),
        ]),
    ]  # fmt: skip
    r = args.repeat
    measure = results.measure
    for pair, side, label, where, argv in floors:
        results.add(label, pair, side, size, measure(timed(argv, where, env), r))
    for pair, gto_label, gto_args, commands in pairs:
        for label, mctl_args in commands:
            argv = [*MODELCTL, *mctl_args]
            cold = measure(timed(argv, repo, env), r, before=drop_cache(repo))
            results.add(f"{label} (cold)", pair, "modelctl-cold", size, cold)
            output(argv, repo, env)
            warm = measure(timed(argv, repo, env), r)
            results.add(f"{label} (warm)", pair, "modelctl-warm", size, warm)
        if gto is not None and size <= args.gto_max:
            repeat = args.gto_repeat if size < 500 else max(1, args.gto_repeat - 1)
            results.add(gto_label, pair, "gto", size,
                        measure(timed([gto, *gto_args], gto_repo, env), repeat))  # fmt: skip
    if gto is not None:
        shown = json.loads(output([gto, "show", "--json"], gto_repo, env))
        status = json.loads(output([*MODELCTL, "status", "--json"], repo, env))
        compared = agree(shown, status)
        results.notes.append(
            f"{size} x {VERSIONS}: gto show and modelctl status agree on {len(shown)} visible "
            f"artifacts, {compared} stages ({imported['events']} events, {imported['commits']} "
            f"commits imported from {imported['tags_read']} GTO tags)"
        )
    if args.verify:
        verify = results.measure(timed([*MODELCTL, "verify", "--json"], repo, env), 1)
        results.add("modelctl verify", "verify", "info", size, verify)
    shutil.rmtree(gto_repo, ignore_errors=True)
    shutil.rmtree(repo, ignore_errors=True)


# --- reporting -------------------------------------------------------------------------------


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(cost) against log(versions)."""
    if len(points) < 2:
        return None
    xs = [math.log(v) for v, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def verdict(ok: bool, what: str) -> str:
    return ("meets " if ok else "MISSES ") + what


# The floor each pair is measured against: history reads the same tags or commits as show NAME.
FLOOR_OF = {"state": "state", "artifact": "artifact", "history": "artifact"}
PAIR_ORDER = {"state": 0, "artifact": 1, "history": 2, "import": 3, "verify": 4}
SIDE_ORDER = {
    "floor-gto": 0, "gto": 1, "floor-modelctl": 2, "modelctl-cold": 3, "modelctl-warm": 4,
    "info": 5,
}  # fmt: skip


def floor_of(results: Results, sample: Sample) -> float | None:
    if sample.side == "info" or sample.side.startswith("floor"):
        return None
    side = "floor-gto" if sample.side == "gto" else "floor-modelctl"
    return results.get(FLOOR_OF[sample.pair], side, sample.size)


def report(results: Results, sizes: list[int]) -> str:
    largest = max(sizes)
    rows: list[tuple[tuple[int, ...], tuple[str, ...]]] = []
    for s in results.samples:
        floor = floor_of(results, s)
        vs_floor = f"{s.seconds / floor:.1f}x" if floor else ""
        speedup, target = "", ""
        if s.side.startswith("modelctl"):
            gto = results.get(s.pair, "gto", s.size)
            speedup = f"{gto / s.seconds:.0f}x" if gto else ""
            if s.size == largest:
                checks = []
                if gto:
                    checks.append(
                        verdict(gto / s.seconds >= TARGET_SPEEDUP, f">= {TARGET_SPEEDUP:.0f}x GTO")
                    )
                if floor:
                    checks.append(
                        verdict(s.seconds / floor <= TARGET_FLOOR, f"<= {TARGET_FLOOR:.0f}x floor")
                    )
                target = "; ".join(checks)
        key = (PAIR_ORDER[s.pair], SIDE_ORDER[s.side], s.size)
        rows.append(
            (key, (s.label, f"{s.size}x{VERSIONS}", ms(s.seconds), vs_floor, speedup, target))
        )
    rows.sort(key=lambda row: row[0])
    text = table(
        [r for _, r in rows], ("command", "size", "median", "vs floor", "GTO / modelctl", "target")
    )
    growth = []
    for label in dict.fromkeys(
        s.label
        for s in sorted(results.samples, key=lambda s: (PAIR_ORDER[s.pair], SIDE_ORDER[s.side]))
    ):
        side = next(s.side for s in results.samples if s.label == label)
        value = slope([(s.size * VERSIONS, s.seconds) for s in results.samples if s.label == label])
        if value is None:
            continue
        goal = ""
        if label == "modelctl status ROUTE (warm)":
            goal = verdict(value <= TARGET_FLAT, f"flat (<= {TARGET_FLAT})")
        elif side.startswith("modelctl"):
            goal = verdict(value <= TARGET_SLOPE, f"linear (<= {TARGET_SLOPE})")
        growth.append((label, f"{value:.2f}", goal))
    text += "\n\nGrowth exponent (least-squares slope of log cost against log versions):\n\n"
    text += table(growth, ("command", "exponent", "target"))
    return text


def chart(results: Results, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]'): no chart"
    fig, ax = plt.subplots(figsize=(10, 7))
    styles = {
        "floor-gto": ":", "floor-modelctl": ":", "gto": "-", "modelctl-cold": "--",
        "modelctl-warm": "-", "info": "-.",
    }  # fmt: skip
    labels = list(dict.fromkeys(s.label for s in results.samples))
    colors = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
    for i, label in enumerate(labels):
        points = sorted(
            (s.size * VERSIONS, s.seconds, s.side) for s in results.samples if s.label == label
        )
        if len(points) < 2:
            continue
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], styles[points[0][2]],
            marker="o", label=label, color=colors[i % len(colors)],
            linewidth=2.5 if points[0][2] == "gto" else 1.5,
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("versions in the registry (artifacts x 10)")
    ax.set_ylabel(f"{results.clock} time per command (s, median)")
    ax.set_title("GTO vs modelctl vs the git floor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return None


def other_benchmarks(quick: bool, env: dict[str, str]) -> str:
    parts = []
    for script in sorted(HERE.glob("bench_*.py")):
        extra = QUICK_ARGS.get(script.name, [])
        if quick and script.name not in QUICK_ARGS:
            help_text = output([sys.executable, str(script), "--help"], HERE, env)
            extra = ["--quick"] if "--quick" in help_text else []
        argv = [sys.executable, str(script), *(extra if quick else [])]
        print(f"\nrunning {script.name} {' '.join(argv[2:])}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        proc = subprocess.run(
            argv, cwd=HERE.parent, env=env, capture_output=True, text=True, check=False
        )
        took = time.perf_counter() - start
        body = (
            proc.stdout.strip()
            if proc.returncode == 0
            else f"failed ({proc.returncode}):\n{proc.stderr[-800:]}"
        )
        parts.append(
            f"### {script.name} {' '.join(extra if quick else [])} ({took:.0f} s)\n\n{body}"
        )
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes everywhere")
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="artifacts per registry (x 10 versions)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per modelctl/git median")
    parser.add_argument("--gto-repeat", type=int, default=3, help="runs per GTO median")
    parser.add_argument("--gto-max", type=int, default=10**9, help="skip GTO above this size")
    parser.add_argument("--verify", action="store_true", help="also time modelctl verify")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall time, or CPU time of the processes (steadier on a busy machine)",
    )  # fmt: skip
    parser.add_argument("--no-others", action="store_true", help="skip the bench_*.py scripts")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where the chart goes")
    args = parser.parse_args()
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    if args.quick:
        args.repeat = min(args.repeat, 3)
    gto = gto_executable()
    results = Results(clock=args.clock)
    if gto is None:
        results.notes.append("gto is not installed (pip install -e '.[bench]'): GTO not timed")
    with tempfile.TemporaryDirectory(prefix="mctl-run-") as tmp:
        env = {**os.environ, **bench_env(Path(tmp) / "home"), "NO_COLOR": "1"}
        env.pop("GIT_DIR", None)
        for size in sizes:
            bench_size(size, Path(tmp), env, gto, args, results)
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        print("\n## modelctl vs GTO vs the git floor\n")
        print(
            f"{args.clock} time, median of {args.repeat} (GTO: {args.gto_repeat}, one less from "
            f"500 artifacts); {os.cpu_count()} CPUs, load average {load} at the end\n"
        )
        print(report(results, sizes))
        for note in results.notes:
            print(f"\n- {note}")
        problem = chart(results, args.out / "scaling.png")
        print(f"\n{problem}" if problem else f"\nchart: {args.out / 'scaling.png'}")
        if not args.no_others:
            print("\n## Other benchmarks\n")
            print(other_benchmarks(args.quick, env))


if __name__ == "__main__":
    main()
