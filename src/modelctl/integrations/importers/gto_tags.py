"""GTO's registry as it is in git: its tag grammar, its tags, and its rules, replayed in order.

GTO (Git Tag Ops, https://github.com/iterative/gto) keeps a registry in annotated git tags
(`gto/tag.py`): `name@vX.Y.Z` registers a version at the tag's commit and `name@vX.Y.Z!`
deregisters it; `name#stage#N` assigns a stage to the version registered at the tag's commit
and `name#stage!#N` unassigns it; `name@deprecated` deprecates the artifact. What `gto show`
reports is derived from all tags at once, by these rules (GTO 1.x, default options), which
`GtoArtifact` applies one event at a time:

- a stage shows the version whose still-standing assignment to it is the most recent, among
  versions not deregistered. An unassignment cancels only its own version's assignment, so
  unassigning the version a stage shows brings back the one assigned before it;
- an artifact is hidden while its most recent event is a deprecation; GTO also counts the
  commit date of each version's commit, and of HEAD when `artifacts.yaml` there lists the
  artifact, as events, so a later commit brings a deprecated artifact back;
- an assignment names a commit, not a version: the version is the one registered at that
  commit (even when registered later) or, when there is none, the commit id itself, and then
  each assignment stands alone, so unassigning such a commit changes nothing;
- lightweight tags are ignored; events in the same second are ordered as GTO orders them
  (deprecation, then commits, registration, deregistration, assignment, unassignment), then
  by tag name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl.gitstore import GitStore

# --- GTO's tag grammar (gto/constants.py `tag_re`, written out) ------------------------------

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9_/-]*[a-zA-Z0-9])?"
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE = r"(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (
    rf"v{_NUM}\.{_NUM}\.{_NUM}(?:-{_PRE}(?:\.{_PRE})*)?(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)
TAG_RE = re.compile(
    rf"^(?P<artifact>(?:[a-zA-Z0-9_./-]+=)?{_NAME})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>{_SEMVER}))(?P<cancel>!?)"
    r"|@(?P<special>deprecated|created))"
    r"(?:#(?P<counter>[0-9]+))?$"
)
INDEX_FILE = "artifacts.yaml"
CONFIG_FILE = ".gto"
# Replay order of events in the same second (see the module docstring).
_PRIORITY = {
    "deprecate": 0,
    "commit": 1,
    "register": 3,
    "deregister": 4,
    "assign": 5,
    "unassign": 6,
}
EVENT_NAMES = {
    "deprecate": "deprecation",
    "commit": "commit",
    "register": "registration",
    "deregister": "deregistration",
    "assign": "assignment",
    "unassign": "unassignment",
}


@dataclass(frozen=True)
class TagName:
    """A GTO tag name, parsed."""

    action: str  # register, deregister, assign, unassign, deprecate, create
    artifact: str  # GTO's artifact name (a `=` in the tag is a `:` in the name)
    version: str | None = None
    stage: str | None = None


def parse_tag_name(name: str) -> TagName | None:
    """The GTO meaning of a tag name, or None when it is not one."""
    match = TAG_RE.match(name)
    if match is None:
        return None
    artifact = match["artifact"].replace("=", ":")
    if match["special"]:
        return TagName("deprecate" if match["special"] == "deprecated" else "create", artifact)
    cancel = match["cancel"] == "!"
    if match["version"]:
        action = "deregister" if cancel else "register"
        return TagName(action, artifact, version=match["version"])
    return TagName("unassign" if cancel else "assign", artifact, stage=match["stage"])


# --- reading the repository ------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One GTO event: a tag, or a commit GTO counts as an event (see the module docstring)."""

    kind: str  # register, deregister, assign, unassign, deprecate, commit
    artifact: str  # GTO name
    tag: str  # the tag name, or "commit <id>"
    commit: str
    time: int
    raw_date: str  # "EPOCH +HHMM", as git writes it
    date: str  # ISO 8601 with the original offset
    who: str  # "Name <email>"
    message: str
    version: str | None = None  # register, deregister: the GTO version
    stage: str | None = None  # assign, unassign

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.time, _PRIORITY[self.kind], self.tag)


@dataclass(frozen=True)
class SkippedTag:
    tag: str
    reason: str


_TAG_FIELDS = (
    "%(refname)",
    "%(objecttype)",
    "%(*objecttype)",
    "%(*objectname)",
    "%(taggername)",
    "%(taggeremail)",
    "%(taggerdate:raw)",
    "%(taggerdate:iso-strict)",
    "%(contents:subject)",
    "%(contents:body)",
)


