"""`modelctl init`: a new registry with the default stage path and policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from modelctl.errors import ConflictError
from modelctl.gitstore import GitStore, committer_ident
from modelctl.gitstore.atomic import file_mode, write_atomic
from modelctl.registry import commits, refs
from modelctl.registry.snapshot import Location

FOLDERS = ("models", "prompts", "judges", "datasets", "evals", "routes")

SETTINGS_TEMPLATE = """\
# yaml-language-server: $schema=.modelctl/schemas/registry.json
# modelctl registry settings. Reference: docs/registry-format.md
apiVersion: modelctl/v1
kind: Registry
name: {name}
# required: every write is signed (refused when git has no signing key);
# optional: signed when a key is configured; off: never signed.
signing: optional
# SSH allowed-signers file that `modelctl verify` checks signatures against.
allowed_signers: .modelctl/allowed_signers
# The promotion path, in order. promote --to S copies the previous stage's binding to S.
stages:
  - name: dev
  - name: staging
  - name: production
    require_fallback: true
    eval_gate:
      max_regression: 0.02
      min_samples: 30
      confidence: 0.95
"""

ALLOWED_SIGNERS_TEMPLATE = """\
# Keys allowed to sign registry commits and tags, one per line (ssh-keygen ALLOWED SIGNERS):
#   alice@example.com namespaces="git" ssh-ed25519 AAAA...
# Each commit is checked against this file as it stood in the commit's parent.
"""


@dataclass
class InitResult:
    root: str
    created_repo: bool
    committed: bool
    commit: str | None
    files: list[str] = field(default_factory=list)


def default_name(path: Path) -> str:
    text = re.sub(r"[^a-z0-9._-]+", "-", path.name.lower()).strip("-._") or "registry"
    return text if refs.name_problem(text) is None else "registry"


def _existing(root: Path) -> list[str]:
    found = []
    if (root / refs.SETTINGS_FILE).exists():
        found.append(refs.SETTINGS_FILE)
    for folder in FOLDERS:
        if (root / folder).is_dir() and any((root / folder).iterdir()):
            found.append(f"{folder}/")
    return found


def init(path: Path, *, name: str | None = None, commit: bool = True) -> InitResult:
    """Create a registry at `path` (and a git repository when there is none)."""
    from modelctl.registry import schemas

    root = path.resolve()
    existing = _existing(root) if root.exists() else []
    if existing:
        raise ConflictError(
            f"{root} already holds a registry ({', '.join(existing)}); nothing was changed",
            hint="use it as it is, or choose an empty folder",
        )
    name = refs.check_name(name, "registry name") if name else default_name(root)
    nearest = next(p for p in (root, *root.parents) if p.exists())
    store = GitStore.discover(nearest)
    if commit:
        # Fail before creating anything when git could not commit.
        committer_ident(nearest)
    root.mkdir(parents=True, exist_ok=True)
    created_repo = store is None
    if store is None:
        store = GitStore.init(root)
    files: dict[str, bytes] = {
        refs.SETTINGS_FILE: SETTINGS_TEMPLATE.format(name=name).encode(),
        ".modelctl/allowed_signers": ALLOWED_SIGNERS_TEMPLATE.encode(),
    }
    for filename, schema in schemas.generate().items():
        files[f".modelctl/schemas/{filename}"] = schemas.dumps(schema).encode()
    for folder in FOLDERS:
        files[f"{folder}/.gitkeep"] = b""
    loc = _location(store, root)
    result = InitResult(str(root), created_repo, committed=False, commit=None, files=sorted(files))
    if commit:
        # The commit comes first: a failed one leaves no files behind to block a second try.
        # Writing it shows the files in the work tree when the branch is checked out.
        message = f"modelctl: init registry {name}\n\n" + commits.trailers(action="init") + "\n"
        outcome = commits.write(loc, lambda snap, tip: commits.Change(dict(files), message))
        assert outcome.result is not None
        result.committed = True
        result.commit = outcome.result.commit
    for rel, data in files.items():  # all of them without a commit; on a detached HEAD, too
        target = root / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, data, mode=file_mode())
    return result


def _location(store: GitStore, root: Path) -> Location:
    prefix = root.relative_to(store.toplevel.resolve()).as_posix()
    return Location(store, root, "" if prefix == "." else f"{prefix}/")
