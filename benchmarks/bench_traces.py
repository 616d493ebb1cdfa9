"""Trace coverage at scale: spans per second and peak memory against the JSON parse floor.

The registry is written with one `git fast-import` stream: a first commit with the settings
and the models, then one commit per lifecycle event changing one `routes/r<N>.yaml` (with a
`match:` block naming the route's agent) with the trailers `modelctl.lifecycle.actions` writes, plus
the annotated tag `modelctl/r<N>/<stage>/<seq>` of each. Routes cycle deploy dev -> promote
staging -> promote production, the binding moving through four model versions.

The spans are OTLP JSON lines as the Collector's file exporter writes them: about 100 spans
per line (ten traces of ten spans: a SERVER root with `http.route`, an `invoke_agent` span
naming the agent, two chat calls, a tool call and five database/HTTP/internal spans), so a
fifth of the spans are model calls. Half the chat spans carry `modelctl.route`; the other half
find their route through the agent ancestor's `gen_ai.agent.name` and the route's matcher.
Each call's model is the one production served at the span's time, except for a share of
stale replicas, fallbacks, unknown models and spans with no time.

Floor: read the same file and `json.loads` every line in a fresh interpreter (the fastest
JSON parser the project uses: the standard library's; text and bytes lines are both timed
and the faster one is the floor). Targets: `modelctl coverage FILE --strict --json`
within 2x of that floor at 1,000,000 spans, and its peak RSS at 1,000,000 spans within 1.2x
of that at 100,000.

    python benchmarks/bench_traces.py [--spans 100000 1000000] [--repeat 3] [--breakdown]
    python benchmarks/bench_traces.py --quick      # 20,000 and 100,000 spans, one run each

CPU time (user + system, from the child's rusage) is the primary measure: wall time on a busy
machine measures the machine. Peak RSS is the child's `ru_maxrss`.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MODELCTL, ms, table
from synth import IDENT, bench_env, first_commit, git, lifecycle_commit

ROUTES = 20
EVENTS = 2_000
VERSIONS = 4
STAGES = ("dev", "staging", "production")
INTERVAL = 1_200  # seconds between two events
SPANS_PER_TRACE = 10
TRACES_PER_LINE = 10

SETTINGS = """\
apiVersion: modelctl/v1
kind: Registry
name: bench
signing: off
stages:
  - name: dev
  - name: staging
  - name: production
    aliases: [prod]
