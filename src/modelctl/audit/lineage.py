"""Lineage: what a version is made of (upstream) and where it went (downstream).

One graph is built from the manifests at the branch tip and the lifecycle history of every
route. Edges point from upstream to downstream, the way data flows: dataset -> model -> eval ->
stage. Upstream follows what holds now (a stage's current binding and the eval that gated it);
downstream follows everything that ever held, so a version's downstream lists every stage that
served it, with the periods and the lifecycle events that started and ended them.

Reading costs one snapshot (cached by tree id) and one `git log` over `routes/` (cached per
route); the walk itself is a breadth-first search bounded by `depth`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from modelctl.errors import UsageError
from modelctl.lifecycle import gates, history
from modelctl.registry import refs, suggest
from modelctl.registry.snapshot import Entry, Location, Snapshot

FORMATS = ("tree", "json", "mermaid", "dot")
DIRECTIONS = ("both", "up", "down")

# relation -> (how the downstream node relates to the upstream one, read from either end)
RELATIONS: dict[str, tuple[str, str]] = {
    "trained_on": ("trained on", "trained on this"),
    "base": ("based on", "based on this"),
    "code": ("built from", "built from this"),
    "derived_from": ("derived from", "derived from this"),
    "source": ("collected from", "collected from this"),
    "runs_on": ("runs on", "runs on this"),
    "rubric": ("scores with rubric", "uses this as rubric"),
    "evaluated_on": ("evaluated on", "evaluated on this"),
    "candidate": ("tested candidate", "tested this as candidate"),
    "baseline": ("tested baseline", "tested this as baseline"),
    "judge": ("judged by", "judged with this"),
    "serves": ("serves", "serves this"),
    "fallback": ("falls back to", "falls back to this"),
    "served": ("served", "served this"),
    "gated": ("gated by", "gated by this"),
}
_FIELD_RELATION = (  # (category, field without indices) prefix -> relation
    ("models", "lineage.trained_on", "trained_on"),
    ("models", "lineage.base", "base"),
    ("datasets", "source.derived_from", "derived_from"),
    ("judges", "model", "runs_on"),
    ("judges", "rubric", "rubric"),
    ("evals", "dataset", "evaluated_on"),
    ("evals", "candidate", "candidate"),
    ("evals", "baseline", "baseline"),
    ("evals", "judges", "judge"),
)
_KIND_OF_CATEGORY = {k.value: k.singular for k in refs.Kind} | {"evals": "eval"}


@dataclass
class EventRef:
    """A lifecycle event, as lineage shows it."""

    route: str
    stage: str
    action: str
    seq: int | None
    tag: str | None
    commit: str
    time: str
    author: str
    eval_id: str | None = None
    canary: int | None = None
    reason: str | None = None


@dataclass
class Period:
    """A stretch of history during which a stage served a version in one role."""

    role: str  # target or fallback
    weight: int | None  # a target's weight at the end of the period (or now)
    start: EventRef
    end: EventRef | None = None  # None: still served


@dataclass
class Node:
    id: str  # models/x@1, evals/route/run, routes/route/stage, code:repo@commit, source:uri
    kind: str  # model, prompt, judge, dataset, eval, stage, code, source
    label: str
    detail: dict[str, Any] = field(default_factory=dict)
    missing: bool = False  # referenced, but not in the registry
    side: str = "root"  # root, up or down: which walk reached it
    distance: int = 0


@dataclass
class Edge:
    source: str  # the upstream node
    target: str  # the downstream node
    relation: str  # a key of RELATIONS
    current: bool = True  # False for what a stage served or was gated by in the past
    periods: list[Period] = field(default_factory=list)  # serves, fallback, served
    events: list[EventRef] = field(default_factory=list)  # gated: the promotions it gated
    side: str = ""  # up or down


@dataclass
class LineageResult:
    roots: list[str]
    direction: str
    depth: int | None
    source: str
    nodes: list[Node]
    edges: list[Edge]


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], Edge] = field(default_factory=dict)
    routes: dict[str, list[str]] = field(default_factory=dict)  # route -> its stage node ids

    def add_node(self, node: Node) -> Node:
        return self.nodes.setdefault(node.id, node)

    def add_edge(self, source: str, target: str, relation: str) -> Edge:
        key = (source, target, relation)
        if key not in self.edges:
            self.edges[key] = Edge(source, target, relation)
        return self.edges[key]

    def index(self) -> tuple[dict[str, list[Edge]], dict[str, list[Edge]]]:
        """(edges by their downstream node, edges by their upstream node)."""
        ups: dict[str, list[Edge]] = {}
        downs: dict[str, list[Edge]] = {}
        for edge in self.edges.values():
            ups.setdefault(edge.target, []).append(edge)
            downs.setdefault(edge.source, []).append(edge)
        return ups, downs


# --- node ids ----------------------------------------------------------------------------------


def artifact_id(kind: refs.Kind, text: str) -> str:
    return refs.format_ref(refs.parse_ref(text, kind))


def stage_id(route: str, stage: str) -> str:
    return f"routes/{route}/{stage}"


def eval_id(route: str, run: str) -> str:
    return f"evals/{route}/{run}"


# --- building the graph ------------------------------------------------------------------------


def _entry_node(entry: Entry) -> Node | None:
    place = refs.classify_path(entry.path)
    if place is None or place.version is None or entry.category not in _KIND_OF_CATEGORY:
        return None
    kind = _KIND_OF_CATEGORY[entry.category]
    if entry.category == "evals":
        node_id = eval_id(place.name, place.version)
    else:
        node_id = refs.format_ref(refs.Ref(place.name, place.version, refs.Kind(entry.category)))
    return Node(node_id, kind, node_id, _detail(entry))


def _detail(entry: Entry) -> dict[str, Any]:
    d = entry.data
    if d is None:
        return {"invalid": f"{len(entry.problems)} problem(s); run modelctl validate"}
    picks = {
        "models": ("provider", "provider_model", "created"),
        "prompts": ("variables", "created"),
        "judges": ("evaluator", "threshold", "created"),
        "datasets": ("uri", "rows", "snapshot_at", "created"),
        "evals": ("verdict", "stage", "created"),
    }[entry.category]
    detail = {k: d[k] for k in picks if d.get(k) not in (None, [], "")}
    if entry.category == "models" and d.get("artifact"):
        detail["artifact"] = d["artifact"]["uri"]
    if entry.category == "datasets":
        detail["sha256"] = d["sha256"]
    if entry.category == "evals":
        detail["dataset"] = d["dataset"]["ref"]
    return detail


def _relation(category: str, field_name: str) -> str | None:
    plain = re.sub(r"\[\d+\]", "", field_name)
    for cat, prefix, relation in _FIELD_RELATION:
        if cat == category and plain.startswith(prefix):
            return relation
    return None


def _ensure_artifact(graph: Graph, kind: refs.Kind, text: str) -> str:
    node_id = artifact_id(kind, text)
    if node_id not in graph.nodes:
        graph.add_node(Node(node_id, kind.singular, node_id, missing=True))
    return node_id


def _add_manifests(graph: Graph, snapshot: Snapshot) -> None:
    from modelctl.registry.policy import references

    for entry in snapshot.artifacts():
        node = _entry_node(entry)
        if node is not None:
            graph.nodes[node.id] = node  # a real entry replaces a "missing" placeholder
    for entry in snapshot.artifacts():
        node = _entry_node(entry)
        if node is None or entry.data is None:
            continue
        for field_name, kind, text in references(entry):
            relation = _relation(entry.category, field_name)
            if relation is not None:
                graph.add_edge(_ensure_artifact(graph, kind, text), node.id, relation)
        code = (entry.data.get("lineage") or {}).get("code") if entry.category == "models" else None
        if code:
            code_id = f"code:{code['repo']}@{code['commit']}"
            label = f"{code['repo']}@{code['commit'][:12]}"
            detail = {k: code[k] for k in ("repo", "commit", "path") if code.get(k)}
            graph.add_node(Node(code_id, "code", label, detail))
            graph.add_edge(code_id, node.id, "code")
        uri = (entry.data.get("source") or {}).get("uri") if entry.category == "datasets" else None
        if uri:
            graph.add_node(Node(f"source:{uri}", "source", uri))
            graph.add_edge(f"source:{uri}", node.id, "source")


def _event_ref(event: history.Event) -> EventRef:
    return EventRef(
        route=event.route,
        stage=event.stage,
        action=event.action,
        seq=event.seq,
        tag=event.tag,
        commit=event.commit,
        time=event.when,
        author=event.author,
        eval_id=event.eval_id,
        canary=event.canary,
        reason=event.reason,
    )


def _members(binding: dict[str, Any] | None) -> dict[tuple[str, str], int | None]:
    """(node id, role) -> weight for every model and prompt a binding serves."""
    out: dict[tuple[str, str], int | None] = {}
    if not binding:
        return out
    for target in binding.get("targets", []):
        weight = int(target.get("weight", 0))
        keys = [(artifact_id(refs.Kind.MODEL, target["model"]), "target")]
        if target.get("prompt"):
            keys.append((artifact_id(refs.Kind.PROMPT, target["prompt"]), "target"))
        for key in keys:  # a prompt (or model) shared by several targets gets their sum
            out[key] = (out.get(key) or 0) + weight
    for step in binding.get("fallback", []):
        out.setdefault((artifact_id(refs.Kind.MODEL, step["model"]), "fallback"), None)
        if step.get("prompt"):
            out.setdefault((artifact_id(refs.Kind.PROMPT, step["prompt"]), "fallback"), None)
    return out


def _gate_of(events: list[history.Event]) -> str | None:
    """The eval that gated what the stage serves now (through rollbacks to what they restore)."""
    gating = history.gating_event(events)
    return gating.eval_id if gating else None


def _add_stage(graph: Graph, route: str, stage: str, stage_events: list[history.Event]) -> None:
    node_id = stage_id(route, stage)
    last = stage_events[-1]
    detail: dict[str, Any] = {"route": route, "stage": stage, "serves": gates.summary(last.binding)}
    if last.tag:
        detail["since"] = last.tag
    graph.add_node(Node(node_id, "stage", f"{route} {stage}", detail))
    graph.routes.setdefault(route, []).append(node_id)
    open_periods: dict[tuple[str, str], Period] = {}
    periods: dict[str, list[Period]] = {}
    gated: dict[str, Edge] = {}
    for event in stage_events:
        ref = _event_ref(event)
        members = _members(event.binding)
        for key in [k for k in open_periods if k not in members]:
            open_periods.pop(key).end = ref
        for key, weight in members.items():
            if key in open_periods:
                open_periods[key].weight = weight
            else:
                open_periods[key] = Period(key[1], weight, ref)
                periods.setdefault(key[0], []).append(open_periods[key])
        if event.trailers.get("eval"):
            run = eval_id(route, event.trailers["eval"])
            if run not in graph.nodes:
                graph.add_node(Node(run, "eval", run, missing=True))
            gated[run] = graph.add_edge(run, node_id, "gated")
            gated[run].events.append(ref)
    for member, spans in periods.items():
        kind = refs.Kind.MODEL if member.startswith("models/") else refs.Kind.PROMPT
        _ensure_artifact(graph, kind, member.split("/", 1)[1])
        live = {p.role for p in spans if p.end is None}
        relation = "serves" if "target" in live else "fallback" if live else "served"
        edge = graph.add_edge(member, node_id, relation)
        edge.periods = spans
        edge.current = bool(live)
    gate = _gate_of(stage_events)
    for run, edge in gated.items():
        edge.current = gate is not None and run == eval_id(route, gate)


def _add_history(graph: Graph, records: dict[str, list[history.Record]], order: list[str]) -> None:
    for route in sorted(records):
        by_stage: dict[str, list[history.Event]] = {}
        for event in history.events(route, records[route]):
            by_stage.setdefault(event.stage, []).append(event)
        rank = {name: i for i, name in enumerate(order)}
        for stage in sorted(by_stage, key=lambda s: (rank.get(s, len(rank)), s)):
            _add_stage(graph, route, stage, by_stage[stage])


def build(snapshot: Snapshot, records: dict[str, list[history.Record]]) -> Graph:
    """The whole lineage graph of a registry: manifests plus lifecycle history."""
    graph = Graph()
    _add_manifests(graph, snapshot)
    order = [s["name"] for s in (snapshot.settings or {}).get("stages", [])]
    _add_history(graph, records, order)
    return graph


# --- the walk ------------------------------------------------------------------------------


def _roots(snapshot: Snapshot, graph: Graph, text: str, stage: str | None) -> list[str]:
    """Node ids to start from: a version, an eval run, a route (all its stages) or a stage."""
    from modelctl.registry import catalog

    if stage is not None:
        route = text.removeprefix("routes/").removeprefix("route/")
        if route not in graph.routes:
            snapshot.require_route(route)
        refs.check_name(stage, "stage name")
        served = [graph.nodes[s].detail["stage"] for s in graph.routes.get(route, [])]
        suggest.check_stage(snapshot.settings, stage, also=served)
        if stage_id(route, stage) not in graph.nodes:
            raise UsageError(
                f"route {route} has never served anything on stage {stage}",
                hint=f"stages with history: {', '.join(served)}"
                if served
                else "deploy it first: modelctl deploy ROUTE --stage STAGE ...",
            )
        return [stage_id(route, stage)]
    if text in graph.nodes:
        return [text]
    head = text.split("/", 1)[0].rstrip("s")
    if "@" in text or head == "eval":
        node = _entry_node(catalog.find(snapshot, text))
        assert node is not None
        return [node.id]
    route = text.removeprefix("routes/").removeprefix("route/")
    refs.check_name(route, "route name")
    if route in graph.routes:
        return list(graph.routes[route])
    if snapshot.route(route) is not None:
        raise UsageError(
            f"route {route} has no lifecycle history yet: nothing serves it",
            hint=f"deploy it first: modelctl deploy {route} --stage STAGE --model NAME@VERSION",
        )
    near = suggest.did_you_mean(suggest.nearest(route, snapshot.route_names()))
    raise UsageError(
        f"{text!r} is not a version, eval run or route in {snapshot.label}"
        + (f"; {near}" if near else ""),
        hint="give NAME@VERSION, KIND/NAME@VERSION, eval/ROUTE/RUN or a route name "
        "(see: modelctl list)",
    )


def walk(graph: Graph, roots: list[str], direction: str, depth: int | None) -> tuple[
    list[Node], list[Edge]
]:  # fmt: skip
    """Nodes and edges reachable from `roots`: upstream, downstream or both, within `depth`."""
    ups, downs = graph.index()
    nodes: dict[str, Node] = {}
    for root in roots:
        nodes[root] = _copy(graph.nodes[root], "root", 0)
    edges: dict[tuple[str, str, str, str], Edge] = {}
    sides = ("up", "down") if direction == "both" else (direction,)
    for side in sides:
        seen = set(roots)
        frontier = list(roots)
        distance = 0
        while frontier and (depth is None or distance < depth):
            distance += 1
            following: list[str] = []
            for node_id in frontier:
                for edge in (ups if side == "up" else downs).get(node_id, []):
                    if side == "up" and not edge.current:
                        continue  # upstream is what holds now
                    other = edge.source if side == "up" else edge.target
                    key = (edge.source, edge.target, edge.relation, side)
                    edges.setdefault(key, _copy_edge(edge, side))
                    if other not in seen:
                        seen.add(other)
                        following.append(other)
                        nodes.setdefault(other, _copy(graph.nodes[other], side, distance))
            frontier = following
    order = {"root": 0, "up": 1, "down": 2}
    ranked = sorted(nodes.values(), key=lambda n: (order[n.side], n.distance))
    return ranked, list(edges.values())


def _copy(node: Node, side: str, distance: int) -> Node:
    return Node(node.id, node.kind, node.label, dict(node.detail), node.missing, side, distance)


def _copy_edge(edge: Edge, side: str) -> Edge:
    return Edge(
        edge.source,
        edge.target,
        edge.relation,
        edge.current,
        list(edge.periods),
        list(edge.events),
        side,
    )


def tip(loc: Location) -> tuple[str, str]:
    """(label, commit) of the checked-out branch, or of a detached HEAD (a CI checkout)."""
    ref, commit = history.branch_tip(loc)
    return f"{ref.removeprefix('refs/heads/')} ({commit[:7]})", commit


def lineage(
    loc: Location,
    text: str,
    *,
    direction: str = "both",
    depth: int | None = None,
    stage: str | None = None,
) -> LineageResult:
    """The lineage of a version, eval run, route or route stage, as committed on the branch."""
    from modelctl.registry.snapshot import snapshot_at

    if direction not in DIRECTIONS:
        raise UsageError(f"unknown direction {direction!r}", hint="use --up, --down or neither")
    if depth is not None and depth < 0:
        raise UsageError(f"--depth {depth} must be 0 or more")
    label, commit = tip(loc)
    snapshot = snapshot_at(loc, commit)
    graph = build(snapshot, history.all_route_records(loc, commit))
    roots = _roots(snapshot, graph, text, stage)
    nodes, edges = walk(graph, roots, direction, depth)
    return LineageResult(roots, direction, depth, label, nodes, edges)
