"""Lifecycle at scale: promote, history, resolve, status and verify against their git floors.

The registry is written with one `git fast-import` stream (creating 100,000 commits through
modelctl would take hours): a first commit with the settings and the model manifests, then
one commit per lifecycle event, each changing one `routes/r<N>.yaml` with the message and
trailers `modelctl.lifecycle.actions` writes and monotonic committer dates, plus the annotated tag
`modelctl/r<N>/<stage>/<seq>` of each. Routes cycle deploy dev -> promote staging -> promote
production, with the dev binding alternating between four model versions.

Floors and targets (issue 3, at 1,000 routes and 100,000 events):
- promote: the git plumbing a promote must run (rev-parse, read the route file and the
  settings, hash-object, read-tree into a private index, update-index, write-tree,
  commit-tree, mktag, update-ref --stdin for branch and tag), as one shell script; signed,
  the same with `commit-tree -S` and a tag signed by `ssh-keygen -Y sign`. Target 2x.
- history ROUTE and resolve --at (warm): one plain `git log --first-parent -- routes/r<N>.yaml`
  over the same commits. Target 1.5x.
- status ROUTE: the same at two registry sizes (it must not grow with the number of routes).
- verify: lifecycle commits per second over the whole history, unsigned and on a fully signed
  history of 1,000 events. Target 100 commits/s. Floor: the history with every commit's changes,
  `%G?` of every commit and every tag listed with its object (signed tags verified by
  `verify-tag`, many to a process), one after the other. `--since` over the last 20 commits:
  target < 1 s (floor: those commits' log and the list of tags).
- start-up: `modelctl --version` and a minimal typer app, the cost every command starts with.

Each command is timed as a whole process. Before each timed promote a deploy gives dev a new
binding; the first promote of the route fills its event cache, as any earlier use would have.
`--clock cpu` times user + sys CPU of the process and every git process it waited for, which
stays meaningful on a machine busy with other work (rates are then per CPU-second).

    python benchmarks/bench_lifecycle.py [--routes 1000] [--events 100000] [--repeat 5]
    python benchmarks/bench_lifecycle.py --quick [--clock cpu] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MINIMAL_TYPER, MODELCTL, cpu_time, drop_cache, median_time, ms, table
from synth import IDENT, bench_env, first_commit, git, lifecycle_commit

VERSIONS = 4  # model versions m@1..m@4 the dev binding cycles through
STAGES = ("dev", "staging", "production")
INTERVAL = 300  # seconds between two events' committer dates

SETTINGS = """\
# yaml-language-server: $schema=.modelctl/schemas/registry.json
apiVersion: modelctl/v1
kind: Registry
name: bench
signing: {signing}
allowed_signers: .modelctl/allowed_signers
stages:
  - name: dev
  - name: staging
  - name: production
"""

MODEL = """\
# yaml-language-server: $schema=../../.modelctl/schemas/model.json
apiVersion: modelctl/v1
kind: Model
name: {name}
version: '{version}'
provider: openai
provider_model: gpt-bench-{name}-{version}
provider_key: env:OPENAI_API_KEY
"""


FLOOR_SCRIPT = r"""
# The git plumbing a promote must run, nothing else (bash builtins between the git processes;
# the signed variant also runs ssh-keygen, as git itself does to sign).
route=$1 n=$2 branch=refs/heads/$3 key=${4:-}
sign=--no-gpg-sign
[ -n "$key" ] && sign=-S
tip=$(git rev-parse --verify "$branch")
printf '%s\n' "$tip:routes/$route.yaml" "$tip:modelctl.yaml" | git cat-file --batch >/dev/null
blob=$(git hash-object -w --stdin <"$FLOOR_DIR/route.yaml")
index="$FLOOR_DIR/index.$n"
GIT_INDEX_FILE=$index git read-tree "$tip"
printf '100644 %s\troutes/%s.yaml\n' "$blob" "$route" | GIT_INDEX_FILE=$index git update-index --index-info
tree=$(GIT_INDEX_FILE=$index git write-tree)
commit=$(git commit-tree "$tree" -p "$tip" $sign -F "$FLOOR_DIR/message.txt")
body="$FLOOR_DIR/tag.$n"
printf -v now '%(%s)T' -1
message=$(<"$FLOOR_DIR/message.txt")
printf 'object %s\ntype commit\ntag floor/%s/%s\ntagger %s %s +0000\n\n%s\n' \
  "$commit" "$3" "$n" "$IDENT" "$now" "$message" >"$body"