"""

MODEL = """\
apiVersion: modelctl/v1
kind: Model
name: {name}
version: '{version}'
provider: openai
provider_model: {provider_model}
provider_key: env:OPENAI_API_KEY
"""


def provider_model(name: str, version: int) -> str:
    return f"gpt-bench-{name}-{version}"


# --- the registry ---------------------------------------------------------------------------------


def route_text(route: str, stages: dict[str, int]) -> bytes:
    body = "".join(
        f"  {s}:\n    targets:\n    - model: m@{stages[s]}\n      weight: 100\n"
        "    fallback:\n    - model: fb@1\n"
        for s in STAGES
        if s in stages
    )
    return (
        f"apiVersion: modelctl/v1\nkind: Route\nname: {route}\n"
        f"match:\n  gen_ai.agent.name: agent-{route}\nstages:\n{body}"
    ).encode()


@dataclass
class History:
    start: int
    # (route index, stage) -> sorted event times and the version live from each
    times: dict[tuple[int, str], list[int]] = field(default_factory=dict)
    versions: dict[tuple[int, str], list[int]] = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.start + EVENTS * INTERVAL

    def live(self, route: int, stage: str, t: float) -> int | None:
        times = self.times.get((route, stage), [])
        i = bisect.bisect_right(times, t) - 1
        return self.versions[(route, stage)][i] if i >= 0 else None


def stream(history: History) -> Iterator[bytes]:
    rng = random.Random(3)
    order = [i % ROUTES for i in range(EVENTS)]
    rng.shuffle(order)
    stamp = f"{IDENT} {history.start - INTERVAL} +0000"
    files = [("modelctl.yaml", SETTINGS.encode())]
    for v in range(1, VERSIONS + 1):
        text = MODEL.format(name="m", version=v, provider_model=provider_model("m", v))
        files.append((f"models/m/{v}.yaml", text.encode()))
    files.append(
        ("models/fb/1.yaml", MODEL.format(name="fb", version=1, provider_model="fb-1").encode())
    )
    yield first_commit(stamp, files)
    state: dict[int, dict[str, int]] = {}
    seqs: dict[tuple[int, str], int] = {}
    steps: dict[int, int] = {}
    now = history.start
    for i, r in enumerate(order):
        route = f"r{r}"
        step = steps.get(r, 0)
        steps[r] = step + 1
        stages = state.setdefault(r, {})
        stage = STAGES[step % 3]
        if stage == "dev":
            action, source = "deploy", None
            stages["dev"] = (step // 3) % VERSIONS + 1
        else:
            action, source = "promote", STAGES[step % 3 - 1]
            stages[stage] = stages[source]
        seq = seqs[r, stage] = seqs.get((r, stage), 0) + 1
        history.times.setdefault((r, stage), []).append(now)
        history.versions.setdefault((r, stage), []).append(stages[stage])
        promotion = uuid.UUID(int=rng.getrandbits(128)).hex
        yield lifecycle_commit(
            i + 2, f"{IDENT} {now} +0000", route, stage, seq, action, source, promotion,
            route_text(route, stages),
        )  # fmt: skip
        now += INTERVAL


def make_registry(repo: Path, env: dict[str, str]) -> History:
    history = History(int(time.time()) - EVENTS * INTERVAL - 7 * 86400)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main", env=env)
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"], cwd=repo, env=env, stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    for chunk in stream(history):
        proc.stdin.write(chunk)
    proc.stdin.write(b"done\n")
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    git(repo, "pack-refs", "--all", env=env)
    git(repo, "reset", "-q", "--hard", "main", env=env)
    return history


# --- the spans ----------------------------------------------------------------------------------


def _s(key: str, value: str) -> str:
    return f'{{"key":"{key}","value":{{"stringValue":"{value}"}}}}'


def _i(key: str, value: int) -> str:
    return f'{{"key":"{key}","value":{{"intValue":"{value}"}}}}'


def _span(trace: str, span: str, parent: str, name: str, kind: int, start: int, end: int,
          attrs: list[str], error: bool = False) -> str:  # fmt: skip
    parent_field = f'"parentSpanId":"{parent}",' if parent else ""
    status = '{"code":2}' if error else "{}"
    times = (
        f'"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}",'
        if start
        else '"startTimeUnixNano":"0","endTimeUnixNano":"0",'
    )
    return (
        f'{{"traceId":"{trace}","spanId":"{span}",{parent_field}"flags":257,"name":"{name}",'
        f'"kind":{kind},{times}"attributes":[{",".join(attrs)}],'
        f'"status":{status}}}'
    )


@dataclass
class Expect:
    """What the generator produced, to check modelctl's answer."""

    spans: int = 0
    calls: int = 0
    stale: int = 0
    unknown: int = 0
    no_time: int = 0
    fallback: int = 0


def trace_spans(rng: random.Random, history: History, n: int, expect: Expect) -> list[str]:
    """One request: server -> agent -> (chat, chat, tool, db...), the ten spans of a trace."""
    trace = f"{rng.getrandbits(128):032x}"
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(SPANS_PER_TRACE)]
    r = rng.randrange(ROUTES)
    route = f"r{r}"
    t = rng.uniform(history.start, history.end + 3600)
    base = int(t * 1e9)
    out = [
        _span(trace, ids[0], "", "POST /v1/chat", 2, base, base + 2_000_000_000,
              [_s("http.request.method", "POST"), _s("http.route", f"/v1/{route}/chat"),
               _i("http.response.status_code", 200), _s("url.scheme", "https")]),
        _span(trace, ids[1], ids[0], f"invoke_agent agent-{route}", 1, base + 1_000_000,
              base + 1_900_000_000,
              [_s("gen_ai.operation.name", "invoke_agent"), _s("gen_ai.agent.name", f"agent-{route}"),
               _s("gen_ai.agent.id", f"asst_{n % 97}")]),
    ]  # fmt: skip
    live = history.live(r, "production", t)
    for call in range(2):
        start = base + (2 + call * 500) * 1_000_000
        version = live
        model = provider_model("m", version) if version else "fb-1"
        error = False
        roll = rng.random()
        if roll < 0.01 and version:  # a stale replica: the version before
            model = provider_model("m", (version - 2) % VERSIONS + 1)
            expect.stale += 1
        elif roll < 0.015:
            model = "gpt-unregistered-2025"
            expect.unknown += 1
        elif roll < 0.02:
            model = "fb-1"  # the fallback chain answered
            expect.fallback += 1
        attrs = [
            _s("gen_ai.operation.name", "chat"),
            _s("gen_ai.provider.name", "openai"),
            _s("gen_ai.request.model", model),
            _s("gen_ai.response.model", model),
            _s("gen_ai.response.id", f"chatcmpl-{n}-{call}"),
            _i("gen_ai.usage.input_tokens", 812 + n % 100),
            _i("gen_ai.usage.output_tokens", 120 + n % 50),
            _s("server.address", "api.openai.com"),
        ]
        if n % 2 == 0:
            attrs.append(_s("modelctl.route", route))
        no_time = rng.random() < 0.001
        expect.no_time += no_time
        out.append(
            _span(trace, ids[2 + call], ids[1], f"chat {model}", 3, 0 if no_time else start,
                  start + 400_000_000, attrs, error)
        )  # fmt: skip
        expect.calls += 1
    out.append(
        _span(trace, ids[4], ids[1], "execute_tool lookup_order", 1, base + 450_000_000,
              base + 480_000_000,
              [_s("gen_ai.operation.name", "execute_tool"), _s("gen_ai.tool.name", "lookup_order"),
               _s("gen_ai.tool.call.id", f"call_{n}")])
    )  # fmt: skip
    for k in range(5):
        s = base + (460 + k) * 1_000_000
        if k % 2 == 0:
            attrs = [_s("db.system.name", "postgresql"), _s("db.operation.name", "SELECT"),
                     _s("db.collection.name", "orders"), _s("server.address", "db.internal")]  # fmt: skip
            name = "SELECT orders"
        else:
            attrs = [_s("http.request.method", "GET"), _s("url.full", f"https://crm.internal/c/{n}"),
                     _i("http.response.status_code", 200)]  # fmt: skip
            name = "GET"
        out.append(_span(trace, ids[5 + k], ids[4], name, 3, s, s + 5_000_000, attrs))
    expect.spans += len(out)
    return out


