"""`modelctl import gto`: a GTO (Git Tag Ops) registry as a modelctl registry, history included.

Each GTO artifact becomes a model (one manifest per version) and a route of the same name; GTO's
stages (the `.gto` config's order, then the others its tags use, well-known names such as
dev, staging and prod in their usual order) become the registry's stages, the path. GTO's
events are replayed in time order through GTO's own rules (`modelctl.integrations.importers.gto_tags`), and
each time what a stage shows changes, one lifecycle commit (action `import`) with its
`modelctl/<route>/<stage>/<seq>` tag records it, so `modelctl status` ends where `gto show` is
and `modelctl history` tells how it got there. Tags GTO would not read are listed, not imported.

Dates: the import's commits are committed now, by whoever runs it, and each tag's original
tagger and date become the commit's *author* and its `Modelctl-Original-Author` and
`Modelctl-Original-Date` trailers. Committing with the original dates would write committer
dates older than the branch tip, which `modelctl verify` rightly reports as backdating: an
import is a new record of old events, and says so.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl import progress
from modelctl.errors import ConflictError, GitError, ModelctlError, UsageError
from modelctl.gitstore import GitStore, TagSpec
from modelctl.integrations.importers import Planned, write_history
from modelctl.integrations.importers.gto_tags import (
    EVENT_NAMES,
    INDEX_FILE,
    Event,
    GtoArtifact,
    GtoVersion,
    SkippedTag,
    commit_events,
    gto_state,
    read_config_stages,
    read_indexes,
    read_tags,
)
from modelctl.lifecycle import gates
from modelctl.registry import commits, manifests, refs, secretscan, yamlio
from modelctl.registry.snapshot import Location

DEFAULT_STAGES = ("dev", "staging", "production")


def modelctl_name(text: str) -> str | None:
    """A GTO artifact or stage name as a modelctl name (lowercase, '/' and ':' as '-')."""
    token = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    token = re.sub(r"\.{2,}", ".", token)[: refs.MAX_NAME_LENGTH].rstrip(".")
    return token if token and refs.name_problem(token) is None else None


def modelctl_version(text: str) -> str | None:
    """A GTO version (`v1.2.0`, `v2.0.0-RC.1+build.5`) as a modelctl version."""
    token = text.lower().replace("+", "_")
    return token if refs.name_problem(token) is None else None


# --- names ---------------------------------------------------------------------------------------


@dataclass
class Names:
    """GTO names -> modelctl names. Tags whose names cannot map are listed, not imported."""

    routes: dict[str, str] = field(default_factory=dict)  # artifact -> route and model name
    stages: dict[str, str] = field(default_factory=dict)
    versions: dict[tuple[str, str], str] = field(default_factory=dict)  # (artifact, version)
    order: list[str] = field(default_factory=list)  # modelctl stages, in order

    def version(self, artifact: str, version: str | None) -> str | None:
        if version is None:
            return None
        return self.versions.get((artifact, version), version)  # a commit id is its own name


_USUAL_PATH = (
    "dev", "development", "test", "testing", "qa", "uat", "staging", "stage", "preprod",
    "canary", "prod", "production",
)  # fmt: skip


def _path_position(stage: str) -> tuple[int, str]:
    return (_USUAL_PATH.index(stage) if stage in _USUAL_PATH else len(_USUAL_PATH), stage)


def _exact_first(name: str) -> tuple[bool, str]:
    return (modelctl_name(name) != name, name)


def map_names(
    events: list[Event], config_stages: list[str], skipped: list[SkippedTag]
) -> tuple[Names, list[Event]]:
    """Give every GTO name a modelctl name; (the names, the events that can be imported)."""
    names = Names()
    owner: dict[str, str] = {}
    # Names that are modelctl names already keep them; the others take what is left.
    for artifact in sorted({e.artifact for e in events}, key=_exact_first):
        token = modelctl_name(artifact)
        if token is not None and token not in owner:
            owner[token] = artifact
            names.routes[artifact] = token
    stage_owner: dict[str, str] = {}
    for stage in [*config_stages, *sorted({e.stage for e in events if e.stage}, key=_exact_first)]:
        token = modelctl_name(stage)
        if stage not in names.stages and token is not None and token not in stage_owner:
            stage_owner[token] = stage
            names.stages[stage] = token
    # The promotion path: the `.gto` config's order, then the usual order of well-known names.
    configured = [names.stages[s] for s in config_stages if s in names.stages]
    others = {t for t in names.stages.values() if t not in configured}
    names.order = list(dict.fromkeys(configured)) + sorted(others, key=_path_position)
    version_owner: dict[tuple[str, str], str] = {}
    for event in events:
        if event.version is None or (event.artifact, event.version) in names.versions:
            continue
        token = modelctl_version(event.version)
        if token is not None and (event.artifact, token) not in version_owner:
            version_owner[(event.artifact, token)] = event.version
            names.versions[(event.artifact, event.version)] = token
    kept = []
    for event in events:
        if event.artifact not in names.routes:
            token = modelctl_name(event.artifact)
            reason = (
                f"artifact name {event.artifact!r} has no modelctl form"
                if token is None
                else f"artifacts {owner[token]!r} and {event.artifact!r} would both be {token!r}"
            )
        elif event.stage is not None and event.stage not in names.stages:
            reason = f"stage {event.stage!r} has no modelctl form of its own"
        elif event.version is not None and (event.artifact, event.version) not in names.versions:
            reason = f"version {event.version!r} has no modelctl form of its own"
        else:
            kept.append(event)
            continue
        skipped.append(SkippedTag(event.tag, reason))
    return names, kept


# --- writing the modelctl registry -----------------------------------------------------------


@dataclass
class ImportedArtifact:
    artifact: str  # the GTO name
    route: str  # the modelctl route and model name
    versions: list[str]
    events: int  # lifecycle events written for it
    stages: dict[str, str | None]  # stage -> version shown at the end, as `gto show` has it
    deprecated: bool


@dataclass
class ImportResult:
    repo: str
    registry: str  # the registry folder inside the repository ("." for its top)
    branch: str
    dry_run: bool
    commit: str | None  # the new branch tip (None for a dry run)
    base: str | None  # the commit the import was written on
    stages: list[str]
    artifacts: list[ImportedArtifact]
    manifests: int
    events: int  # lifecycle commits: one per change of what a stage shows
    commits: int  # every commit written
    tags_read: int  # GTO tags imported
    skipped: list[SkippedTag]  # tags not imported, and why
    other_tags: int  # tags that are not GTO's, left alone
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _text(value: str, limit: int = 4000) -> str:
    """Free text from a tag, safe for a manifest: no control characters, no credentials."""
    clean = yamlio.FORBIDDEN.sub(" ", value)[:limit].strip()
    return "" if secretscan.classify(clean) else clean


def _render(model: Any, path: str) -> bytes:
    from modelctl.registry.authoring import render_manifest

    return render_manifest(model, path)


def _model_file(
    route: str, version: str, gto: GtoVersion, first: Event, labels: dict[str, str],
    index: dict[str, Any] | None,
) -> tuple[str, bytes]:  # fmt: skip
    entry = (index or {}).get(gto.artifact) or {}
    path = entry.get("path")
    provider_model = path if isinstance(path, str) and re.fullmatch(r"\S{1,200}", path) else None
    labels = {
        "gto.artifact": gto.artifact,
        "gto.commit": gto.commit,
        "gto.tag": first.tag,
        **labels,
    }
    if isinstance(entry.get("type"), str) and _text(entry["type"], 200):
        labels["gto.type"] = _text(entry["type"], 200)
    email = first.who.rpartition("<")[2].rstrip(">")
    fields: dict[str, Any] = {
        "name": route,
        "version": version,
        "provider": "self-hosted",
        "provider_model": provider_model or gto.artifact,
        "description": _text(first.message) or None,
        "owner": _text(email, 200) or None,
        "created": first.date,
        "labels": labels,
    }
    model = manifests.build("Model", **{k: v for k, v in fields.items() if v is not None})
    where = str(refs.manifest_path(refs.Kind.MODEL, route, version))
    return where, _render(model, where)


@functools.cache
def _plain(token: str) -> str:
    """A validated name as YAML: plain unless a YAML reader would take it for another type.

    The same decision PyYAML's dumper makes (its implicit resolver), so the text matches.
    """
    import yaml

    resolver = yaml.resolver.Resolver()
    resolved = resolver.resolve(yaml.ScalarNode, token, (True, False))  # type: ignore[no-untyped-call]
    return token if resolved == "tag:yaml.org,2002:str" else f"'{token}'"


@dataclass
class _Routes:
    """Route files, rendered fast: one per event, so the YAML dumper runs once per route only.

    The text is what `render_manifest` writes for the same route (names are validated tokens,
    so the stages block needs no escaping beyond `_plain`).
    """

    order: list[str]
    heads: dict[str, str] = field(default_factory=dict)

    def text(self, route: str, artifact: str, stages: dict[str, str | None]) -> bytes:
        head = self.heads.get(route)
        if head is None:
            model = manifests.Route.model_validate(
                {
                    "apiVersion": manifests.API_VERSION,
                    "kind": "Route",
                    "name": route,
                    "description": _text(f"imported from GTO artifact {artifact}"),
                }
            )
            head = self.heads[route] = _render(model, str(refs.route_path(route))).decode()
        lines = [
            f"  {_plain(s)}:\n    targets:\n    - model: {route}@{stages[s]}\n      weight: 100\n"
            for s in self.order
            if stages.get(s)
        ]
        return (head + ("stages:\n" + "".join(lines) if lines else "")).encode()


def _registry_files(name: str, stages: list[str]) -> dict[str, bytes | None]:
    """What `modelctl init` writes, with GTO's stages: no path between them, no gates."""
    from modelctl.registry import scaffold, schemas

    settings = manifests.build(
        "Registry",
        name=name,
        description="imported from a GTO registry by modelctl import gto",
        stages=[{"name": s} for s in stages],
        allow_stage_skip=True,  # GTO assigns any stage directly
        signing="optional",
    )
    files: dict[str, bytes | None] = {
        refs.SETTINGS_FILE: _render(settings, refs.SETTINGS_FILE),
        ".modelctl/allowed_signers": scaffold.ALLOWED_SIGNERS_TEMPLATE.encode(),
    }
    for filename, schema in schemas.generate().items():
        files[f".modelctl/schemas/{filename}"] = schemas.dumps(schema).encode()
    for folder in scaffold.FOLDERS:
        files[f"{folder}/.gitkeep"] = b""
    return files