if [ -n "$key" ]; then
  ssh-keygen -q -Y sign -n git -f "$key" "$body" >/dev/null 2>&1
  signature=$(<"$body.sig")
  printf '%s\n' "$signature" >>"$body"
fi
tag=$(git mktag <"$body")
printf 'start\nupdate %s %s %s\ncreate refs/tags/floor/%s/%s %s\nprepare\ncommit\n' \
  "$branch" "$commit" "$tip" "$3" "$n" "$tag" | git update-ref -m floor --stdin
"""


# --- the synthetic history -----------------------------------------------------------------------


def binding_text(version: int) -> str:
    return (
        f"    targets:\n    - model: m@{version}\n      weight: 100\n"
        "    fallback:\n    - model: fb@1\n"
    )


def route_text(route: str, stages: dict[str, int]) -> bytes:
    """A route file exactly as `modelctl deploy/promote` renders it."""
    body = "".join(f"  {s}:\n{binding_text(stages[s])}" for s in STAGES if s in stages)
    return (
        "# yaml-language-server: $schema=../.modelctl/schemas/route.json\n"
        f"apiVersion: modelctl/v1\nkind: Route\nname: {route}\nstages:\n{body}"
    ).encode()


def summary(version: int | None) -> str:
    return "nothing" if version is None else f"m@{version}; fallback: fb@1"


@dataclass
class History:
    """What was generated: enough to pick arguments and check modelctl's answers."""

    routes: int
    events: int
    start: int  # committer time of the first event
    per_route: dict[str, int] = field(default_factory=dict)  # route -> events

    def middle(self) -> int:
        return self.start + (self.events // 2) * INTERVAL


def stream(
    routes: int, events: int, signing: str, signers: str, history: History
) -> Iterator[bytes]:
    """The fast-import stream of the whole registry branch with its tags."""
    rng = random.Random(3)
    order = [i % routes for i in range(events)]
    rng.shuffle(order)
    now = history.start
    stamp = f"{IDENT} {now - INTERVAL} +0000"
    files = [("modelctl.yaml", SETTINGS.format(signing=signing).encode())]
    files += [
        (f"models/m/{v}.yaml", MODEL.format(name="m", version=v).encode())
        for v in range(1, VERSIONS + 1)
    ]
    files.append(("models/fb/1.yaml", MODEL.format(name="fb", version=1).encode()))
    files.append((".modelctl/allowed_signers", signers.encode()))
    yield first_commit(stamp, files)
    state: dict[int, dict[str, int]] = {}
    seqs: dict[tuple[int, str], int] = {}
    steps: dict[int, int] = {}
    for i, r in enumerate(order):
        route = f"r{r}"
        step = steps.get(r, 0)
        steps[r] = step + 1
        stages = state.setdefault(r, {})
        stage = STAGES[step % 3]
        before = stages.get(stage)
        if stage == "dev":
            action, source = "deploy", None
            stages["dev"] = (step // 3) % VERSIONS + 1
        else:
            action, source = "promote", STAGES[step % 3 - 1]
            stages[stage] = stages[source]
        seq = seqs[r, stage] = seqs.get((r, stage), 0) + 1
        promotion = uuid.UUID(int=rng.getrandbits(128)).hex
        detail = f"{summary(before)}\n  -> {summary(stages[stage])}"
        yield lifecycle_commit(
            i + 2, f"{IDENT} {now} +0000", route, stage, seq, action, source, promotion,
            route_text(route, stages), detail,
        )  # fmt: skip
        history.per_route[route] = history.per_route.get(route, 0) + 1
        now += INTERVAL


def make_history(
    repo: Path, routes: int, events: int, env: dict[str, str], signing: str = "optional",
    signers: str = "",
) -> History:  # fmt: skip
    """A registry repository whose branch holds `events` lifecycle events over `routes` routes."""
    history = History(routes, events, int(time.time()) - events * INTERVAL - 86400)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main", env=env)
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"], cwd=repo, env=env, stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    for chunk in stream(routes, events, signing, signers, history):
        proc.stdin.write(chunk)
    proc.stdin.write(b"done\n")
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    git(repo, "pack-refs", "--all", env=env)
    git(repo, "reset", "-q", "--hard", "main", env=env)
    return history


def make_key(folder: Path) -> tuple[Path, str]:
    """A throwaway SSH signing key; (private key, its allowed-signers line)."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / "bench_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(private)],
        check=True,
        capture_output=True,
    )
    keytype, blob = private.with_suffix(".pub").read_text().split()[:2]
    return private, f'bench@example.com namespaces="git" {keytype} {blob}\n'


def sign_all(repo: Path, env: dict[str, str]) -> None:
    """Rewrite the branch with every commit and lifecycle tag signed (same trees, dates, text)."""
    oids = git(repo, "rev-list", "--reverse", "--first-parent", "main", env=env).split()
    raw = subprocess.run(
        ["git", "cat-file", "--batch"], cwd=repo, env=env, check=True, capture_output=True,
        input="".join(f"{o}\n" for o in oids).encode(),
    ).stdout  # fmt: skip
    objects: dict[str, bytes] = {}
    pos = 0
    for oid in oids:
        end = raw.index(b"\n", pos)
        size = int(raw[pos:end].split()[2])
        objects[oid] = raw[end + 1 : end + 1 + size]
        pos = end + 2 + size
    mapping: dict[str, str] = {}
    parent: str | None = None
    for oid in oids:
        headers, _, message = objects[oid].partition(b"\n\n")
        fields = dict(line.split(b" ", 1) for line in headers.splitlines())
        date = fields[b"committer"].decode().rsplit(" ", 2)
        stamp = f"{date[1]} {date[2]}"
        args = ["commit-tree", "-S", fields[b"tree"].decode(), "-F", "-"]
        args += ["-p", parent] if parent else []
        proc = subprocess.run(
            ["git", *args], cwd=repo, check=True, capture_output=True, input=message,
            env={**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp},
        )  # fmt: skip
        parent = mapping[oid] = proc.stdout.decode().strip()
    tags = git(
        repo, "for-each-ref", "--format=%(refname:strip=2) %(*objectname) %(taggerdate:raw)",
        "refs/tags/modelctl/", env=env,
    ).splitlines()  # fmt: skip

    def sign_tag(line: str) -> None:
        name, target, *date = line.split()
        message = git(repo, "tag", "-l", "--format=%(contents)", name, env=env)
        subprocess.run(
            ["git", "tag", "-f", "-s", "-F", "-", name, mapping[target]],
            cwd=repo, check=True, capture_output=True, input=message.encode(),
            env={**env, "GIT_COMMITTER_DATE": " ".join(date)},
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(sign_tag, tags))
    assert parent is not None
    git(repo, "update-ref", "-m", "signed", "refs/heads/main", parent, env=env)
    git(repo, "pack-refs", "--all", env=env)
    git(repo, "reset", "-q", "--hard", "main", env=env)


# --- running and timing ---------------------------------------------------------------------------


MEASURE = median_time  # or cpu_time (--clock cpu)


def call(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    if proc.returncode not in ok:
        raise SystemExit(
            f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-800:]}"
        )
    return proc.stdout.decode()


def command(argv: list[str], cwd: Path, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        call(argv, cwd, env)

    return run


def modelctl(repo: Path, env: dict[str, str], *args: str) -> Callable[[], None]:
    return command([*MODELCTL, *args], repo, env)


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("set -euo pipefail\n" + body)
    return path


def check(repo: Path, env: dict[str, str], history: History) -> None:
    """The generated registry is what modelctl expects: verify passes, history has every event."""
    call([*MODELCTL, "verify"], repo, env)
    route = "r7" if "r7" in history.per_route else next(iter(history.per_route))
    events = json.loads(call([*MODELCTL, "history", route, "--json"], repo, env))["events"]
    if len(events) != history.per_route[route] or any(e["action"] == "unattested" for e in events):
        raise SystemExit(
            f"history {route}: {len(events)} events, expected {history.per_route[route]}"
        )
    if len({(e["stage"], e["seq"]) for e in events}) != len(events):
        raise SystemExit(f"history {route}: repeated sequence numbers")


def current(repo: Path, route: str) -> dict[str, int]:
    """Which m@N each stage of `route` serves in the work tree."""
    out: dict[str, int] = {}
    stage = ""
    for line in (repo / "routes" / f"{route}.yaml").read_text().splitlines():
        if line.startswith("  ") and not line.startswith("   ") and line.endswith(":"):
            stage = line.strip(" :")
        elif line.startswith("    - model: m@") and stage not in out:
            out[stage] = int(line.rsplit("@", 1)[1])
    return out


class Promoter:
    """Timed promotes of one route to staging; before each, dev gets a new binding."""

    def __init__(self, repo: Path, env: dict[str, str], route: str) -> None:
        self.repo, self.env, self.route = repo, env, route

    def prepare(self) -> None:
        now = current(self.repo, self.route)
        version = next(
            v for v in range(1, VERSIONS + 1) if v not in (now.get("dev"), now.get("staging"))
        )
        call(
            [*MODELCTL, "deploy", self.route, "--stage", "dev", "--model", f"m@{version}",
             "--fallback", "fb@1"], self.repo, self.env,
        )  # fmt: skip

    def promote(self) -> None:
        call([*MODELCTL, "promote", self.route, "--to", "staging"], self.repo, self.env)


class Floor:
    """The promote floor script, committing on a branch of its own (the work tree stays put)."""

    def __init__(self, repo: Path, env: dict[str, str], route: str, key: Path | None) -> None:
        self.repo, self.route, self.key = repo, route, key
        self.dir = Path(tempfile.mkdtemp(prefix="floor-", dir=repo.parent))
        self.script = script(self.dir, "floor.sh", FLOOR_SCRIPT)
        self.branch = f"floor-{'signed' if key else 'plain'}"
        git(repo, "branch", "-f", self.branch, "main", env=env)
        self.env = {**env, "FLOOR_DIR": str(self.dir), "IDENT": IDENT}
        (self.dir / "route.yaml").write_bytes((repo / "routes" / f"{route}.yaml").read_bytes())
        message = git(repo, "log", "-1", "--format=%B", "main", env=env)
        (self.dir / "message.txt").write_text(message.strip() + "\n")
        self.n = 0

    def run(self) -> None:
        self.n += 1
        args = ["bash", str(self.script), self.route, str(self.n), self.branch]
        call([*args, str(self.key)] if self.key else args, self.repo, self.env)


@dataclass
class Row:
    what: str
    size: str
    median: float  # seconds
    floor: float | None = None  # seconds
    target: str = ""  # "2x": ratio to the floor at most; "1s": seconds at most; "100/s": rate
    rate: float | None = None  # lifecycle commits per second, for verify
    rate_unit: str = "commits/s"

    def met(self) -> bool | None:
        if not self.target:
            return None
        value = float(self.target.rstrip("x/s"))
        if self.target.endswith("/s"):
            return self.rate is not None and self.rate >= value
        if self.target.endswith("x"):
            return self.floor is not None and self.median <= value * self.floor
        return self.median <= value

    def cells(self) -> tuple[str, ...]:
        what = self.what + (f": {self.rate:,.0f} {self.rate_unit}" if self.rate is not None else "")
        goal = {"x": f"<= {self.target}", "/s": f">= {self.target}"}.get(
            "/s" if self.target.endswith("/s") else self.target[-1:], f"< {self.target}"
        ) if self.target else ""  # fmt: skip
        met = self.met()
        return (
            what,
            self.size,
            ms(self.median),
            ms(self.floor) if self.floor else "",
            f"{self.median / self.floor:.2f}x" if self.floor else "",
            goal,
            "" if met is None else ("yes" if met else "NO"),
        )


def route_in_middle(history: History) -> str:
    return f"r{history.routes // 2 + 1}"


def bench_startup(repo: Path, env: dict[str, str], repeat: int) -> list[Row]:
    """What every modelctl command pays before it does anything: Python and typer start-up."""
    minimal = repo.parent / "minimal_typer.py"
    minimal.write_text(MINIMAL_TYPER)
    typer_app = MEASURE(command([sys.executable, str(minimal), "hello"], repo, env), repeat)
    version = MEASURE(modelctl(repo, env, "--version"), repeat)
    return [
        Row("(start-up) python + a minimal typer app", "-", typer_app),
        Row("(start-up) modelctl --version", "-", version, typer_app),
    ]


def bench_promote(
    repo: Path, env: dict[str, str], history: History, repeat: int, size: str, key: Path | None
) -> list[Row]:
    route = f"r{history.routes // 3 + 2}"
    floor = Floor(repo, env, route, key)
    floor.run()
    floor_time = MEASURE(floor.run, repeat)
    promoter = Promoter(repo, env, route)
    promoter.prepare()
    promoter.promote()  # the first promote fills the route's event cache, as any earlier use would
    value = MEASURE(promoter.promote, repeat, before=promoter.prepare)
    what = "signed (ssh)" if key else "unsigned"
    return [Row(f"promote {route} --to staging, {what}", size, value, floor_time, "2x")]


def plain_log(repo: Path, env: dict[str, str], route: str) -> Callable[[], None]:
    fmt = "--format=%H%x00%P%x00%ct%x00%an%x00%ae%x00%cn%x00%ce%x00%(trailers:only,unfold)"
    argv = ["git", "log", "--first-parent", fmt, "main", "--", f"routes/{route}.yaml"]
    return command(argv, repo, env)


def bench_reads(
    repo: Path, env: dict[str, str], history: History, repeat: int, size: str
) -> list[Row]:
    route = route_in_middle(history)
    rows = []
    floor = MEASURE(plain_log(repo, env, route), repeat)
    hist = modelctl(repo, env, "history", route)
    cold = MEASURE(hist, repeat, before=drop_cache(repo))
    hist()
    warm = MEASURE(hist, repeat)
    rows.append(Row(f"history {route} (warm)", size, warm, floor, "1.5x"))
    rows.append(Row(f"history {route} (cold: no .git/modelctl)", size, cold, floor))
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(history.middle()))
    res = modelctl(repo, env, "resolve", route, "--stage", "dev", "--at", at)
    res()
    rows.append(
        Row(f"resolve {route} --stage dev --at T (warm)", size, MEASURE(res, repeat), floor, "1.5x")
    )
    return rows


def bench_status(repo: Path, env: dict[str, str], history: History, repeat: int, size: str) -> Row:
    route = route_in_middle(history)
    floor = MEASURE(command(["git", "show", f"main:routes/{route}.yaml"], repo, env), repeat)
    st = modelctl(repo, env, "status", route)
    st()
    return Row(
        f"status {route} (warm; floor: git show of the route file)",
        size,
        MEASURE(st, repeat),
        floor,
    )


VERIFY_FLOOR = r"""
# The git commands an audit of the whole history must run: the history with every commit's
# changes, each lifecycle commit's signature status, and every lifecycle tag with its object
# (and, for the signed ones, their signatures: many to a verify-tag process).
git log --first-parent --no-renames --raw --no-abbrev --diff-merges=first-parent \
  --format='%H%x00%P%x00%ct%x00%(trailers:only,unfold)' main >/dev/null
git -c gpg.ssh.allowedSignersFile="$SIGNERS" log --first-parent --format='%H %G?' main >/dev/null
git for-each-ref refs/tags/modelctl/ \
  --format='%(refname) %(objecttype) %(tag) %(*objectname) %(if)%(contents:signature)%(then)S%(else)-%(end)' |
  awk '$5 == "S" {print $1}' >"$FLOOR_DIR/signed-tags"
if [ -s "$FLOOR_DIR/signed-tags" ]; then
  xargs git -c gpg.ssh.allowedSignersFile="$SIGNERS" verify-tag --format='%(refname)' \
    <"$FLOOR_DIR/signed-tags" >/dev/null
fi
"""

SINCE_FLOOR = r"""
# --since: the last commits with their changes and signatures, and the list of every tag.
git log --first-parent --no-renames --raw --no-abbrev --format='%H%x00%P%x00%ct%x00%G?' \
  main~20..main >/dev/null
git for-each-ref --format='%(refname) %(objectname)' refs/tags/modelctl/ >/dev/null
"""


def verify_floor(repo: Path, env: dict[str, str], body: str) -> Callable[[], None]:
    folder = Path(tempfile.mkdtemp(prefix="vfloor-", dir=repo.parent))
    signers = folder / "allowed_signers"
    signers.write_bytes(git(repo, "show", "main:.modelctl/allowed_signers", env=env).encode())
    path = script(folder, "floor.sh", body)
    return command(
        ["bash", str(path)], repo, {**env, "SIGNERS": str(signers), "FLOOR_DIR": str(folder)}
    )


def bench_verify(
    repo: Path, env: dict[str, str], history: History, repeat: int, size: str, label: str
) -> list[Row]:
    runs = max(1, min(3, repeat))
    floor = MEASURE(verify_floor(repo, env, VERIFY_FLOOR), runs)
    seconds = MEASURE(modelctl(repo, env, "verify"), runs)
    rate = history.events / seconds
    if MEASURE is cpu_time:  # a rate per CPU-second: the target is about wall time
        return [Row(f"verify, {label}", size, seconds, floor, "", rate, "commits/CPU-s")]
    return [Row(f"verify, {label}", size, seconds, floor, "100/s", rate)]


def bench_since(repo: Path, env: dict[str, str], repeat: int, size: str) -> list[Row]:
    floor = MEASURE(verify_floor(repo, env, SINCE_FLOOR), repeat)
    since = modelctl(repo, env, "verify", "--since", "HEAD~20")
    since()  # the full verify before it left its checkpoint; this one is like any later one
    return [Row("verify --since HEAD~20", size, MEASURE(since, repeat), floor, "1s")]


def report(rows: list[Row]) -> list[Row]:
    """Print rows as they are measured (stderr), so a long run shows progress."""
    for row in rows:
        print(" | ".join(row.cells()), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    global MEASURE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--signed-events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100 routes, 5,000 events")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall",
        help="wall time, or the CPU time of the processes (steadier on a busy machine)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the generated repositories")
    args = parser.parse_args()
    if args.quick:
        args.routes, args.events, args.signed_events = 100, 5000, 200
    MEASURE = cpu_time if args.clock == "cpu" else median_time
    tmp = Path(tempfile.mkdtemp(prefix="mctl-bench-life-"))
    env = {**os.environ, **bench_env(tmp / "home"), "NO_COLOR": "1", "TZ": "UTC"}
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "SSH_AUTH_SOCK"):
        env.pop(key, None)
    rows: list[Row] = []
    try:
        small_routes, small_events = max(10, args.routes // 10), max(100, args.events // 10)
        started = time.perf_counter()
        small = make_history(tmp / "small", small_routes, small_events, env)
        big = make_history(tmp / "big", args.routes, args.events, env)
        built = time.perf_counter() - started
        print(f"generated {args.events} + {small_events} events in {built:.1f} s", file=sys.stderr)
        check(tmp / "small", env, small)
        big_size = f"{args.routes} routes / {args.events:,} events"
        small_size = f"{small_routes} routes / {small_events:,} events"

        rows += report(bench_startup(tmp / "small", env, args.repeat))
        rows += report(bench_promote(tmp / "big", env, big, args.repeat, big_size, None))
        rows += report(bench_reads(tmp / "big", env, big, args.repeat, big_size))
        rows += report([bench_status(tmp / "small", env, small, args.repeat, small_size)])
        rows += report([bench_status(tmp / "big", env, big, args.repeat, big_size)])
        label = "unsigned (signing: optional)"
        rows += report(bench_verify(tmp / "big", env, big, args.repeat, big_size, label))
        rows += report(bench_since(tmp / "big", env, args.repeat, big_size))

        private, line = make_key(tmp / "keys")
        signed_env = {
            **env,
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "gpg.format",
            "GIT_CONFIG_VALUE_0": "ssh",
            "GIT_CONFIG_KEY_1": "user.signingkey",
            "GIT_CONFIG_VALUE_1": str(private.with_suffix(".pub")),
        }
        signed_routes = max(1, min(args.routes, args.signed_events // 10))
        signed = make_history(
            tmp / "signed", signed_routes, args.signed_events, env, "required", line
        )
        sign_all(tmp / "signed", signed_env)
        check(tmp / "signed", signed_env, signed)
        signed_size = f"{signed_routes} routes / {args.signed_events:,} events"
        label = "every commit and tag signed (ssh)"
        rows += report(
            bench_verify(tmp / "signed", signed_env, signed, args.repeat, signed_size, label)
        )
        # Signed promotes on the big registry last: verify there would (rightly) fail on
        # signatures by a key that is not in its allowed-signers file.
        rows += report(bench_promote(tmp / "big", signed_env, big, args.repeat, big_size, private))
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    clock = "CPU time (user + sys, all processes)" if args.clock == "cpu" else "wall time"
    print(f"{clock}, median of {args.repeat} runs ({min(3, args.repeat)} for full verify)\n")
    print(
        table(
            [r.cells() for r in rows],
            ("what", "size", "median", "floor", "ratio", "target", "met?"),
        )
    )


if __name__ == "__main__":
    main()