def _ident(name: str, email: str) -> str:
    """`Name <email>`, safe for a commit header (no angle brackets or newlines inside)."""

    def clean(text: str) -> str:
        return re.sub(r"[<>\n\r\0]", "", text).strip()

    return f"{clean(name) or 'unknown'} <{clean(email)}>"


def read_tags(store: GitStore) -> tuple[list[Event], list[SkippedTag], int]:
    """(GTO tag events, tags listed as not imported, count of tags that are not GTO's)."""
    events: list[Event] = []
    skipped: list[SkippedTag] = []
    others = 0
    for record in store.ref_fields(_TAG_FIELDS, ["refs/tags/"]):
        ref, objtype, target_type, target, name, email, raw_date, date, subject, body = record
        tag = ref.removeprefix("refs/tags/")
        parsed = parse_tag_name(tag)
        if parsed is None:
            if "@" in tag or "#" in tag:
                skipped.append(SkippedTag(tag, "not a valid GTO tag name (GTO ignores it too)"))
            else:
                others += 1
            continue
        if objtype != "tag":
            skipped.append(SkippedTag(tag, "lightweight tag: GTO reads annotated tags only"))
            continue
        if target_type != "commit":
            skipped.append(SkippedTag(tag, f"points at a {target_type or 'tag'}, not a commit"))
            continue
        if parsed.action == "create":
            skipped.append(SkippedTag(tag, "`@created` tags are not supported by GTO 1.x"))
            continue
        if not raw_date.strip():
            skipped.append(SkippedTag(tag, "has no tagger date"))
            continue
        epoch, _, offset = raw_date.strip().partition(" ")
        who = _ident(name, email.strip("<>"))
        message = " ".join(f"{subject}\n{body}".split())
        events.append(
            Event(
                parsed.action, parsed.artifact, tag, target, int(epoch),
                f"{epoch} {offset or '+0000'}", date, who, message,
                version=parsed.version, stage=parsed.stage,
            )
        )  # fmt: skip
    return events, skipped, others


def commit_events(store: GitStore, commits_of: dict[str, set[str]]) -> list[Event]:
    """The commits GTO counts as events of each artifact, as events (see the module docstring)."""
    wanted = sorted({c for shas in commits_of.values() for c in shas})
    if not wanted:
        return []
    rows = store.commit_fields(wanted, ("%H", "%cd", "%cI", "%cn", "%ce", "%s"))
    info = {fields[0]: fields[1:] for fields in rows}
    events = []
    for artifact, shas in sorted(commits_of.items()):
        for sha in sorted(shas):
            if sha not in info:
                continue
            raw_date, iso, name, email, subject = info[sha]
            events.append(
                Event("commit", artifact, f"commit {sha}", sha, int(raw_date.split()[0]),
                      raw_date, iso, _ident(name, email), " ".join(subject.split()))
            )  # fmt: skip
    return events


def _load_yaml(raw: bytes, source: str) -> Any:
    """A GTO file read with the manifest loader's limits (size, depth, values; no aliases), its
    plain scalars resolved as YAML 1.2 (GTO's ruamel.yaml) does. Raises ManifestError."""
    from modelctl.registry import yamlio

    return yamlio.resolve_plain(yamlio.load(raw, source, with_lines=False).data)


def read_indexes(store: GitStore, revisions: list[str]) -> dict[str, dict[str, Any]]:
    """`artifacts.yaml` at each revision (one `cat-file --batch`): revision -> artifacts.

    An index that is not YAML the strict loader accepts is left out, as a missing one is."""
    from modelctl.errors import ManifestError

    wanted = list(dict.fromkeys(revisions))
    if not wanted:
        return {}
    bodies = store.read_paths(f"{rev}:{INDEX_FILE}" for rev in wanted)
    found: dict[str, dict[str, Any]] = {}
    for rev in wanted:
        body = bodies[f"{rev}:{INDEX_FILE}"]
        if body is None:
            continue  # missing (or not a file) at this revision
        try:
            data = _load_yaml(body, f"{INDEX_FILE} at {rev[:12]}")
        except ManifestError:
            continue
        if isinstance(data, dict):
            found[rev] = {str(k): v for k, v in data.items() if isinstance(v, dict | type(None))}
    return found


