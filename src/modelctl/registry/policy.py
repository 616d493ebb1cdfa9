"""Checks across files: references resolve, stages exist, fallbacks are sane, versions immutable.

Each rule is a small function over a snapshot returning problems; `check` runs them all so that
one `modelctl validate` reports everything wrong at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl.errors import Problem, UsageError
from modelctl.gitstore.atomic import write_cache
from modelctl.registry import refs
from modelctl.registry.datasets import content_digest, file_digest
from modelctl.registry.snapshot import VERSIONED, Entry, Location, Snapshot

ReadFile = Callable[[str], bytes | None]
# A registry file's sha256 (hex), or None when there is no such file.
DigestFile = Callable[[str], str | None]


def _exists(snapshot: Snapshot, kind: refs.Kind, text: str) -> bool:
    name, _, version = text.partition("@")
    return str(refs.manifest_path(kind, name, version)) in snapshot.entries


def _missing(snapshot: Snapshot, kind: refs.Kind, text: str | None) -> bool:
    return text is not None and not _exists(snapshot, kind, text)


def _ref_problem(entry: Entry, field: str, kind: refs.Kind, text: str) -> Problem:
    return Problem(
        entry.path,
        field,
        f"{kind.singular} {text} does not exist in the registry; add it first "
        f"(modelctl add {kind.singular} ...) or fix the reference",
    )


def _stage_names(snapshot: Snapshot) -> list[str] | None:
    settings = snapshot.settings
    return [s["name"] for s in settings["stages"]] if settings else None


def _binding_refs(binding: dict[str, Any], field: str) -> Iterator[tuple[str, refs.Kind, str]]:
    for i, target in enumerate(binding.get("targets", [])):
        yield f"{field}.targets[{i}].model", refs.Kind.MODEL, target["model"]
        if target.get("prompt"):
            yield f"{field}.targets[{i}].prompt", refs.Kind.PROMPT, target["prompt"]
    for i, step in enumerate(binding.get("fallback", [])):
        yield f"{field}.fallback[{i}].model", refs.Kind.MODEL, step["model"]
        if step.get("prompt"):
            yield f"{field}.fallback[{i}].prompt", refs.Kind.PROMPT, step["prompt"]


def references(entry: Entry) -> Iterator[tuple[str, refs.Kind, str]]:
    """Every (field, kind, name@version) reference a valid entry makes."""
    data = entry.data
    if data is None:
        return
    category = entry.category
    if category == "models":
        lineage = data.get("lineage", {})
        for i, ds in enumerate(lineage.get("trained_on", [])):
            yield f"lineage.trained_on[{i}]", refs.Kind.DATASET, ds
        if lineage.get("base"):
            yield "lineage.base", refs.Kind.MODEL, lineage["base"]
    elif category == "judges":
        yield "model", refs.Kind.MODEL, data["model"]
        yield "rubric", refs.Kind.PROMPT, data["rubric"]
    elif category == "datasets":
        for i, ds in enumerate((data.get("source") or {}).get("derived_from", [])):
            yield f"source.derived_from[{i}]", refs.Kind.DATASET, ds
    elif category == "routes":
        for stage, binding in data.get("stages", {}).items():
            yield from _binding_refs(binding, f"stages.{stage}")
    elif category == "evals":
        yield "dataset.ref", refs.Kind.DATASET, data["dataset"]["ref"]
        yield from _binding_refs(data["candidate"], "candidate")
        yield from _binding_refs(data["baseline"], "baseline")
        for i, judge in enumerate(data.get("judges", [])):
            yield f"judges[{i}]", refs.Kind.JUDGE, judge


def check_references(
    snapshot: Snapshot, entries: Iterable[Entry] | None = None
) -> Iterator[Problem]:
    """References that do not resolve, from every entry (or only from `entries`)."""
    for entry in snapshot.artifacts() if entries is None else entries:
        for where, kind, text in references(entry):
            if not _exists(snapshot, kind, text):
                yield _ref_problem(entry, where, kind, text)


@dataclass
class CommittedFiles:
    """Registry files as committed in `snapshot`, for checks run while planning a write.

    A pinned file's sha256 is worked out once per blob and kept under the git directory by
    blob id (content-addressed: it never goes stale), so a deploy that names a model trained on
    a large dataset does not hash that dataset again every time.
    """

    loc: Location
    snapshot: Snapshot

    def read(self, path: str) -> bytes | None:
        commit = self.snapshot.commit
        return self.loc.store.read_path(commit, self.loc.repo_path(path)) if commit else None

    def digest(self, path: str) -> str | None:
        oid = self.snapshot.others.get(path)
        if not oid:
            return None
        cached = self.loc.store.state_dir / "digests" / oid
        try:
            return cached.read_text().strip()
        except OSError:
            pass
        value = content_digest(self.loc.store.read_blobs([oid])[oid])[0]
        write_cache(cached, value)  # a read-only git dir only costs time
        return value


def check_closure(
    snapshot: Snapshot, roots: Iterable[tuple[refs.Kind, str]], files: CommittedFiles | None
) -> tuple[list[str], list[Problem]]:
    """What `validate` would report about the manifests `roots` name and everything they name
    in turn (base models, datasets, a judge's model and rubric), with the files they pin by
    digest when `files` can read them: (roots that do not exist, problems)."""
    queue = list(dict.fromkeys(roots))
    missing = [f"{k.singular} {t}" for k, t in queue if snapshot.get(refs.parse_ref(t, k)) is None]
    seen: dict[str, Entry] = {}
    for kind, text in queue:  # grows while it is walked
        entry = snapshot.get(refs.parse_ref(text, kind))
        if entry is None or entry.path in seen:
            continue  # a missing reference a manifest makes is reported by check_references
        seen[entry.path] = entry
        queue.extend((k, t) for _, k, t in references(entry))
    problems = [p for entry in seen.values() for p in entry.problems]
    problems.extend(check_references(snapshot, seen.values()))
    if files is not None:
        problems.extend(check_files(snapshot, files.read, files.digest, seen.values()))
        problems = _with_lines(problems, files.read)
    return missing, sorted(set(problems))


def check_settings(snapshot: Snapshot) -> Iterator[Problem]:
    entry = snapshot.entries.get(refs.SETTINGS_FILE)
    if entry is None:
        yield Problem(refs.SETTINGS_FILE, "", "is missing; run `modelctl init` to create it")


def check_routes(snapshot: Snapshot) -> Iterator[Problem]:
    stages = _stage_names(snapshot)
    settings = snapshot.settings or {}
    need_fallback = {s["name"] for s in settings.get("stages", []) if s.get("require_fallback")}
    for entry in snapshot.artifacts("routes"):
        if entry.data is None:
            continue
        for stage, binding in entry.data.get("stages", {}).items():
            where = f"stages.{stage}"
            if stages is not None and stage not in stages:
                yield Problem(
                    entry.path,
                    where,
                    f"stage {stage!r} is not defined in {refs.SETTINGS_FILE} "
                    f"(stages: {', '.join(stages)})",
                )
            yield from _binding_problems(entry.path, where, binding, stage in need_fallback)


def _binding_problems(
    path: str, where: str, binding: dict[str, Any], need_fallback: bool
) -> Iterator[Problem]:
    primaries = {(t["model"], t.get("prompt")) for t in binding.get("targets", [])}
    seen_targets: set[tuple[str, str | None]] = set()
    for i, target in enumerate(binding.get("targets", [])):
        key = (target["model"], target.get("prompt"))
        if key in seen_targets:
            yield Problem(path, f"{where}.targets[{i}]", "lists the same model and prompt twice")
        seen_targets.add(key)
    chain: set[tuple[str, str | None]] = set()
    for i, step in enumerate(binding.get("fallback", [])):
        key = (step["model"], step.get("prompt"))
        if key in chain:
            yield Problem(
                path, f"{where}.fallback[{i}]", "appears twice in the fallback chain (a cycle)"
            )
        if len(primaries) == 1 and key in primaries:
            yield Problem(
                path,
                f"{where}.fallback[{i}]",
                "falls back to the target it is the fallback for (a cycle)",
            )
        chain.add(key)
    if need_fallback and not binding.get("fallback"):
        yield Problem(
            path,
            f"{where}.fallback",
            "this stage requires a fallback chain (require_fallback in modelctl.yaml); "
            "add at least one fallback step",
        )


def check_files(
    snapshot: Snapshot,
    read: ReadFile,
    digest: DigestFile | None = None,
    entries: Iterable[Entry] | None = None,
) -> Iterator[Problem]:
    """Files that manifests pin by digest (prompt templates, local dataset files), of every
    entry or only of `entries`."""
    if digest is None:

        def digest(path: str) -> str | None:
            content = read(path)
            return None if content is None else content_digest(content)[0]

    chosen = list(snapshot.artifacts() if entries is None else entries)
    for entry in (e for e in chosen if e.category == "prompts"):
        spec = entry.data.get("template_file") if entry.data else None
        if spec:
            fields = ("template_file.path", "template_file.sha256")
            yield from _digest_problem(entry, fields, spec["path"], spec["sha256"], digest)
    for entry in (e for e in chosen if e.category == "datasets"):
        data = entry.data
        if data and "://" not in data["uri"]:
            yield from _digest_problem(
                entry, ("uri", "sha256"), data["uri"], data["sha256"], digest
            )


def _digest_problem(
    entry: Entry, fields: tuple[str, str], path: str, pinned: str, digest: DigestFile
) -> Iterator[Problem]:
    found = digest(path)
    if found is None:
        yield Problem(entry.path, fields[0], f"file {path} does not exist in the registry")
    elif found != pinned:
        yield Problem(
            entry.path,
            fields[1],
            f"does not match the content of {path} (sha256 {found}); a pinned file must "
            "not change (add a new version instead)",
        )


def check_evals(snapshot: Snapshot) -> Iterator[Problem]:
    for entry in snapshot.artifacts("evals"):
        if entry.data is None:
            continue
        pinned = entry.data["dataset"]
        ref = refs.parse_ref(pinned["ref"], refs.Kind.DATASET)
        dataset = snapshot.get(ref)
        if (
            dataset is not None
            and dataset.data is not None
            and dataset.data["sha256"] != pinned["sha256"]
        ):
            yield Problem(
                entry.path,
                "dataset.sha256",
                f"does not match the digest recorded in dataset {pinned['ref']}",
            )


def check_immutable(snapshot: Snapshot, base: Snapshot) -> Iterator[Problem]:
    """Version files committed in `base` must be unchanged and present in `snapshot`."""
    # Restore from the commit itself: `git checkout -- FILE` copies the index, which may hold
    # a staged edit (or a state from before the commit).
    rev = base.commit[:12] if base.commit else "HEAD"
    for path, old in base.entries.items():
        if old.category not in VERSIONED:
            continue
        new = snapshot.entries.get(path)
        if new is None:
            yield Problem(
                path,
                "",
                f"was deleted, but committed versions are immutable (present in {base.label}); "
                f"restore it (git checkout {rev} -- {path}) and add a new version instead",
            )
        elif new.oid != old.oid:
            yield Problem(
                path,
                "",
                f"was modified, but committed versions are immutable (see {base.label}); "
                f"restore it (git checkout {rev} -- {path}) and add a new version instead",
            )


def check(
    snapshot: Snapshot,
    read: ReadFile,
    base: Snapshot | None = None,
    digest: DigestFile | None = None,
) -> list[Problem]:
    """Every problem in `snapshot`: per-file ones, then the rules across files."""
    problems: list[Problem] = []
    for entry in snapshot.entries.values():
        problems.extend(entry.problems)
    problems.extend(check_settings(snapshot))
    problems.extend(check_references(snapshot))
    problems.extend(check_routes(snapshot))
    problems.extend(check_files(snapshot, read, digest))
    problems.extend(check_evals(snapshot))
    if base is not None:
        problems.extend(check_immutable(snapshot, base))
    return sorted(set(problems))


@dataclass
class ValidateResult:
    source: str
    base: str | None
    files: int
    problems: list[Problem]
    skipped: list[str] = field(default_factory=list)
    prefix: str = ""  # the registry's folder in its repository, for CI annotations

    @property
    def ok(self) -> bool:
        return not self.problems


def _registry_paths(loc: Location, paths: list[Path]) -> tuple[list[str], list[str]]:
    inside, outside = [], []
    for path in paths:
        try:
            rel = path.resolve().relative_to(loc.root).as_posix()
        except ValueError:
            outside.append(str(path))
            continue
        inside.append("" if rel == "." else rel)
    return inside, outside


def validate(
    loc: Location,
    paths: list[Path] | None = None,
    base: str | None = "HEAD",
    rev: str | None = None,
) -> ValidateResult:
    """Check the work tree (or `rev`) against every rule, and immutability against `base`."""
    from modelctl.registry.snapshot import snapshot_at, snapshot_worktree

    store = loc.store
    base_snapshot = None
    if base is not None:
        if store.resolve(base) is not None:
            base_snapshot = snapshot_at(loc, base)
        elif not (base == "HEAD" and store.ref_oid("HEAD") is None):
            raise UsageError(f"base revision {base!r} does not exist", hint="pass --base REV")
    if rev is not None:
        snapshot = snapshot_at(loc, rev)
        commit = snapshot.commit
        # Every file a manifest pins, read with one cat-file rather than one each.
        pinned = [f for files in _pinned_files(snapshot).values() for f in files]
        specs = {f: f"{commit}:{loc.repo_path(f)}" for f in pinned} if commit else {}
        found = store.read_paths(specs.values())

        def read(path: str) -> bytes | None:
            if path in specs:
                return found[specs[path]]
            return store.read_path(commit, loc.repo_path(path)) if commit else None

        digest = None
    else:
        # The work tree is HEAD plus its changes: with the default base, HEAD is read once.
        snapshot = snapshot_worktree(loc, base_snapshot if base == "HEAD" else None)

        def read(path: str) -> bytes | None:
            file = loc.root / path
            return file.read_bytes() if file.is_file() and not file.is_symlink() else None

        def digest(path: str) -> str | None:
            found = file_digest(loc.root / path)
            return found[0] if found else None

    problems = check(snapshot, read, digest=digest)
    skipped: list[str] = []
    files = len(snapshot.entries)
    if paths:
        inside, skipped = _registry_paths(loc, paths)

        def selected(path: str) -> bool:
            return any(p in ("", path) or path.startswith(p.rstrip("/") + "/") for p in inside)

        # A changed template or dataset file is reported through the manifest that pins it.
        pins = _pinned_files(snapshot)
        problems = [
            p for p in problems
            if selected(p.path) or p.path == refs.SETTINGS_FILE
            or any(selected(f) for f in pins.get(p.path, ()))
        ]  # fmt: skip
        files = sum(1 for path in snapshot.entries if selected(path))
    problems = _with_lines(problems, read)
    # Immutability is about the whole registry: a deleted version is in no list of changed files.
    if base_snapshot is not None:
        problems = sorted(set(problems) | set(check_immutable(snapshot, base_snapshot)))
    return ValidateResult(
        snapshot.label,
        base_snapshot.label if base_snapshot else None,
        files,
        problems,
        skipped,
        loc.prefix,
    )


def _pinned_files(snapshot: Snapshot) -> dict[str, list[str]]:
    """Manifest path -> the registry files it pins by digest (template files, dataset files)."""
    out: dict[str, list[str]] = {}
    for entry in snapshot.artifacts():
        data = entry.data or {}
        if entry.category == "prompts" and data.get("template_file"):
            out[entry.path] = [data["template_file"]["path"]]
        elif entry.category == "datasets" and "://" not in str(data.get("uri", "://")):
            out[entry.path] = [str(data["uri"])]
    return out


def _field_path(field_name: str) -> tuple[str | int, ...]:
    """`stages.prod.targets[0].model` -> ('stages', 'prod', 'targets', 0, 'model')."""

    parts: list[str | int] = []
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", field_name):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _with_lines(problems: list[Problem], read: ReadFile) -> list[Problem]:
    """Add line numbers to cross-file problems by finding their field in the file."""
    from modelctl.errors import ManifestError
    from modelctl.registry import yamlio

    docs: dict[str, yamlio.Document | None] = {}
    out = []
    for problem in problems:
        if problem.line is None and problem.field:
            if problem.path not in docs:
                raw = read(problem.path)
                try:
                    docs[problem.path] = yamlio.load(raw, problem.path) if raw is not None else None
                except ManifestError:
                    docs[problem.path] = None
            doc = docs[problem.path]
            if doc is not None:
                line = doc.line_of(_field_path(problem.field))
                problem = Problem(problem.path, problem.field, problem.message, line)
        out.append(problem)
    return out
