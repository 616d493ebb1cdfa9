"""A snapshot of every manifest in a registry at one revision (or in the work tree), indexed.

Reading a revision costs `rev-parse`, `ls-tree` and one `cat-file --batch`, whatever the number
of files. Parsed snapshots are cached under the git directory keyed by the registry's tree id,
which is content-addressed, so a cache entry never needs invalidating (gitstore reads every
object as committed, never a replace object or graft, so a tree id names what was parsed);
entries of the previous snapshot are reused by blob id, so a commit that changes one file
re-parses one file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl.errors import GitError, Problem, RegistryNotFound, UsageError
from modelctl.gitstore import GitStore, blob_id
from modelctl.gitstore.atomic import write_cache
from modelctl.registry import refs
from modelctl.registry.suggest import UnknownName

CACHE_FORMAT = 4  # 4: read with replace objects and grafts ignored (older may hold them)
MAX_MANIFEST_BYTES = 1024 * 1024  # the strict loader's limit (modelctl.registry.yamlio.MAX_BYTES)
# Kind folders whose files are immutable once committed.
VERSIONED = ("models", "prompts", "judges", "datasets", "evals")


@dataclass
class Entry:
    """One registry file: where it is, what it holds, and what is wrong with it."""

    path: str  # registry-relative POSIX path
    category: str  # models, prompts, judges, datasets, evals, routes or settings
    oid: str | None  # git blob id (None for a work-tree file that git does not know yet)
    data: dict[str, Any] | None  # validated, canonical manifest data; None when invalid
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.data["name"]) if self.data else self.path

    @property
    def version(self) -> str | None:
        return str(self.data["version"]) if self.data and "version" in self.data else None


@dataclass
class Snapshot:
    """All registry files at one revision, plus the other files (dataset data, templates)."""

    label: str  # what was read, for messages: "HEAD (1a2b3c4)" or "work tree"
    commit: str | None
    tree: str | None
    entries: dict[str, Entry]
    others: dict[str, str]  # registry-relative path -> blob id ("" for work-tree-only files)

    @property
    def settings(self) -> dict[str, Any] | None:
        entry = self.entries.get(refs.SETTINGS_FILE)
        return entry.data if entry else None

    def artifacts(self, category: str | None = None) -> Iterator[Entry]:
        for path in sorted(self.entries):
            entry = self.entries[path]
            if category is None or entry.category == category:
                yield entry

    def get(self, ref: refs.Ref) -> Entry | None:
        return self.entries.get(str(ref.path))

    def require(self, text: str, kind: refs.Kind) -> dict[str, Any]:
        """The data of the valid manifest `text` (NAME@VERSION) names; UsageError when there
        is none (UnknownName, with the nearest versions, when there is no such file)."""
        entry = self.get(refs.parse_ref(text, kind))
        if entry is None:
            raise self.unknown_ref(text, kind)
        if entry.data is None:
            raise UsageError(
                f"{kind.singular} {text} is invalid at {self.label} ({entry.path})",
                hint="run modelctl validate and fix what it reports",
            )
        return entry.data

    def unknown_ref(
        self, text: str, kind: refs.Kind | None, flag: str | None = None
    ) -> UnknownName:
        """The error for a reference to a version this snapshot does not hold (of `kind`, or
        of any kind when the reference does not say)."""
        ref = refs.parse_ref(text, kind)
        kinds = [kind] if kind is not None else list(refs.Kind)
        versions: dict[str, list[str]] = {}
        for k in kinds:
            for entry in self.artifacts(k.value):
                place = refs.classify_path(entry.path)
                if place is not None and place.version is not None:
                    versions.setdefault(place.name, []).append(place.version)
        choices = [f"{name}@{v}" for name, vs in versions.items() for v in vs]
        what = kind.singular if kind is not None else "version"
        own = versions.get(ref.name)
        return UnknownName(
            what,
            f"{ref.name}@{ref.version}",
            choices,
            where=f"at {self.where}",
            flag=flag,
            listed_as=f"versions of {ref.name}" if own else kind.value if kind else "names",
            listed=own if own else (None if kind else sorted(versions)),
            hint=f"add it first: modelctl add {kind.singular if kind else 'KIND'} ...",
        )

    @property
    def where(self) -> str:
        """The label, with a full commit id shortened."""
        if self.commit and self.label.startswith(self.commit):
            return self.commit[:7]
        return self.label

    def route(self, name: str) -> Entry | None:
        return self.entries.get(str(refs.route_path(name)))

    def route_names(self) -> list[str]:
        return [e.path[len("routes/") : -len(".yaml")] for e in self.artifacts("routes")]

    def require_route(self, name: str, flag: str | None = None) -> Entry:
        """The route file of `name`; UnknownName, with the nearest routes, when there is none."""
        refs.check_name(name, "route name")
        entry = self.route(name)
        if entry is None:
            raise unknown_route(name, self.route_names(), self.where, flag)
        return entry


@dataclass(frozen=True)
class Location:
    """Where a registry is: its git repository and its folder inside it."""

    store: GitStore
    root: Path  # absolute folder holding modelctl.yaml
    prefix: str  # the folder relative to the repository top, "" or "sub/dir/"

    def repo_path(self, path: str) -> str:
        return f"{self.prefix}{path}"


def locate(start: Path) -> Location:
    """Find the registry holding `start` (its folder or any parent)."""
    start = start.resolve()
    if not start.exists():
        raise UsageError(f"{start} does not exist", hint="pass -C with an existing folder")
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        if (candidate / refs.SETTINGS_FILE).is_file():
            return locate_at(candidate)
    raise RegistryNotFound(str(start))


def locate_at(root: Path) -> Location:
    store = GitStore.discover(root)
    if store is None:
        raise GitError(
            f"the registry at {root} is not inside a git repository",
            hint=f"run: git init {root}",
        )
    prefix = root.resolve().relative_to(store.toplevel.resolve()).as_posix()
    return Location(store, root.resolve(), "" if prefix == "." else f"{prefix}/")


# --- parsing one file ----------------------------------------------------------------------------


def parse_entry(path: str, raw: bytes, oid: str | None, category: str) -> Entry:
    """Parse and validate one registry file; problems are collected, never raised."""
    from modelctl.registry import validation  # pydantic and PyYAML load only when a file is parsed

    data, problems = validation.check_file(path, raw, category)
    return Entry(path, category, oid, data, problems)


# --- snapshots of a revision, with the cache ----------------------------------------------------


def _cache_dir(loc: Location) -> Path:
    return loc.store.state_dir / "snapshots"


def _write_json_cache(path: Path, payload: Any) -> bool:
    # dumps, not dump: only the one-shot encoder runs in C.
    return write_cache(path, json.dumps(payload, separators=(",", ":")))


def _encode(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "tree": snapshot.tree,
        "entries": [
            [e.path, e.category, e.oid, e.data, [[p.field, p.message, p.line] for p in e.problems]]
            for e in snapshot.entries.values()
        ],
        "others": snapshot.others,
    }


def _decode(payload: dict[str, Any], label: str, commit: str | None) -> Snapshot:
    entries = {}
    for path, category, oid, data, problems in payload["entries"]:
        entries[path] = Entry(
            path, category, oid, data, [Problem(path, f, m, ln) for f, m, ln in problems]
        )
    return Snapshot(label, commit, payload["tree"], entries, payload["others"])


def _load_cached(path: Path) -> dict[str, Any] | None:
    try:
        with path.open(encoding="utf-8") as fh:
            payload: dict[str, Any] = json.load(fh)
    except (OSError, ValueError):
        return None
    return payload if payload.get("format") == CACHE_FORMAT else None


def empty_snapshot(label: str) -> Snapshot:
    return Snapshot(label, None, None, {}, {})


def snapshot_at(loc: Location, rev: str = "HEAD") -> Snapshot:
    """The registry as committed at `rev`."""
    store = loc.store
    commit, tree = store.commit_and_tree(rev, loc.prefix.rstrip("/"))
    if commit is None:
        if rev == "HEAD" and store.ref_oid("HEAD") is None:
            return empty_snapshot("HEAD (no commits yet)")
        raise UsageError(f"revision {rev!r} does not exist in {store.toplevel}")
    label = f"{rev} ({commit[:7]})"
    if tree is None:
        return Snapshot(label, commit, None, {}, {})
    cache = _cache_dir(loc)
    payload = _load_cached(cache / f"{tree}.json")
    if payload is not None:
        return _decode(payload, label, commit)
    snapshot = _build(loc, tree, label, commit)
    if _write_json_cache(cache / f"{tree}.json", _encode(snapshot)):
        write_cache(cache / "last", tree)
    return snapshot


def _previous(loc: Location) -> dict[str, Entry]:
    """Entries of the last snapshot built here, for reuse by blob id."""
    cache = _cache_dir(loc)
    try:
        last = (cache / "last").read_text().strip()
    except OSError:
        return {}
    payload = _load_cached(cache / f"{last}.json")
    return _decode(payload, "", None).entries if payload else {}


def _build(loc: Location, tree: str, label: str, commit: str | None) -> Snapshot:
    entries: dict[str, Entry] = {}
    others: dict[str, str] = {}
    wanted: dict[str, tuple[str, str]] = {}  # path -> (oid, category)
    previous = _previous(loc)
    for item in loc.store.ls_tree(tree):
        place = refs.classify_path(item.path)
        if place is None:
            others[item.path] = item.oid
            continue
        if item.mode != "100644" and item.mode != "100755":
            entries[item.path] = Entry(
                item.path,
                place.category,
                item.oid,
                None,
                [
                    Problem(
                        item.path, "", "is a symlink or submodule; manifests must be plain files"
                    )
                ],
            )
            continue
        old = previous.get(item.path)
        if old is not None and old.oid == item.oid:
            entries[item.path] = old
        else:
            wanted[item.path] = (item.oid, place.category)
    blobs = loc.store.read_blobs(oid for oid, _ in wanted.values())
    for path, (oid, category) in wanted.items():
        entries[path] = parse_entry(path, blobs[oid], oid, category)
    return Snapshot(label, commit, tree, entries, others)


def snapshot_worktree(loc: Location, head: Snapshot | None = None) -> Snapshot:
    """The registry as it is on disk: the committed snapshot (`head`, when the caller has
    read it already) plus uncommitted changes."""
    base = head if head is not None else snapshot_at(loc)
    entries = dict(base.entries)
    others = dict(base.others)
    changed = loc.store.changed_paths(loc.prefix or ".")
    for repo_path in changed:
        if not repo_path.startswith(loc.prefix):
            continue
        path = repo_path[len(loc.prefix) :]
        file = loc.root / path
        place = refs.classify_path(path)
        entries.pop(path, None)
        others.pop(path, None)
        if file.is_symlink():
            if place is not None:
                entries[path] = Entry(
                    path,
                    place.category,
                    None,
                    None,
                    [Problem(path, "", "is a symlink; manifests must be plain files")],
                )
            continue
        if not file.is_file():
            continue  # deleted
        if place is None:
            others[path] = ""
            continue
        raw = read_limited(file)
        entries[path] = parse_entry(path, raw, blob_id(raw), place.category)
    return Snapshot("work tree", base.commit, None, entries, others)


def read_limited(file: Path) -> bytes:
    """Read at most one byte more than a manifest may hold: oversized files are never slurped."""
    with file.open("rb") as fh:
        return fh.read(MAX_MANIFEST_BYTES + 1)


# --- single files, for questions about one route ------------------------------------------------


def unknown_route(name: str, known: list[str], label: str, flag: str | None = None) -> UnknownName:
    """The error for a route `name` that is not among the `known` routes at `label`."""
    return UnknownName(
        "route",
        name,
        known,
        where=f"at {label}",
        flag=flag,
        hint="a route is created by its first deploy: modelctl deploy ROUTE --stage STAGE "
        "--model NAME@VERSION",
    )


def check_route(
    loc: Location, commit: str, name: str, *, exists: bool | None = None, label: str = ""
) -> None:
    """UnknownName, with the nearest routes, unless route `name` exists at `commit` (or
    `exists` says so: the caller already knows, e.g. from the route's history). The routes are
    listed only on a miss, so a good name costs nothing more."""
    refs.check_name(name, "route name")
    if exists:
        return
    known = route_names_at(loc, commit)
    if exists is None and name in known:
        return
    raise unknown_route(name, known, label or commit[:7])


def _route_paths(loc: Location, commit: str) -> list[str]:
    folder = loc.repo_path("routes")
    names = loc.store.names_in(commit, folder)
    return sorted(
        path
        for path in (f"routes/{name}" for name in names)
        if (place := refs.classify_path(path)) is not None and place.category == "routes"
    )


def route_names_at(loc: Location, commit: str) -> list[str]:
    """The names of the route files at `commit` (one `ls-tree` of the routes folder)."""
    return [path[len("routes/") : -len(".yaml")] for path in _route_paths(loc, commit)]


def routes_at(loc: Location, commit: str) -> tuple[Entry | None, dict[str, Entry]]:
    """`modelctl.yaml` and every route file at `commit` (route name -> entry), sorted by path
    as `Snapshot.artifacts` yields them; read without the manifests, which questions about
    what routes serve never need (at 10,000 manifests, parsing them was a second of a cold
    `status`)."""
    paths = _route_paths(loc, commit)
    wanted = {refs.SETTINGS_FILE: "settings", **dict.fromkeys(paths, "routes")}
    # Not remembered: the answers built from these are cached whole (the status by commit).
    files = files_at(loc, commit, wanted, remember=False)
    routes = {
        path[len("routes/") : -len(".yaml")]: entry
        for path in paths
        if (entry := files[path]) is not None
    }
    return files[refs.SETTINGS_FILE], routes


def files_at(
    loc: Location, commit: str, wanted: dict[str, str], *, remember: bool = True
) -> dict[str, Entry | None]:
    """Registry files (path -> category) at `commit`, without loading the whole snapshot.

    One `cat-file --batch-check` finds the blobs; parsed entries are cached by blob id and
    path, so a warm question about one route costs the same however large the registry is.
    `remember=False` reads the cache but adds nothing to it (one file per entry is a cost
    worth paying for a question about one file, not for a thousand read once).
    """
    store = loc.store
    specs = [f"{commit}:{loc.repo_path(path)}" for path in wanted]
    blob_of = store.blob_ids(specs)
    found: dict[str, Entry | None] = {}
    missing: dict[str, str] = {}
    folder = store.state_dir / "files"
    for (path, category), oid in zip(wanted.items(), blob_of, strict=True):
        if oid is None:
            found[path] = None
            continue
        cached = _load_cached(folder / _file_key(oid, path))
        if cached is not None:
            data = cached["data"]
            problems = [Problem(path, f, m, ln) for f, m, ln in cached["problems"]]
            found[path] = Entry(path, category, oid, data, problems)
        else:
            missing[path] = oid
    if missing:
        blobs = store.read_blobs(missing.values())
        for path, oid in missing.items():
            entry = parse_entry(path, blobs[oid], oid, wanted[path])
            found[path] = entry
            if not remember:
                continue
            payload = {
                "format": CACHE_FORMAT,
                "data": entry.data,
                "problems": [[p.field, p.message, p.line] for p in entry.problems],
            }
            _write_json_cache(folder / _file_key(oid, path), payload)
    return found


def _file_key(oid: str, path: str) -> str:
    import hashlib

    return f"{oid}-{hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()[:10]}.json"