def read_config_stages(root: Path) -> tuple[list[str], list[str]]:
    """The `stages` of GTO's `.gto` config (read from the work tree, as GTO does); notes."""
    from modelctl.errors import ManifestError
    from modelctl.registry.snapshot import read_limited

    path = root / CONFIG_FILE
    if not path.is_file():
        return [], []
    try:
        data = _load_yaml(read_limited(path), CONFIG_FILE)
    except OSError as exc:
        return [], [
            f"{CONFIG_FILE} could not be read ({type(exc).__name__}); its stages are ignored"
        ]
    except ManifestError as exc:
        why = "; ".join(str(p) for p in exc.problems)
        return [], [f"{CONFIG_FILE} could not be read ({why}); its stages are ignored"]
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list):
        return [], []
    return [str(s) for s in stages], []


# --- GTO's rules, replayed event by event ------------------------------------------------------

Key = tuple[int, int, str]


@dataclass(eq=False)
class GtoVersion:
    """One GTO version object: a registered version, or one assignment of an unregistered commit."""

    artifact: str
    version: str  # the GTO version, or the commit id
    commit: str
    named: bool  # named by registration or deregistration tags
    direct: bool = False  # a registration or deregistration has been replayed
    active: bool = False
    stages: dict[str, tuple[bool, Key]] = field(default_factory=dict)  # stage -> (assigned, when)

    def assigned(self, stage: str) -> bool:
        return self.active and self.stages.get(stage, (False,))[0]

    def newer(self, other: GtoVersion | None, stage: str) -> bool:
        return other is None or self.stages[stage][1] > other.stages[stage][1]


@dataclass
class GtoArtifact:
    """GTO's view of one artifact, kept current as events are replayed in time order."""

    name: str
    active: bool = False  # its most recent event is not a deprecation
    versions: dict[str, GtoVersion] = field(default_factory=dict)  # the named ones
    by_stage: dict[str, list[GtoVersion]] = field(default_factory=dict)
    current: dict[str, GtoVersion | None] = field(default_factory=dict)

    def view(self) -> dict[str, str]:
        """Stage -> version, as `gto show` would print it now."""
        if not self.active:
            return {}
        return {s: v.version for s, v in self.current.items() if v is not None}

    def _recompute(self, stage: str) -> None:
        best: GtoVersion | None = None
        for version in self.by_stage.get(stage, []):
            if version.assigned(stage) and version.newer(best, stage):
                best = version
        self.current[stage] = best

    def apply(self, event: Event, version: GtoVersion | None) -> None:
        self.active = event.kind != "deprecate"
        if version is None:
            return
        if event.kind in ("register", "deregister"):
            version.direct = True
            version.active = event.kind == "register"
            for name in version.stages:
                shown = self.current.get(name)
                if shown is version and not version.active:
                    self._recompute(name)
                elif version.assigned(name) and version.newer(shown, name):
                    self.current[name] = version
            return
        stage = event.stage
        assert stage is not None
        if not version.direct:
            version.active = True  # a version with stage events only is active (GTO)
        if stage not in version.stages:
            self.by_stage.setdefault(stage, []).append(version)
        version.stages[stage] = (event.kind == "assign", event.key)
        if event.kind == "assign" and version.active:
            self.current[stage] = version  # replayed in time order: the newest assignment
        elif event.kind == "unassign" and self.current.get(stage) is version:
            self._recompute(stage)


def gto_state(
    events: list[Event], notes: list[str]
) -> tuple[dict[str, GtoArtifact], list[GtoVersion | None]]:
    """GTO's artifacts and version objects, and the version each event applies to.

    GTO indexes every registration before any assignment, so an assignment goes to the version
    registered at its commit even when the registration came later.
    """
    artifacts: dict[str, GtoArtifact] = {}
    at_commit: dict[tuple[str, str], list[GtoVersion]] = {}
    for event in events:
        art = artifacts.setdefault(event.artifact, GtoArtifact(event.artifact))
        if event.version is not None and event.version not in art.versions:
            version = GtoVersion(event.artifact, event.version, event.commit, named=True)
            art.versions[event.version] = version
            at_commit.setdefault((event.artifact, event.commit), []).append(version)
    out: list[GtoVersion | None] = []
    for event in events:
        art = artifacts[event.artifact]
        if event.version is not None:
            out.append(art.versions[event.version])
            continue
        if event.stage is None:
            out.append(None)
            continue
        found = at_commit.get((event.artifact, event.commit), [])
        if len(found) > 1:
            names = ", ".join(v.version for v in found)
            notes.append(
                f"{event.tag}: versions {names} are all registered at commit {event.commit[:12]}, "
                f"so GTO cannot show {event.artifact}; the tag was given to {found[0].version}"
            )
        out.append(
            found[0] if found else GtoVersion(event.artifact, event.commit, event.commit, False)
        )
    return artifacts, out