def write_spans(path: Path, spans: int, history: History, seed: int = 11) -> Expect:
    rng = random.Random(seed)
    expect = Expect()
    resource = (
        '{"attributes":['
        + ",".join(
            [
                _s("service.name", "support-api"),
                _s("service.version", "4.2.0"),
                _s("deployment.environment.name", "prod"),
                _s("telemetry.sdk.language", "python"),
            ]
        )
        + "]}"
    )
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        while expect.spans < spans:
            line: list[str] = []
            for _ in range(TRACES_PER_LINE):
                line += trace_spans(rng, history, n, expect)
                n += 1
            fh.write(
                f'{{"resourceSpans":[{{"resource":{resource},"scopeSpans":[{{"scope":'
                f'{{"name":"support-api","version":"4.2.0"}},"spans":[{",".join(line)}]}}]}}]}}\n'
            )
    return expect


# --- measuring -------------------------------------------------------------------------------------

FLOOR = """
import json, sys
mode = sys.argv[2]
n = 0
with open(sys.argv[1], "r" if mode == "text" else "rb") as fh:
    for line in fh:
        doc = json.loads(line)
        n += len(doc["resourceSpans"])
"""


BREAKDOWN = """
import gc, json, sys, time
from pathlib import Path
from modelctl.registry.snapshot import locate, snapshot_at
from modelctl.traces import calls, coverage, spans
from modelctl.traces.attribution import Context

path = sys.argv[1]
loc = locate(Path("."))
snapshot = snapshot_at(loc)
ctx = Context.build(loc, snapshot, snapshot.commit, "production")

def parse():
    for line in open(path, encoding="utf-8"):
        json.loads(line)

def read():
    for batch in spans.read_call_batches([path], lenient=False):
        pass

def rules():
    memory = calls.Memory()
    for batch in spans.read_call_batches([path], lenient=False):
        calls.calls_in(batch, memory, ctx)

def whole():
    coverage.coverage(loc, [path], strict=True)

gc.disable()  # as coverage() does while reading
times = {}
for _ in range(2):
    for name, fn in (("parse", parse), ("read", read), ("rules", rules), ("whole", whole)):
        start = time.process_time()
        fn()
        times[name] = min(times.get(name, 1e9), time.process_time() - start)
n = sum(1 for _ in open(path, "rb")) * 100
step = [("json.loads of every line (floor)", times["parse"]),
        ("+ reading spans into batches", times["read"] - times["parse"]),
        ("+ call rules (leaf, ancestors, route, stage)", times["rules"] - times["read"]),
        ("+ grouping, windows, attribution", times["whole"] - times["rules"])]
print("| stage, in one process | CPU | per span |")
print("|---|---|---|")
for name, t in step:
    print(f"| {name} | {t * 1000:.0f} ms | {t / n * 1e6:.2f} us |")
print(f"| whole, in process (no CLI start-up) | {times['whole'] * 1000:.0f} ms | "
      f"{times['whole'] / times['parse']:.2f}x the floor |")
"""


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the child (and the git processes it waited for)
    rss: int  # peak resident set size, bytes


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> Run:
    """One child process, timed; CPU time and peak RSS from wait4's rusage of that child."""
    with tempfile.TemporaryFile() as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=sink, stderr=sink)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            sink.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {sink.read()[:800]!r}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)