def _summary(route: str, version: str | None) -> str:
    return gates.summary({"targets": [{"model": f"{route}@{version}"}]} if version else None)


@dataclass
class _Stream:
    """The lifecycle commits of a replay, and what each route's stages show as it goes."""

    names: Names
    branch: str
    routes: _Routes
    history: list[Planned] = field(default_factory=list)
    shown: dict[str, dict[str, str | None]] = field(default_factory=dict)  # route -> stage -> v
    seqs: dict[tuple[str, str], int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # route -> events

    def change(self, event: Event, gto_stage: str, gto_version: str | None) -> None:
        route = self.names.routes[event.artifact]
        stage = self.names.stages[gto_stage]
        version = self.names.version(event.artifact, gto_version)
        stages = self.shown.setdefault(route, {})
        previous, stages[stage] = stages.get(stage), version
        seq = self.seqs[(route, stage)] = self.seqs.get((route, stage), 0) + 1
        self.counts[route] = self.counts.get(route, 0) + 1
        title = f"modelctl: import {route} {stage} from GTO {event.tag}"
        what = f"GTO {EVENT_NAMES[event.kind]} by {event.who} at {event.date}"
        if event.message:
            what += f": {_text(event.message, 500)}"
        changed = f"{_summary(route, previous)}\n  -> {_summary(route, version)}"
        trailer_text = commits.trailers(
            action="import", route=route, stage=stage, seq=seq, imported_from=event.tag,
            gto_event=EVENT_NAMES[event.kind], original_author=event.who,
            original_date=event.date, ref=self.branch,
        )  # fmt: skip
        self.history.append(
            Planned(
                {str(refs.route_path(route)): self.routes.text(route, event.artifact, stages)},
                f"{title}\n\n{changed}\n\n{what}\n\n{trailer_text}\n",
                author=f"{event.who} {event.raw_date}",
                tag=TagSpec(
                    str(refs.lifecycle_tag(route, stage, seq)), f"{title}\n\n{trailer_text}\n"
                ),
            )
        )


def replay(
    events: list[Event], names: Names, branch: str, notes: list[str]
) -> tuple[dict[str, GtoArtifact], list[GtoVersion | None], _Stream]:
    """Replay `events` (sorted by time) through GTO's rules: a commit per change of a stage."""
    artifacts, targets = gto_state(events, notes)
    stream = _Stream(names, branch, _Routes(names.order))
    position = {gto: names.order.index(token) for gto, token in names.stages.items()}
    with progress.bar("replaying GTO history", total=len(events)) as advance:
        for event, version in zip(events, targets, strict=True):
            art = artifacts[event.artifact]
            before = art.view()
            art.apply(event, version)
            after = art.view()
            if before != after:
                for stage in sorted(set(before) | set(after), key=position.__getitem__):
                    if before.get(stage) != after.get(stage):
                        stream.change(event, stage, after.get(stage))
            advance(1)
    return artifacts, targets, stream


def _manifests(
    artifacts: dict[str, GtoArtifact],
    events: list[Event],
    targets: list[GtoVersion | None],
    indexes: dict[str, dict[str, Any]],
    stream: _Stream,
) -> tuple[dict[str, bytes | None], list[ImportedArtifact]]:
    """A manifest per GTO version (and per unregistered commit a stage was assigned), routes."""
    names = stream.names
    first: dict[int, tuple[GtoVersion, Event]] = {}  # one version object per version name
    seen: set[tuple[str, str]] = set()
    for event, version in zip(events, targets, strict=True):
        if version is None or (version.artifact, version.version) in seen:
            continue
        if version.named == (event.version is not None):
            seen.add((version.artifact, version.version))
            first[id(version)] = (version, event)
    files: dict[str, bytes | None] = {}
    by_artifact: dict[str, list[tuple[GtoVersion, Event]]] = {}
    for version, event in first.values():
        by_artifact.setdefault(version.artifact, []).append((version, event))
    imported = []
    with progress.bar("writing version manifests", total=len(first)) as advance:
        for gto_name, art in sorted(artifacts.items()):
            route = names.routes[gto_name]
            written = []
            for version, event in by_artifact.get(gto_name, []):
                name = names.version(gto_name, version.version)
                assert name is not None
                labels = {}
                if not art.active or (version.named and not version.active):
                    labels["gto.deprecated"] = "true"
                if version.named and version.direct and not version.active:
                    labels["gto.deregistered"] = "true"
                path, data = _model_file(
                    route, name, version, event, labels, indexes.get(version.commit)
                )
                files[path] = data
                written.append(name)
                advance(1)
            files[str(refs.route_path(route))] = stream.routes.text(route, gto_name, {})
            shown = stream.shown.get(route, {})
            imported.append(
                ImportedArtifact(
                    gto_name, route, written, stream.counts.get(route, 0),
                    {s: shown.get(s) for s in names.order}, not art.active,
                )
            )  # fmt: skip
    return files, imported


def _check_free(loc: Location, base: str | None) -> None:
    """Refuse before writing anything when the registry's folder or tags are taken."""
    store = loc.store
    where = loc.prefix.rstrip("/") or "the repository's top folder"
    if store.has_refs(f"refs/tags/{refs.TAG_PREFIX}/"):
        raise ConflictError(
            f"this repository already has modelctl lifecycle tags (refs/tags/{refs.TAG_PREFIX}/); "
            "nothing was written",
            hint="import into a fresh clone of the GTO repository",
        )
    tree = store.tree_of(base, loc.prefix.rstrip("/")) if base else None
    if tree is None:
        return
    taken = [
        e.path for e in store.ls_tree(tree)
        if refs.classify_path(e.path) is not None or e.path.startswith(".modelctl/")
    ]  # fmt: skip
    if refs.SETTINGS_FILE in taken:
        raise ConflictError(
            f"{where} already holds a modelctl registry; nothing was written",
            hint="the import creates a registry: import into a folder of its own with --into DIR",
        )
    if taken:
        raise ConflictError(
            f"{where} already has files where the registry's would go ({', '.join(taken[:3])}"
            f"{', ...' if len(taken) > 3 else ''}); nothing was written",
            hint="import into a folder of its own: --into DIR",
        )


def _location(repo: Path, into: str | None) -> Location:
    store = GitStore.discover(repo)
    if store is None:
        raise GitError(f"{repo} is not inside a git repository", hint="pass --repo PATH")
    prefix = ""
    if into:
        folder = Path(into)
        if folder.is_absolute() or ".." in folder.parts or not str(folder).strip("./"):
            raise UsageError(f"--into {into!r} must be a folder inside the repository, relative")
        prefix = folder.as_posix().strip("/") + "/"
    return Location(store, store.toplevel / prefix if prefix else store.toplevel, prefix)


def _warm_caches(loc: Location, tip: str) -> list[str]:
    """Read the new registry as `status` does, so the first command after the import is warm.

    The import is complete before this runs; a failure here is only reported.
    """
    from modelctl.lifecycle import history
    from modelctl.registry.snapshot import snapshot_at

    try:
        snapshot_at(loc, tip)
        history.all_route_records(loc, tip)
    except ModelctlError as exc:
        return [f"the import is complete, but reading it back failed: {exc.message}"]
    return []


@dataclass
class _Read:
    """Everything read from the repository, in time order, with its modelctl names."""

    events: list[Event]
    names: Names
    indexes: dict[str, dict[str, Any]]  # revision -> artifacts.yaml there
    skipped: list[SkippedTag]
    others: int
    tags: int
    notes: list[str]


def _read(store: GitStore, head: str) -> _Read:
    with progress.bar("reading GTO tags"):
        tag_events, skipped, others = read_tags(store)
        config_stages, notes = read_config_stages(store.toplevel)
        names, tag_events = map_names(tag_events, config_stages, skipped)
    if not tag_events:
        listed = "; ".join(f"{s.tag}: {s.reason}" for s in skipped[:5])
        raise UsageError(
            f"no GTO tags to import in {store.toplevel}" + (f" ({listed})" if listed else ""),
            hint="GTO tags look like NAME@v1.2.3 and NAME#STAGE#N (annotated)",
        )
    if not names.order:
        names.order = list(DEFAULT_STAGES)
    commits_of: dict[str, set[str]] = {}
    for event in tag_events:
        if event.kind != "deprecate":
            commits_of.setdefault(event.artifact, set()).add(event.commit)
    indexes = read_indexes(store, [head, *sorted({c for s in commits_of.values() for c in s})])
    for listed in indexes.get(head, {}):
        if listed in names.routes:
            commits_of.setdefault(listed, set()).add(head)
        else:
            notes.append(
                f"{listed}: listed in {INDEX_FILE} at HEAD, but no GTO tag of it is imported"
            )
    events = sorted([*tag_events, *commit_events(store, commits_of)], key=lambda e: e.key)
    return _Read(events, names, indexes, skipped, others, len(tag_events), notes)


def import_gto(repo: Path, *, into: str | None = None, dry_run: bool = False) -> ImportResult:
    """Import the GTO registry of the repository at `repo` as a modelctl registry, all or nothing."""
    from modelctl.registry.scaffold import default_name

    started = time.perf_counter()
    loc = _location(repo, into)
    store = loc.store
    branch = commits.registry_branch(loc)
    head = store.ref_oid(branch)
    if head is None:
        raise UsageError(f"{branch} has no commits, so it has no GTO tags to import")
    read = _read(store, head)
    names = read.names
    artifacts, targets, stream = replay(read.events, names, branch, read.notes)
    files, imported = _manifests(artifacts, read.events, targets, read.indexes, stream)
    count = sum(len(a.versions) for a in imported)
    setup = Planned(
        {**_registry_files(default_name(loc.root), names.order), **files},
        f"modelctl: import GTO registry ({len(imported)} artifact(s), {count} version(s))\n\n"
        "Written by `modelctl import gto` from this repository's GTO tags: the registry\n"
        "settings with GTO's stages, a model manifest per GTO version and a route per artifact.\n"
        "The commits after this one replay what each stage showed, event by event.\n\n"
        + commits.trailers(action="init", imported_from="gto")
        + "\n",
    )
    history = [setup, *stream.history]

    def plan(base: str | None) -> list[Planned]:
        _check_free(loc, base)
        return history

    result = ImportResult(
        str(store.toplevel), loc.prefix.rstrip("/") or ".", branch.removeprefix("refs/heads/"),
        dry_run, None, head, names.order, imported, count, len(stream.history), len(history),
        read.tags, sorted(read.skipped, key=lambda s: s.tag), read.others, read.notes,
    )  # fmt: skip
    if dry_run:
        plan(head)
    else:
        with progress.bar(f"writing {len(history)} commits and their tags"):
            written = write_history(loc, plan)
        result.commit, result.base, result.warnings = written.commit, written.base, written.warnings
        with progress.bar("writing git's commit-graph, so that history reads stay fast"):
            failed = store.write_commit_graph()
        if failed:
            result.notes.append(
                f"git could not write a commit-graph ({failed.splitlines()[-1]}); history "
                "reads of long histories are faster with one: git commit-graph write "
                "--reachable --changed-paths"
            )
        with progress.bar("reading the imported registry once, to warm its caches"):
            result.warnings += _warm_caches(loc, written.commit)
    result.seconds = round(time.perf_counter() - started, 3)
    return result