def best(argv: list[str], cwd: Path, env: dict[str, str], repeat: int) -> Run:
    """The fastest of `repeat` runs (wall and CPU each at their minimum), and the largest peak."""
    runs = [measure(argv, cwd, env) for _ in range(repeat)]
    return Run(min(r.wall for r in runs), min(r.cpu for r in runs), max(r.rss for r in runs))


def mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20k and 100k spans, one run each")
    parser.add_argument("--keep", type=Path, help="keep the registry and span files here")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest run")
    parser.add_argument(
        "--breakdown", action="store_true", help="time the stages in one process (largest size)"
    )
    args = parser.parse_args()
    if args.quick:
        args.spans, args.repeat = [20_000, 100_000], 1
    with tempfile.TemporaryDirectory(prefix="mctl-bench-traces-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **bench_env(root / "home"), "NO_COLOR": "1"}
        repo = root / "reg"
        started = time.perf_counter()
        history = make_registry(repo, env)
        print(f"registry: {ROUTES} routes, {EVENTS} events in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)  # fmt: skip
        warm = root / "warm.jsonl"
        write_spans(warm, 100, history)
        # fill the history cache, as any second run on a registry finds it
        subprocess.run([*MODELCTL, "coverage", str(warm), "--json"], cwd=repo, env=env,
                       check=True, capture_output=True)  # fmt: skip
        rows: list[tuple[str, ...]] = []
        peaks: dict[int, int] = {}
        breakdown = ""
        for size in args.spans:
            path = root / f"spans-{size}.otlp.jsonl"
            started = time.perf_counter()
            expect = write_spans(path, size, history)
            print(f"{expect.spans:,} spans ({path.stat().st_size / 2**20:.0f} MB) written in "
                  f"{time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip
            floors = {
                mode: best([sys.executable, "-c", FLOOR, str(path), mode], repo, env, args.repeat)
                for mode in ("text", "bytes")
            }
            floor_mode = min(floors, key=lambda m: floors[m].cpu)
            floor = floors[floor_mode]
            argv = [*MODELCTL, "coverage", str(path), "--strict", "--json"]
            ours = best(argv, repo, env, args.repeat)
            peaks[expect.spans] = ours.rss
            out = subprocess.run(argv, cwd=repo, env=env, capture_output=True, check=False)
            payload = json.loads(out.stdout)
            check = payload["spans"] == expect.calls
            reasons: dict[str, int] = {}
            for group in payload["blind_spots"]:
                reasons[group["reason"]] = reasons.get(group["reason"], 0) + group["count"]
            print(f"  calls {payload['spans']:,} (expected {expect.calls:,}), strict "
                  f"{payload['strict']['pct']:.2f}%, blind spots {reasons}; generated: stale "
                  f"{expect.stale}, unknown {expect.unknown}, no start time {expect.no_time} "
                  f"(they take their agent span's)", file=sys.stderr)  # fmt: skip
            ratio = ours.cpu / floor.cpu
            rows.append(
                (f"json.loads per line ({floor_mode}; floor)", f"{expect.spans:,}", ms(floor.cpu),
                 ms(floor.wall), f"{expect.spans / floor.cpu:,.0f}", mb(floor.rss), "1.00x", ""))  # fmt: skip
            rows.append(
                ("modelctl coverage --strict --json", f"{expect.spans:,}", ms(ours.cpu),
                 ms(ours.wall), f"{expect.spans / ours.cpu:,.0f}", mb(ours.rss), f"{ratio:.2f}x",
                 ("meets" if ratio <= 2 else "MISSES") + " 2x"
                 + ("" if check else " (WRONG COUNT)"))
            )  # fmt: skip
            if args.breakdown and size == max(args.spans):
                out = subprocess.run([sys.executable, "-c", BREAKDOWN, str(path)], cwd=repo,
                                     env=env, capture_output=True, text=True, check=True)  # fmt: skip
                breakdown = out.stdout.strip()
            if args.profile and size == max(args.spans):
                prof = root / "coverage.prof"
                subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "modelctl",
                                "coverage", str(path), "--strict", "--json"], cwd=repo, env=env,
                               capture_output=True, check=False)  # fmt: skip
                print(f"profile: {prof}", file=sys.stderr)
    header = (
        "what",
        "spans",
        "CPU",
        "wall",
        "spans/s (CPU)",
        "peak RSS",
        "vs floor (CPU)",
        "target",
    )
    print(table(rows, header))
    if breakdown:
        print(f"\n{breakdown}")
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        growth = peaks[large] / peaks[small]
        print(
            f"\npeak RSS {mb(peaks[large])} at {large:,} spans vs {mb(peaks[small])} at "
            f"{small:,}: {growth:.2f}x ({'meets' if growth <= 1.2 else 'MISSES'} 1.2x)"
        )


if __name__ == "__main__":
    main()
