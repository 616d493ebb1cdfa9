"""The only code that runs git: other layers ask `GitStore` named questions, never git itself.

Reads go through plumbing with a constant number of processes per question (`ls-tree` plus one
`cat-file --batch` for a whole revision). Writes never touch the user's index or work tree while
they are built: a private index file, `commit-tree`, and one `update-ref --stdin` transaction
that moves the branch (compare-and-swap against the commit that was read) and creates the tags
together or not at all. Every revision or path that came from a user follows `--end-of-options`
or `--`. Every call reads objects as committed: replace refs and grafts are ignored, and the
caller's variables that point git at other repositories, indexes or objects are dropped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from modelctl.errors import ConflictError, GitError, UsageError
from modelctl.gitstore.atomic import file_mode, write_atomic

ZERO_OID = "0" * 40
_OID_RE = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
# Variables git exports to hooks that would point our git calls at another index or repository,
# or make it read other objects or parents than those committed (shallow and replace bases).
_SCRUB = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_PREFIX",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_QUARANTINE_PATH",
    "GIT_SHALLOW_FILE",
    "GIT_REPLACE_REF_BASE",
)
# Objects are read as committed, in every git call: `refs/replace/*` (which can swap any blob,
# tree or commit for another) and grafts (which rewrite a commit's parents) are ignored.
# GIT_NO_REPLACE_OBJECTS alone leaves `.git/info/grafts` in force (git 2.39): an empty graft
# file turns that off too, whatever GIT_GRAFT_FILE the caller set.
AS_COMMITTED = {"GIT_NO_REPLACE_OBJECTS": "1", "GIT_GRAFT_FILE": os.devnull}
_SIGNING_CONFIG = re.compile(r"^(user\.(name|email|signingkey)|gpg\..*)$")


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(
        LC_ALL="C",
        LANGUAGE="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_OPTIONAL_LOCKS="0",
        GIT_EDITOR="true",
    )
    env.update(AS_COMMITTED)
    return env


class RefMoved(ConflictError):
    """The branch moved between read and write (a lost compare-and-swap); safe to retry."""


class TagTaken(RefMoved):
    """A tag the write would create exists although the branch did not move.

    Planning again on the same tip picks the same tag name, so a retry cannot succeed.
    """


class PushRefused(GitError):
    """The remote (or git's own pre-push hook) refused a push for a reason a retry cannot
    change; nothing was pushed."""


class LockHeld(ConflictError):
    """A git lock file exists; another git process is running, or one crashed."""


def _lock_error(stderr: str) -> LockHeld | None:
    match = re.search(r"Unable to create '([^']+\.lock)': File exists", stderr)
    if not match:
        return None
    lock = Path(match.group(1))
    try:
        age = f"{time.time() - lock.stat().st_mtime:.0f} s old"
    except OSError:
        age = "gone now"
    return LockHeld(
        f"git lock {lock} is held ({age})",
        hint="another git process is running here; if none is, one crashed: remove the file, retry",
    )


def run_git(
    args: list[str],
    *,
    cwd: Path | None = None,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run git with a scrubbed, non-interactive environment; raise GitError on failure.

    Objects are always read as committed (`AS_COMMITTED`): a caller's `env` cannot undo that.
    """
    full_env = _base_env()
    if env:
        full_env.update(env)
        full_env.update(AS_COMMITTED)
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            env=full_env,
            check=False,
        )
    except FileNotFoundError:
        raise GitError(
            "git is not installed or not on PATH", hint="install git 2.34 or newer"
        ) from None
    if check and proc.returncode != 0:
        raise_for(args, proc, cwd)
    return proc


def committer_ident(cwd: Path) -> str:
    """The committer identity git would use in `cwd` (a repository or not); GitError with
    git's own hint when none is set."""
    return run_git(["var", "GIT_COMMITTER_IDENT"], cwd=cwd).stdout.decode("utf-8", "replace")


def raise_for(
    args: list[str], proc: subprocess.CompletedProcess[bytes], cwd: Path | None = None
) -> NoReturn:
    """The error a failed git run means: a held lock, no identity, or git's own message."""
    stderr = proc.stderr.decode("utf-8", "replace").strip()
    lock = _lock_error(stderr)
    if lock is not None:
        raise lock
    if "Please tell me who you are" in stderr or "empty ident name" in stderr:
        raise GitError(
            "git has no identity configured for commits",
            hint='run: git config --global user.name "Your Name" && '
            "git config --global user.email you@example.com",
        )
    for said, hint in _GIT_FILE_SYSTEM_HINTS:
        if said in stderr:
            where = f" in {cwd}" if cwd is not None else ""
            raise GitError(
                f"git {args[0]} could not write{where}; nothing was changed: {stderr}", hint=hint
            )
    raise GitError(f"git {args[0]} failed: {stderr or f'exit {proc.returncode}'}")


# What git says when the file system refuses a write, and what to do about it.
_GIT_FILE_SYSTEM_HINTS = (
    (
        "Read-only file system",
        "the repository is on a read-only mount: read commands work as they are; run writes "
        "in a writable clone",
    ),
    (
        "No space left on device",
        "free some space and run the command again (read commands work as they are)",
    ),
    (
        "Disk quota exceeded",
        "free some space and run the command again (read commands work as they are)",
    ),
    (
        "insufficient permission",
        "this user may not write to the repository: run as a user who may, or in your own clone",
    ),
    (
        "Permission denied",
        "this user may not write to the repository: run as a user who may, or in your own clone",
    ),
)


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    type: str
    oid: str
    path: str


@dataclass(frozen=True)
class Signature:
    """A signature check: git's `%G?` letter (G good; anything else is not), signer, key."""

    status: str
    signer: str
    key: str  # the signing key's fingerprint: SHA256:... for SSH, hex for GPG; "" unknown
    primary: str = ""  # GPG: the primary key's fingerprint

    @property
    def good(self) -> bool:
        return self.status == "G"

    @property
    def gpg(self) -> bool:
        return bool(self.key) and not self.key.startswith("SHA256:")


@dataclass(frozen=True)
class TagSpec:
    """An annotated tag to create with a commit: `name` without `refs/tags/`."""

    name: str
    message: str


@dataclass(frozen=True)
class CommitResult:
    commit: str
    tags: dict[str, str]  # tag name -> tag object id
    signed: bool
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Framing:
    """Markers around the records and fields of a `--format` that no stored text can hold.

    Commit messages, trailers, names and tag messages are anyone's text: they may hold any
    separator byte (a record separator, a NUL in a hand-made object). The markers carry a
    random token chosen for each git run, after that text was written, so text inside a
    field can never end the field or start a record.
    """

    record: str
    field: str

    @classmethod
    def fresh(cls) -> Framing:
        token = secrets.token_hex(16)
        return cls(f"\x1e{token}:", f"\x1f{token}:")

    def format(self, fields: Sequence[str]) -> str:
        return "--format=" + self.record + self.field.join(fields) + self.field

    def split(self, raw: bytes, count: int) -> list[tuple[list[str], str]]:
        """(the `count` fields, the text after the last field) of each record, in order."""
        out = []
        for chunk in raw.split(self.record.encode())[1:]:
            parts = chunk.split(self.field.encode(), count)
            if len(parts) == count + 1:
                text = [p.decode("utf-8", "replace") for p in parts]
                out.append((text[:count], text[count]))
        return out


class GitStore:
    """One git repository: its work tree (toplevel) and git directories."""

    def __init__(
        self, toplevel: Path, git_dir: Path, common_dir: Path, shallow: bool = False
    ) -> None:
        self.toplevel = toplevel
        self.git_dir = git_dir
        self.common_dir = common_dir
        # A shallow clone's history stops at a cut: every walk of it would answer from part of
        # the history (a wrong sequence, a missing event, a verify that passes), so `git`
        # refuses walks there (`_walks_history`).
        self.shallow = shallow
        self._signing_settings: list[tuple[str, str]] | None = None
        self._tmp_env: dict[str, str] | None = None
        self._held: dict[Path, IO[str]] = {}  # pending-sync notes this process holds

    # --- finding and creating repositories ----------------------------------------------------

    @classmethod
    def discover(cls, path: Path) -> GitStore | None:
        """The repository containing `path`, or None when it is not inside one."""
        proc = run_git(
            [
                "rev-parse",
                "--show-toplevel",
                "--absolute-git-dir",
                "--git-common-dir",
                "--is-shallow-repository",
            ],
            cwd=path,
            check=False,
        )
        if proc.returncode != 0:
            if b"dubious ownership" in proc.stderr:
                raise GitError(
                    f"git refuses to read {path}: it is owned by another user",
                    hint=f"if you trust it: git config --global --add safe.directory {path}",
                )
            return None
        top, git_dir, common, shallow = proc.stdout.decode().splitlines()
        common_path = Path(common)
        if not common_path.is_absolute():
            common_path = (path / common_path).resolve()
        return cls(Path(top), Path(git_dir), common_path, shallow == "true")

    @classmethod
    def init(cls, path: Path, branch: str = "main") -> GitStore:
        """`git init` at `path`, through `run_git` like every other git call (its environment)."""
        path.mkdir(parents=True, exist_ok=True)
        proc = run_git(["init", "-q", f"--initial-branch={branch}"], cwd=path, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"git init {path} failed: {err}")
        store = cls.discover(path)
        if store is None:  # pragma: no cover - git init just succeeded
            raise GitError(f"git init {path} did not create a repository")
        return store

    # --- small questions ------------------------------------------------------------------------

    def git(
        self,
        *args: str,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        if self.shallow and _walks_history(args):
            raise GitError(
                f"{self.toplevel} is a shallow clone: its history is cut off, so modelctl "
                "cannot answer from it (sequences, events, signatures and tags before the cut "
                "are missing); nothing was written",
                hint="fetch the whole history: git fetch --unshallow (in GitHub Actions: "
                "actions/checkout with fetch-depth: 0)",
            )
        return run_git(list(args), cwd=self.toplevel, stdin=stdin, env=env, check=check)

    def out(
        self, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        return self.git(*args, stdin=stdin, env=env).stdout.decode("utf-8", "replace").strip()

    def records(
        self, command: str, fields: Sequence[str], *args: str, stdin: bytes | None = None
    ) -> list[tuple[list[str], str]]:
        """`git <command> --format=<fields> <args>` (log, for-each-ref): per record, its fields
        and the text git printed after them (`--raw` lines), framed so that no byte of a
        message or name can be read back as a separator (see `Framing`)."""
        framing = Framing.fresh()
        raw = self.git(command, framing.format(fields), *args, stdin=stdin).stdout
        return framing.split(raw, len(fields))

    def resolve(self, rev: str, peel: str = "commit") -> str | None:
        """The object id `rev` names, peeled to `peel`; None when it does not exist."""
        proc = self.git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{{peel}}}", check=False
        )
        text = proc.stdout.decode().strip()
        return text if proc.returncode == 0 and _OID_RE.match(text) else None

    def head_ref(self) -> str | None:
        """`refs/heads/<branch>` that HEAD points at, or None when HEAD is detached."""
        proc = self.git("symbolic-ref", "--quiet", "HEAD", check=False)
        return proc.stdout.decode().strip() or None if proc.returncode == 0 else None

    def ref_oid(self, ref: str) -> str | None:
        """The value of a fully qualified ref, or None when it does not exist."""
        proc = self.git("rev-parse", "--verify", "--quiet", "--end-of-options", ref, check=False)
        text = proc.stdout.decode().strip()
        return text if proc.returncode == 0 else None

    def object_at(self, commit: str, path: str) -> str | None:
        """The id of the object at `path` in `commit`, or None when there is none."""
        proc = self.git(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{commit}:{path}", check=False
        )
        text = proc.stdout.decode().strip()
        return text if proc.returncode == 0 and _OID_RE.match(text) else None

    def commit_and_tree(self, rev: str, prefix: str) -> tuple[str | None, str | None]:
        """(commit `rev` names, tree of folder `prefix` in it) with one process."""
        tree_spec = f"{rev}^{{commit}}:{prefix}" if prefix else f"{rev}^{{tree}}"
        proc = self.git(
            "rev-parse", "--quiet", "--end-of-options", f"{rev}^{{commit}}", tree_spec, check=False
        )
        # Without --verify, rev-parse echoes --end-of-options itself: keep only object ids.
        lines = [x for x in proc.stdout.decode().split() if _OID_RE.match(x)]
        if proc.returncode == 0 and len(lines) == 2:
            return lines[0], lines[1]
        commit = self.resolve(rev)
        return commit, (self.tree_of(commit, prefix) if commit else None)

    def tree_of(self, commit: str, prefix: str) -> str | None:
        """The tree id of folder `prefix` ('' for the root) at `commit`."""
        return self.object_at(commit, prefix) if prefix else self.resolve(commit, "tree")

    def signing_settings(self) -> list[tuple[str, str]]:
        """Every `user.*` and `gpg.*` setting as (key, value) in git's order, read once.

        Keys come as `git config --get-regexp` prints them: section and name lowercased.
        """
        if self._signing_settings is None:
            self._signing_settings = self.config_values(r"^(user|gpg)\.")
        return self._signing_settings

    def signing_key_configured(self) -> bool:
        """True when git would know which key to sign with."""
        settings = dict(self.signing_settings())  # the last value wins, as for `config --get`
        if settings.get("user.signingkey"):
            return True
        fmt = (settings.get("gpg.format") or "openpgp").lower()
        return fmt == "ssh" and bool(settings.get("gpg.ssh.defaultkeycommand"))

    def identity(self) -> str:
        """The committer identity git would use; GitError with a hint when none is set."""
        return self.out("var", "GIT_COMMITTER_IDENT")

    def require_writable(self) -> None:
        """Refuse, before anything is planned or written, when this user cannot write to the
        repository's object store (a read-only mount, no permission): exit 4 naming the path.

        A full disk is found only when git fails to write an object; that is exit 4 too, and
        leaves the refs as they were (they move last)."""
        objects = self.common_dir / "objects"
        try:
            fd, name = tempfile.mkstemp(prefix=".modelctl-probe-", dir=objects)
        except OSError as exc:
            from modelctl.errors import file_system_error

            error = file_system_error(exc)
            if error is None:
                raise
            raise GitError(
                f"cannot write to this repository ({objects}): {error.message.rpartition(': ')[2]}",
                hint=error.hint,
            ) from None
        os.close(fd)
        Path(name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def scratch_file(self, data: bytes, prefix: str = "scratch-") -> Iterator[Path]:
        """`data` as a file that git (and the programs it runs, like ssh-keygen) can read,
        removed afterwards: in modelctl's folder in the git directory; where that cannot be
        written (a read-only registry, a full disk), in the system's temporary folder; where
        that cannot be written either, in memory (Linux). Read-only commands need this (the
        allowed-signers file), and must answer on a read-only registry or a full disk."""
        path = _scratch_in(self.state_dir, data, prefix) or _scratch_in(None, data, prefix)
        if path is not None:
            try:
                yield path
            finally:
                path.unlink(missing_ok=True)
            return
        fd = os.memfd_create(prefix) if hasattr(os, "memfd_create") else -1
        memory = Path(f"/proc/{os.getpid()}/fd/{fd}")
        try:
            if fd < 0 or not memory.exists():
                raise OSError(
                    errno.ENOSPC, "no folder to write a scratch file in", str(self.state_dir)
                )
            os.write(fd, data)
            yield memory
        finally:
            if fd >= 0:
                os.close(fd)

    @property
    def state_dir(self) -> Path:
        """modelctl's own folder in the git directory: caches (safe to delete), plus the note a
        write leaves while it updates the work tree (pending-sync/, removed when it is done)."""
        return self.common_dir / "modelctl"

    # --- reading trees and blobs ----------------------------------------------------------------

    def ls_tree(self, tree: str) -> list[TreeEntry]:
        """Every entry below `tree`, recursively (paths relative to it)."""
        raw = self.git("ls-tree", "-r", "-z", "--full-tree", "--end-of-options", tree).stdout
        entries = []
        for record in raw.split(b"\0"):
            if not record:
                continue
            meta, _, path = record.partition(b"\t")
            mode, kind, oid = meta.decode().split(" ")
            entries.append(TreeEntry(mode, kind, oid, path.decode("utf-8", "surrogateescape")))
        return entries

    def read_blobs(self, oids: Iterable[str]) -> dict[str, bytes]:
        """Contents of many blobs with one `cat-file --batch` process."""
        wanted = list(dict.fromkeys(oids))
        if not wanted:
            return {}
        out = self.git(
            "cat-file", "--batch", stdin="".join(f"{o}\n" for o in wanted).encode()
        ).stdout
        blobs: dict[str, bytes] = {}
        pos = 0
        for oid in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode()
            pos = end + 1
            if header.endswith(" missing"):
                raise GitError(f"object {oid} is missing from the repository", hint="run git fsck")
            _, _, size = header.split(" ")
            blobs[oid] = out[pos : pos + int(size)]
            pos += int(size) + 1
        return blobs

    def read_path(self, rev: str, path: str) -> bytes | None:
        """One file at a revision, or None when it does not exist there (one process)."""
        if "\n" in rev or "\n" in path:  # cat-file --batch reads one name per line
            oid = self.object_at(rev, path)
            return self.read_blobs([oid])[oid] if oid else None
        return self.read_paths([f"{rev}:{path}"])[f"{rev}:{path}"]

    def read_paths(self, specs: Iterable[str]) -> dict[str, bytes | None]:
        """Files named `REV:PATH`, with one `cat-file --batch`: spec -> content, or None when
        there is no file there (missing, or a directory or submodule at that revision)."""
        wanted = list(dict.fromkeys(specs))
        if not wanted:
            return {}
        out = self.git("cat-file", "--batch", stdin="".join(f"{s}\n" for s in wanted).encode())
        raw, pos = out.stdout, 0
        found: dict[str, bytes | None] = {}
        for spec in wanted:
            end = raw.index(b"\n", pos)
            fields = raw[pos:end].split(b" ")
            pos = end + 1
            found[spec] = None
            if len(fields) == 3 and _OID_RE.match(fields[0].decode("ascii", "replace")):
                size = int(fields[2])  # every object's body follows its header: skip it
                if fields[1] == b"blob":
                    found[spec] = raw[pos : pos + size]
                pos += size + 1
        return found

    def changed_paths(self, pathspec: str = ".") -> dict[str, str]:
        """Uncommitted changes under `pathspec`, untracked files included: path -> XY status."""
        raw = self.git(
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            "--",
            pathspec,
        ).stdout
        changes: dict[str, str] = {}
        for record in raw.split(b"\0"):
            if len(record) > 3:
                changes[record[3:].decode("utf-8", "surrogateescape")] = record[:2].decode()
        return changes

    def changed_between(self, old: str | None, new: str) -> list[str]:
        """Repository-relative paths that differ between two commits (all of `new` if no `old`)."""
        if old is None:
            args = ["ls-tree", "-r", "-z", "--name-only", "--full-tree", "--end-of-options", new]
        else:
            args = ["diff-tree", "-r", "-z", "--name-only", "--no-renames", "--end-of-options"]
            args += [old, new]
        raw = self.git(*args).stdout
        return [p.decode("utf-8", "surrogateescape") for p in raw.split(b"\0") if p]

    def first_parent_changes(
        self, tip: str, pathspecs: Iterable[str]
    ) -> list[tuple[str, list[tuple[str, str]]]]:
        """The first-parent commits up to `tip` that touch `pathspecs`, oldest first, each
        with the (status letter, repository-relative path) of what it changed there.

        A merge is compared with its first parent, so what a merged branch brought arrives
        with the merge: the order is the order the branch itself received the changes."""
        raw = self.git(
            "log", "--no-show-signature", "--first-parent", "--diff-merges=first-parent",
            "--reverse", "--no-renames", "--name-status", "-z", "--format=%x1e%H",
            "--end-of-options", tip, "--", *pathspecs,
        ).stdout  # fmt: skip
        out: list[tuple[str, list[tuple[str, str]]]] = []
        for chunk in raw.split(b"\x1e"):
            fields = chunk.split(b"\0")
            commit = fields[0].strip().decode()
            if not commit:
                continue
            rest = fields[1:]  # "\nSTATUS", path, STATUS, path, ..., ""
            changes = [
                (rest[i].strip().decode()[:1], rest[i + 1].decode("utf-8", "surrogateescape"))
                for i in range(0, len(rest) - 1, 2)
                if rest[i].strip()
            ]
            out.append((commit, changes))
        return out

    def is_ancestor(self, older: str, newer: str) -> bool:
        proc = self.git(
            "merge-base", "--is-ancestor", "--end-of-options", older, newer, check=False
        )
        return proc.returncode == 0

    def count_only_in(self, old: str, new: str) -> int | None:
        """How many commits of `old`'s history `new`'s lacks; None when `old` is not here."""
        proc = self.git("rev-list", "--count", "--end-of-options", old, f"^{new}", check=False)
        text = proc.stdout.decode().strip()
        return int(text) if proc.returncode == 0 and text.isdigit() else None

    def first_parent_ids(self, old: str, new: str) -> list[str]:
        """The commits after `old` up to `new`, along `new`'s first parents."""
        return self.out("rev-list", "--first-parent", "--end-of-options", new, f"^{old}").split()

    def root_commits(self, tip: str) -> list[str]:
        """The commits without parents that `tip`'s history starts from."""
        return self.out("rev-list", "--max-parents=0", "--end-of-options", tip).split()

    def config_values(self, pattern: str) -> list[tuple[str, str]]:
        """(key, value) of every git config setting whose key matches the regex `pattern`
        (this repository's, global and system), in git's order; keys lowercased by git."""
        raw = self.git("config", "-z", "--get-regexp", pattern, check=False).stdout
        pairs = []
        for record in raw.decode("utf-8", "replace").split("\0"):
            if record:
                key, _, value = record.partition("\n")
                pairs.append((key, value))
        return pairs

    # --- questions the layers above ask (each builds its own git arguments here) ----------------

    def first_parent_log(
        self,
        fields: Sequence[str],
        revisions: str,
        pathspecs: Sequence[str] = (),
        *,
        oldest_first: bool = False,
        merge_changes: bool = False,
    ) -> list[tuple[list[str], str]]:
        """The first-parent commits in `revisions` (a tip or a range) touching `pathspecs` (all
        when empty), newest first unless `oldest_first`: per commit its `fields` and its
        `--raw` change lines (full object ids, no rename detection). `merge_changes`: a merge
        lists its changes against its first parent (what it brought onto the branch); without
        it a merge lists none."""
        args = ["--no-show-signature", "--first-parent", "--no-renames", "--raw", "--no-abbrev"]
        if merge_changes:
            args.append("--diff-merges=first-parent")
        if oldest_first:
            args.append("--reverse")
        args += ["--end-of-options", revisions]
        if pathspecs:
            args += ["--", *pathspecs]
        return self.records("log", fields, *args)

    def commit_fields(self, commits: Sequence[str], fields: Sequence[str]) -> list[list[str]]:
        """`fields` of each of `commits` (no history walk), in their order; `%cd` is raw
        (`<epoch> <offset>`). A commit that does not exist fails as git does."""
        rows = self.records(
            "log", fields, "--no-show-signature", "--no-walk=unsorted", "--stdin", "--date=raw",
            stdin="".join(f"{c}\n" for c in commits).encode(),
        )  # fmt: skip
        return [row for row, _ in rows]

    def committer_time(self, commit: str) -> str:
        """A commit's committer time as git prints it (`%ct`: seconds, or nothing)."""
        return self.out(
            "show", "--no-show-signature", "-s", "--format=%ct", "--end-of-options", commit
        )

    def first_parent_history(self, tip: str) -> list[str]:
        """Every commit along `tip`'s first parents, `tip` first."""
        return self.out("rev-list", "--first-parent", "--end-of-options", tip).split()

    def ref_fields(self, fields: Sequence[str], patterns: Sequence[str]) -> list[list[str]]:
        """`fields` (for-each-ref atoms) of every ref matching `patterns` (full names or folders
        such as `refs/tags/`), in ref-name order."""
        return [row for row, _ in self.records("for-each-ref", fields, *patterns)]

    def ref_objects(self, pattern: str) -> dict[str, str]:
        """Every ref under `pattern` (such as `refs/tags/modelctl/`) -> the object it names."""
        listing = self.out("for-each-ref", "--format=%(refname) %(objectname)", pattern)
        pairs = (line.partition(" ") for line in listing.splitlines() if line)
        return {ref: oid for ref, _, oid in pairs}

    def has_refs(self, pattern: str) -> bool:
        """Whether any ref lives under `pattern` (such as `refs/tags/modelctl/`)."""
        return bool(self.out("for-each-ref", "--count=1", "--format=%(refname)", pattern))

    def refs_containing(self, commit: str, patterns: Sequence[str]) -> set[str]:
        """The refs among `patterns` whose target has `commit` in its history."""
        listing = self.out(
            "for-each-ref", "--format=%(refname)", "--contains", commit, "--end-of-options",
            *patterns,
        )  # fmt: skip
        return set(listing.splitlines())

    def names_in(self, commit: str, folder: str) -> list[str]:
        """The names of the entries of `folder` at `commit` (one `ls-tree`); none when the
        folder is not there."""
        proc = self.git(
            "ls-tree", "-z", "--name-only", "--end-of-options", f"{commit}:{folder}", check=False
        )
        if proc.returncode != 0:
            return []
        return [n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n]

    def blob_ids(self, specs: Sequence[str]) -> list[str | None]:
        """The blob each `REV:PATH` names, in order (one `cat-file --batch-check`); None where
        there is none, or it is not a blob."""
        out = self.git("cat-file", "--batch-check", stdin="".join(f"{s}\n" for s in specs).encode())
        ids: list[str | None] = []
        for line in out.stdout.decode().splitlines():
            parts = line.split()
            ids.append(parts[0] if len(parts) == 3 and parts[1] == "blob" else None)
        return ids

    def set_config(self, key: str, value: str) -> None:
        """Set `key` in this repository's own git config."""
        self.git("config", "--local", key, value)

    def commit_all(self, message: str, date: str) -> None:
        """Commit everything in the work tree with `git add -A` and `git commit` (the user's
        own path, hooks and signing settings), dated `date` (author and committer)."""
        self.git("add", "-A")
        self.git(
            "commit", "-q", "-m", message,
            env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date},
        )  # fmt: skip

    # --- writing --------------------------------------------------------------------------------

    def fast_import(self, stream: bytes, head: str) -> dict[str, str]:
        """Write the objects of a `git fast-import` `stream` without moving any ref here: the
        refs it makes land in a throwaway git directory that shares this repository's objects
        (its HEAD is `head`). Returns those refs -> object ids."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="import-", dir=self.state_dir))
        try:
            (scratch / "refs" / "heads").mkdir(parents=True)
            (scratch / "refs" / "tags").mkdir()
            (scratch / "objects").mkdir()
            (scratch / "HEAD").write_text(f"ref: {head}\n")
            objects = self.common_dir / "objects"
            env = {"GIT_DIR": str(scratch), "GIT_OBJECT_DIRECTORY": str(objects)}
            alternates = objects / "info" / "alternates"
            if alternates.exists():
                alternate = os.pathsep.join(alternates.read_text().split())
                env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = alternate
            self.git("fast-import", "--quiet", "--done", "--date-format=raw", stdin=stream, env=env)
            listing = self.out("for-each-ref", "--format=%(objectname) %(refname)", env=env)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        pairs = (line.partition(" ") for line in listing.splitlines() if line)
        return {ref: oid for oid, _, ref in pairs}

    def write_commit_graph(self) -> str | None:
        """Write git's commit-graph with changed-path Bloom filters for every reachable commit;
        the error text when git could not (git before 2.27, a read-only repository).

        With the filters, `git log -- PATH` skips commits that did not touch PATH without
        opening their trees: over 17,000 commits, one route's log went from 0.79 s to 0.02 s.
        """
        proc = self.git("commit-graph", "write", "--reachable", "--changed-paths", check=False)
        if proc.returncode == 0:
            return None
        return proc.stderr.decode("utf-8", "replace").strip() or f"exit {proc.returncode}"

    def hash_blob(self, data: bytes) -> str:
        return self.out("hash-object", "-w", "--stdin", stdin=data)

    def _build_tree(self, parent: str | None, changes: Mapping[str, bytes | None]) -> str:
        """A tree equal to `parent`'s with `changes` applied (None deletes), via a private index."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd, index = tempfile.mkstemp(prefix="index-", dir=self.state_dir)
        os.close(fd)
        Path(index).unlink()  # git wants to create it; mkstemp only reserved a unique name
        env = {"GIT_INDEX_FILE": index}
        try:
            if parent is not None:
                self.git("read-tree", "--end-of-options", parent, env=env)
            lines = []
            for path, data in changes.items():
                if data is None:
                    lines.append(f"0 {ZERO_OID}\t{path}")
                else:
                    lines.append(f"100644 {self.hash_blob(data)}\t{path}")
            self.git(
                "update-index", "--index-info", stdin=("\n".join(lines) + "\n").encode(), env=env
            )
            return self.out("write-tree", env=env)
        finally:
            Path(index).unlink(missing_ok=True)

    def _signed_tag(
        self, name: str, commit: str, message: str, dated: Mapping[str, str] | None = None
    ) -> str:
        """A signed annotated tag object named `name`, written without creating any ref here.

        `git tag -s` is the only porcelain that signs a tag the way the user's git is configured
        (SSH, OpenPGP or X.509), but it also creates the ref. So it runs against a throwaway git
        directory that shares this repository's object store: the tag object lands here, the ref
        lands there, and the real ref is created later in the same transaction as the branch.
        """
        pairs = [(k, v) for k, v in self.signing_settings() if _SIGNING_CONFIG.match(k)]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="tag-", dir=self.state_dir))
        try:
            (scratch / "refs" / "heads").mkdir(parents=True)
            (scratch / "objects").mkdir()
            (scratch / "HEAD").write_text("ref: refs/heads/scratch\n")
            env = {
                **(dated or {}),
                "GIT_DIR": str(scratch),
                "GIT_OBJECT_DIRECTORY": str(self.common_dir / "objects"),
                "GIT_CONFIG_COUNT": str(len(pairs)),
            }
            alternates = self.common_dir / "objects" / "info" / "alternates"
            if alternates.exists():
                env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = os.pathsep.join(
                    alternates.read_text().split()
                )
            for i, (key, value) in enumerate(pairs):
                env[f"GIT_CONFIG_KEY_{i}"] = key
                env[f"GIT_CONFIG_VALUE_{i}"] = value
            proc = run_git(
                ["tag", "-s", "-F", "-", "--end-of-options", name, commit],
                cwd=scratch,
                stdin=message.encode(),
                env=env,
                check=False,
            )
            if proc.returncode != 0:
                err = proc.stderr.decode("utf-8", "replace").strip()
                raise GitError(f"signing tag {name} failed: {err}", hint=SIGNING_HINT)
            return (
                run_git(["rev-parse", "--verify", f"refs/tags/{name}"], cwd=scratch, env=env)
                .stdout.decode()
                .strip()
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _plain_tag(
        self, name: str, commit: str, message: str, dated: Mapping[str, str] | None = None
    ) -> str:
        tagger = self.out("var", "GIT_COMMITTER_IDENT", env=dated) if dated else self.identity()
        body = f"object {commit}\ntype commit\ntag {name}\ntagger {tagger}\n\n{message}"
        return self.out("mktag", stdin=body.encode())

    def make_commit(
        self,
        parent: str | None,
        changes: Mapping[str, bytes | None],
        message: str,
        *,
        sign: bool,
        tags: Iterable[TagSpec] = (),
    ) -> CommitResult:
        """Write the commit and tag objects for `changes` on `parent`; no ref moves."""
        tree = self._build_tree(parent, changes)
        args = ["commit-tree", tree, "-F", "-", "-S" if sign else "--no-gpg-sign"]
        if parent is not None:
            args += ["-p", parent]
        dated = self._not_before(parent)
        proc = self.git(*args, stdin=message.encode(), env=dated, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            if sign and ("sign" in err.lower() or "gpg" in err.lower() or "ssh" in err.lower()):
                raise GitError(f"signing the commit failed: {err}", hint=SIGNING_HINT)
            raise_for(args, proc, self.toplevel)
        commit = proc.stdout.decode().strip()
        tag_ids: dict[str, str] = {}
        for spec in tags:
            make = self._signed_tag if sign else self._plain_tag
            tag_ids[spec.name] = make(spec.name, commit, spec.message, dated)
        return CommitResult(commit, tag_ids, sign)

    def _not_before(self, parent: str | None) -> dict[str, str]:
        """The committer date for a commit on `parent`: this machine's clock, or the parent's
        date when the clock is behind it (another writer's clock ran ahead, within what verify
        allows), so dates never go down along the branch. A date the caller set explicitly
        (`GIT_COMMITTER_DATE`) is kept as it is: verify judges it."""
        if parent is None or "GIT_COMMITTER_DATE" in os.environ:
            return {}
        text = self.out(
            "show", "-s", "--no-show-signature", "--format=%ct", "--end-of-options", parent
        )
        floor = int(text) if text.isascii() and text.isdigit() else 0
        if time.time() >= floor:
            return {}
        return {"GIT_COMMITTER_DATE": f"{floor} +0000"}

    def commit(
        self,
        branch_ref: str,
        expected: str | None,
        changes: Mapping[str, bytes | None],
        message: str,
        *,
        sign: bool,
        tags: Iterable[TagSpec] = (),
        reflog: str = "modelctl",
    ) -> CommitResult:
        """Commit `changes` on top of `expected` and move `branch_ref` there, with `tags`.

        The branch moves only if it still points at `expected` (None: the branch must not exist
        yet), and the branch and every tag change in one transaction: all or nothing. Raises
        RefMoved when the branch moved, so the caller can re-read and re-apply its intent.
        """
        if not branch_ref.startswith("refs/heads/"):
            raise UsageError(f"{branch_ref} is not a branch")
        result = self.make_commit(expected, changes, message, sign=sign, tags=tags)
        self.update_refs(branch_ref, result.commit, expected, result.tags, reflog)
        return result

    def fetch_branch(self, remote: str, branch_ref: str, tags: str | None = None) -> str | None:
        """Fetch `branch_ref` from `remote` into a private ref; its commit, or None if absent.

        An explicit refspec into modelctl's own namespace, so what is built on never depends on
        how fresh the user's remote-tracking branch is (a successful `git push` later updates
        that one, as any push does). `tags`, a folder such as `refs/tags/modelctl/`: mirror the
        remote's tags there into the private namespace too (`adopt_tags` brings them in).
        """
        private = f"refs/modelctl/remotes/{remote}/{branch_ref.removeprefix('refs/heads/')}"
        listing = self.git("ls-remote", "--end-of-options", remote, branch_ref, check=False)
        if listing.returncode != 0:
            err = listing.stderr.decode("utf-8", "replace").strip()
            raise GitError(f"cannot reach remote {remote!r}: {err}", hint="check git remote -v")
        if not listing.stdout.strip():
            return None
        specs = [f"+{branch_ref}:{private}"]
        if tags is not None:
            specs.append(f"+{tags}*:{self._tag_mirror(remote)}{tags.removeprefix('refs/')}*")
        self.git("fetch", "--quiet", "--no-tags", "--prune", "--end-of-options", remote, *specs)
        return self.ref_oid(private)

    def _tag_mirror(self, remote: str) -> str:
        return f"refs/modelctl/remote-tags/{remote}/"

    def adopt_tags(self, remote: str, tags: str, tip: str) -> list[str]:
        """Create the tags under `tags` (a folder such as `refs/tags/modelctl/`) that the last
        `fetch_branch` mirrored from `remote` and that point into `tip`'s history, where this
        repository has no tag of that name yet (an existing one is never changed). Without them
        a clone that followed other writers' commits would lack their tags. Returns the names.
        """
        mirror = f"{self._tag_mirror(remote)}{tags.removeprefix('refs/')}"
        theirs = self.out(
            "for-each-ref", "--format=%(refname) %(objectname)", "--merged", tip,
            "--end-of-options", mirror,
        )  # fmt: skip
        ours = set(self.out("for-each-ref", "--format=%(refname)", tags).splitlines())
        creates = []
        for line in theirs.splitlines():
            ref, _, oid = line.partition(" ")
            local = "refs/" + ref.removeprefix(self._tag_mirror(remote))
            if local not in ours:
                creates.append((local, oid))
        if not creates:
            return []
        lines = ["start", *(f"create {ref} {oid}" for ref, oid in creates), "prepare", "commit"]
        proc = self.git(
            "update-ref", "-m", f"modelctl: tags from {remote}", "--stdin",
            stdin=("\n".join(lines) + "\n").encode(), check=False,
        )  # fmt: skip
        if proc.returncode != 0:  # one was made meanwhile: create the others one by one
            for ref, oid in creates:
                self.git("update-ref", "-m", "modelctl", ref, oid, ZERO_OID, check=False)
        return [ref.removeprefix("refs/tags/") for ref, _ in creates]

    def push_atomic(self, remote: str, updates: Mapping[str, str]) -> tuple[bool, str]:
        """`git push --atomic` of `{object: ref}`, never forced. (accepted, git's report).

        Not accepted (False) means a lost race: the remote moved since it was fetched, so the
        caller plans again on the new tip. A refusal that no retry can change (the remote's
        pre-receive or update hook, a protected branch, a local pre-push hook) raises
        PushRefused at once with git's own words, and a tag that exists there raises TagTaken.
        A failure with no verdict per ref (the connection broke) raises GitError: the caller
        re-fetches to learn whether the push landed.
        """
        specs = [f"{oid}:{ref}" for ref, oid in updates.items()]
        proc = self.git(
            "push", "--atomic", "--porcelain", "--end-of-options", remote, *specs,
            check=False,
        )  # fmt: skip
        report = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()
        if proc.returncode == 0:
            return True, report
        verdicts = push_verdicts(proc.stdout.decode("utf-8", "replace"))
        if not verdicts:
            stderr = proc.stderr.decode("utf-8", "replace").strip()
            if proc.returncode == 1 and ("fatal:" not in stderr or self._has_pre_push_hook()):
                # git stopped before sending anything and said why: its pre-push hook (or
                # another local check) refused. The same push would be refused again.
                raise PushRefused(
                    f"git refused to push to {remote} before sending anything "
                    f"(a pre-push hook?); nothing was pushed: {stderr or 'no reason given'}",
                    hint="fix what git's message names (git push runs .git/hooks/pre-push, or "
                    "the hook in core.hooksPath), then run the command again",
                )
            # No verdict per ref: the connection failed. The caller re-fetches to find out.
            raise GitError(f"push to {remote} failed: {report}")
        refused = [v for v in verdicts if v.refused]
        if refused:
            said = "; ".join(f"{v.ref}: {v.summary}" for v in refused)
            remote_lines = [
                line.removeprefix("remote:").strip()
                for line in proc.stderr.decode("utf-8", "replace").splitlines()
                if line.startswith("remote:") and line.removeprefix("remote:").strip()
            ]
            told = f" (the remote said: {' / '.join(remote_lines)})" if remote_lines else ""
            raise PushRefused(
                f"{remote} refused the push; nothing was pushed: {said}{told}",
                hint="the remote's rules (a protected branch, a pre-receive or update hook) "
                "refuse this change; retrying will not help: ask the remote's owner, or push "
                "where you may",
            )
        # Refused only because a tag exists there (the branch was fine): pushing again on the
        # same remote tip would pick the same tag, so say so instead of retrying.
        rejected = [v for v in verdicts if v.flag == "!"]
        taken = [v.ref for v in rejected if "(already exists)" in v.summary]
        others = [v for v in rejected if not v.secondary]
        if taken and len(others) == len(taken) and all(t.startswith("refs/tags/") for t in taken):
            name = taken[0].removeprefix("refs/tags/")
            raise TagTaken(
                f"tag {name} already exists on {remote}, but its branch does not record it; "
                "nothing was pushed",
                hint=f"it was made outside modelctl: inspect it (git ls-remote {remote} "
                f"refs/tags/{name}) and delete it only if it is a mistake",
            )
        return False, report

    def _has_pre_push_hook(self) -> bool:
        """Whether git would run a pre-push hook here (core.hooksPath honoured)."""
        hook = Path(self.out("rev-parse", "--git-path", "hooks/pre-push"))
        hook = hook if hook.is_absolute() else self.toplevel / hook
        return hook.is_file() and os.access(hook, os.X_OK)

    def commit_signatures(
        self, commits: Iterable[str], allowed_signers: Path | None
    ) -> dict[str, Signature]:
        """`%G?`, signer and key of many commits with one `git log` (and one check per signature).

        Never asks for `%GT` (git 2.39 aborts on it for expired GPG keys) and never lets the
        user's `log.showSignature` print into the records. Without an `allowed_signers` file no
        SSH key is trusted (never the one in the user's own git config).
        """
        wanted = list(dict.fromkeys(commits))
        if not wanted:
            return {}
        args = _trust_args(allowed_signers)
        framing = Framing.fresh()
        proc = self.git(
            *args, "log", "--no-show-signature", "--no-walk=unsorted", "--stdin",
            framing.format(("%H", "%G?", "%GS", "%GF", "%GP")),
            stdin="".join(f"{c}\n" for c in wanted).encode(), env=self._verify_env(),
        )  # fmt: skip
        out: dict[str, Signature] = {}
        for (oid, status, signer, key, primary), _ in framing.split(proc.stdout, 5):
            out[oid] = Signature(status or "N", signer, key, primary)
        return out

    def ssh_key_valid_at(self, commit: str, allowed_signers: Path, when: int) -> bool | None:
        """Whether `allowed_signers` allows the key that made `commit`'s SSH signature at `when`
        (seconds since the epoch); None when the commit carries no SSH signature.

        git checks a key's `valid-after`/`valid-before` at the committer date, which the signer
        chose; this asks `ssh-keygen -Y find-principals` the same question at a time known from
        elsewhere. (git has already checked the signature itself: this is about the key only.)
        """
        raw = self.git("cat-file", "commit", commit).stdout
        signature = _ssh_signature_of(raw)
        if signature is None:
            return None
        stamp = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(when))
        # A scratch file, so the question is answered on a read-only registry or a full disk.
        with self.scratch_file(signature, "sig-") as name:
            args = ["-Y", "find-principals", "-s", str(name), "-f", str(allowed_signers)]
            try:
                proc = subprocess.run(
                    ["ssh-keygen", *args, f"-Overify-time={stamp}"],
                    capture_output=True,
                    env={**_base_env(), "TZ": "UTC"},
                    check=False,
                )
            except FileNotFoundError:
                raise GitError(
                    "ssh-keygen is not installed or not on PATH",
                    hint="install OpenSSH 8.8 or newer",
                ) from None
        return proc.returncode == 0

    def _verify_env(self) -> dict[str, str]:
        """Where git may write the temporary files it checks an SSH signature with.

        git writes the signature to a file in $TMPDIR for ssh-keygen, and when it cannot (a
        full or read-only disk) it reports the signature as absent ("N"): a wrong answer, not
        an error. So find a folder that takes a file first: the temporary folder, modelctl's
        own, or one in memory; with none, refuse (exit 4) rather than call signed work unsigned.
        """
        if self._tmp_env is None:
            memory = Path("/dev/shm")  # noqa: S108 - files in it are made with mkstemp
            folders = [Path(tempfile.gettempdir()), self.state_dir, memory]
            for folder in folders:
                probe = _scratch_in(folder, b"\0" * 16384, "modelctl-probe-")
                if probe is not None:
                    probe.unlink(missing_ok=True)
                    self._tmp_env = {"TMPDIR": str(folder)}
                    break
            else:
                raise GitError(
                    "cannot check signatures: git writes them to a temporary file, and none of "
                    f"{', '.join(str(f) for f in folders)} can be written (full or read-only)",
                    hint="free some space, or set TMPDIR to a folder that can be written",
                )
        return self._tmp_env

    def tag_signature(self, tag_ref: str, allowed_signers: Path | None) -> Signature:
        """Whether the annotated tag at `tag_ref` carries a good signature."""
        args = _trust_args(allowed_signers)
        proc = self.git(
            *args, "verify-tag", "--raw", "--end-of-options", tag_ref,
            check=False, env=self._verify_env(),
        )  # fmt: skip
        err = proc.stderr.decode("utf-8", "replace")
        if "no signature found" in err:
            return Signature("N", "", "")
        if proc.returncode == 0:
            # GPG reports a good signature from an untrusted key with exit 0: not good enough.
            if "TRUST_UNDEFINED" in err or "TRUST_NEVER" in err:
                return Signature("U", "", "")
            valid = re.search(r"^\[GNUPG:\] VALIDSIG .*$", err, re.M)
            if valid:
                # VALIDSIG <key fpr> <9 fields> <primary key fpr>
                fields = valid.group().split()
                return Signature("G", "", fields[2], fields[12] if len(fields) > 12 else "")
            if "[GNUPG:]" in err:  # GPG, but which key is not known: fails any pin
                return Signature("G", "", "?")
            match = re.search(r'Good "git" signature for (\S+)', err)
            return Signature("G", match.group(1) if match else "", "")
        if "No principal matched" in err or "TRUST_" in err:
            return Signature("U", "", "")
        if "EXPKEYSIG" in err:
            return Signature("Y", "", "")
        if "REVKEYSIG" in err:
            return Signature("R", "", "")
        if "ERRSIG" in err or "NO_PUBKEY" in err:
            return Signature("E", "", "")
        return Signature("B", "", "")

    def good_ssh_tags(self, tag_refs: list[str], allowed_signers: Path | None) -> set[str]:
        """Which of `tag_refs` (SSH-signed tags) git verifies, with one `git verify-tag`.

        git prints the format line of a tag only when its signature verified; for SSH that is
        exactly a good signature by an allowed key (for GPG it includes good signatures from
        untrusted keys: ask `tag_signature` about those). The others are not told apart here.
        """
        args = _trust_args(allowed_signers)
        proc = self.git(
            *args, "verify-tag", "--format=%(refname)", "--end-of-options", *tag_refs,
            check=False, env=self._verify_env(),
        )  # fmt: skip
        return set(proc.stdout.decode("utf-8", "replace").splitlines()) & set(tag_refs)

    def find_intent(self, tip: str, intent: str, limit: int = 500) -> str | None:
        """The commit on `tip`'s history carrying `Modelctl-Promotion-Id: intent`, if any."""
        out = self.out(
            "log", "--no-show-signature", f"-{limit}", "--first-parent", "--format=%H",
            "--fixed-strings",
            f"--grep=Modelctl-Promotion-Id: {intent}", "--end-of-options", tip,
        )  # fmt: skip
        return out.split()[0] if out else None

    def update_refs(
        self, branch_ref: str, new: str, expected: str | None, tags: Mapping[str, str], reflog: str
    ) -> None:
        """One ref transaction: branch compare-and-swap plus tag creation."""
        lines = ["start"]
        lines.append(f"update {branch_ref} {new} {expected or ZERO_OID}")
        lines += [f"create refs/tags/{name} {oid}" for name, oid in tags.items()]
        lines += ["prepare", "commit", ""]
        proc = self.git(
            "update-ref", "-m", reflog, "--stdin", stdin="\n".join(lines).encode(), check=False
        )
        if proc.returncode == 0:
            return
        err = proc.stderr.decode("utf-8", "replace").strip()
        if (
            "but expected" in err
            or "reference already exists" in err
            or "exists; cannot create" in err
        ):
            taken = re.search(r"cannot lock ref '(refs/tags/[^']+)'", err)
            if taken and self.ref_oid(branch_ref) == expected:
                name = taken.group(1).removeprefix("refs/tags/")
                raise TagTaken(
                    f"tag {name} already exists, but {branch_ref} does not record it; "
                    "nothing was written",
                    hint=f"it was made outside modelctl: inspect it (git show {name}) and "
                    "delete it only if it is a mistake",
                )
            raise RefMoved(f"{branch_ref} moved while modelctl was writing", hint="run it again")
        lock = _lock_error(err)
        if lock is not None:
            raise lock
        raise GitError(f"updating {branch_ref} failed: {err}")

    @contextlib.contextmanager
    def writer_turn(self, wait: float = 60.0) -> Iterator[None]:
        """Take turns with this repository's other modelctl writers while planning and committing.

        Compare-and-swap keeps concurrent writes correct without it; the turn stops writers on
        one machine from starving each other (all planning on the same tip, all but one losing,
        again and again). Advisory only: after `wait` seconds behind a holder that hangs (a
        signing prompt) a writer goes ahead and races, and a lock that cannot be made is skipped.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            handle = (self.state_dir / "write.lock").open("a")
        except OSError:
            yield
            return
        with handle:
            deadline = time.monotonic() + wait
            held = False
            while not held:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    held = True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.01)
            try:
                yield
            finally:
                if held:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    # A write records which work-tree paths it will sync before it moves the branch (a note in
    # pending-sync/), and removes the note once the work tree and the index show the new tip.
    # Whatever stops a writer in between (a kill, a crash, an index locked by another git), the
    # note stays, so the next writer finishes the sync, and no dirty check mistakes a file that
    # a modelctl write has not caught up with for the user's own edit. A note's writer holds an
    # advisory lock on it while it runs: the kernel drops that lock when the process ends, so a
    # note is known to be abandoned even when a new process got the old one's PID.

    def begin_sync(self, branch_ref: str, paths: Iterable[str], base: str | None) -> Path:
        """Leave a note that this process will sync `paths` after moving `branch_ref` off `base`."""
        folder = self.state_dir / "pending-sync"
        folder.mkdir(parents=True, exist_ok=True)
        note = {"branch": branch_ref, "paths": list(paths), "base": base, "writer": _writer()}
        # Written and locked under a name no reader looks at, then renamed into place: a note
        # is never seen half-written or unlocked while its writer lives.
        fd, name = tempfile.mkstemp(prefix=".new-", suffix=".json", dir=folder)
        handle = os.fdopen(fd, "w")
        try:
            _lock(handle, wait=True)
            handle.write(json.dumps(note))
            handle.flush()
            final = folder / f"sync-{uuid.uuid4().hex}.json"
            Path(name).replace(final)
        except BaseException as exc:
            # Leave no half-written note behind. Closing flushes what is buffered, which on a
            # full disk fails again: that second failure must not hide which file it was.
            with contextlib.suppress(OSError):
                handle.close()
            Path(name).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise OSError(exc.errno, exc.strerror, name) from exc
            raise
        self._held[final] = handle
        return final

    def end_sync(self, note: Path, synced: bool = True) -> None:
        """Done with `note`: remove it, or (`synced=False`: the work tree or index could not be
        updated) leave it, unlocked, for the next writer to finish."""
        if synced:
            note.unlink(missing_ok=True)
        handle = self._held.pop(note, None)
        if handle is not None:
            handle.close()  # closing drops the lock

    def abandon_sync(self, note: Path, branch_ref: str, base: str | None) -> None:
        """The write of `note` stopped with an error (an interrupt, a failed git): remove the
        note if the branch is still at `base` (nothing landed); otherwise leave it to the next
        writer, since the branch may have moved with the work tree not caught up yet."""
        try:
            landed = self.ref_oid(branch_ref) != base
        except BaseException:  # a second interrupt: keep the note, the next writer decides
            landed = True
        self.end_sync(note, synced=not landed)

    def _pending(self) -> list[dict[str, Any]]:
        """Every pending-sync note, whether its writer still runs or not."""
        folder = self.state_dir / "pending-sync"
        notes = []
        for path in sorted(folder.glob("sync-*.json")) if folder.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                if isinstance(data, dict) and isinstance(data.get("paths"), list):
                    notes.append(data)
        return notes

    @contextlib.contextmanager
    def _claim(self, note_path: Path) -> Iterator[dict[str, Any] | None]:
        """The note at `note_path`, held, when its writer has gone; None while it still runs
        (or when another process finished the note first)."""
        try:
            handle = note_path.open()
        except OSError:
            yield None
            return
        with handle:
            try:
                data = json.loads(handle.read() or "null")
            except ValueError:
                data = None
            free = _lock(handle, wait=False)  # None: no locks here, ask who wrote it
            if free is None and isinstance(data, dict):
                free = not _writer_alive(data.get("writer"), data)
            if not free or not isinstance(data, dict):
                if free:
                    note_path.unlink(missing_ok=True)  # unreadable, and its writer is gone
                yield None
                return
            try:
                same = os.path.samestat(os.fstat(handle.fileno()), note_path.stat())
            except OSError:
                same = False
            if not same:
                yield None  # finished and removed by another process meanwhile
                return
            yield data

    def recover_sync(self) -> None:
        """Finish the syncs of writers that stopped before they were done (killed, or the index
        was locked): show their paths as committed, except those the user has edited since."""
        folder = self.state_dir / "pending-sync"
        if not folder.is_dir():
            return
        for orphan in folder.glob(".new-*.json"):  # a writer killed while it wrote its note
            with contextlib.suppress(OSError), orphan.open() as handle:
                # Unlocked for a minute: not a writer between creating and locking it.
                old = time.time() - os.fstat(handle.fileno()).st_mtime > 60
                if old and _lock(handle, wait=False):
                    orphan.unlink()
        for note_path in sorted(folder.glob("sync-*.json")):
            with self._claim(note_path) as note:
                if note is None:
                    continue
                branch, paths = str(note["branch"]), [str(p) for p in note["paths"]]
                try:
                    edited = set(self.user_edits(branch, paths))
                except RefMoved:
                    continue  # another writer is at work: the next run looks again
                warnings = self.sync_worktree(branch, [p for p in paths if p not in edited])
                if not warnings:
                    note_path.unlink(missing_ok=True)

    def user_edits(self, branch_ref: str, paths: list[str]) -> list[str]:
        """Of `paths` (repository-relative), those whose work-tree file or index entry holds
        what no modelctl write put there: neither the content at the tip of `branch_ref` (the
        checked-out branch) nor, for a path a pending-sync note lists, the content at that
        write's base (its work-tree sync may still be on its way, or be left to finish).

        Raises RefMoved when a path looks edited but the branch moved while looking: another
        writer's sync may be what was seen, and the caller's write would lose its race anyway.
        """
        if not paths:
            return []
        # Order matters: the tip, then the notes, then the files. A writer notes its paths
        # before it moves the branch and removes the note only after its sync, so whatever
        # file content a modelctl write left is the tip's or the base of a note read here.
        tip = self.ref_oid(branch_ref)
        notes = [n for n in self._pending() if n.get("branch") == branch_ref]
        top = os.path.commonpath(paths) if len(paths) > 1 else paths[0]
        status = self._index_entries(top or ".")
        suspects = [p for p in paths if p in status]
        if not suspects:
            return []
        revs = {
            path: {tip, *(n.get("base") for n in notes if path in n["paths"])} for path in suspects
        }  # None: before the branch's first commit, when there were no files
        found = self.object_ids(f"{r}:{p}" for p, rs in revs.items() for r in rs if r)
        allowed = {p: {found[f"{r}:{p}"] if r else None for r in rs} for p, rs in revs.items()}
        edited = [
            path
            for path in suspects
            if status[path] not in allowed[path]
            or _worktree_blob(self.toplevel / path) not in allowed[path]
        ]
        if edited and self.ref_oid(branch_ref) != tip:
            raise RefMoved(f"{branch_ref} moved while modelctl was checking the work tree")
        return edited

    def _index_entries(self, pathspec: str) -> dict[str, str | None]:
        """Paths under `pathspec` whose index entry or work-tree file differs from HEAD (or that
        git does not track), each with its index entry's blob id: None when the index has none,
        "unmerged" during a conflict."""
        raw = self.git(
            "status", "--porcelain=v2", "-z", "--untracked-files=all", "--no-renames",
            "--", pathspec,
        ).stdout  # fmt: skip
        out: dict[str, str | None] = {}
        for record in raw.split(b"\0"):
            text = record.decode("utf-8", "surrogateescape")
            if text.startswith("1 "):
                fields = text.split(" ", 8)  # 1 XY sub mH mI mW hH hI path
                out[fields[8]] = None if fields[7] == ZERO_OID else fields[7]
            elif text.startswith("u "):
                out[text.split(" ", 10)[10]] = "unmerged"
            elif text.startswith("? "):
                out[text[2:]] = None
        return out

    def object_ids(self, specs: Iterable[str]) -> dict[str, str | None]:
        """The object each `REV:PATH` names (one `cat-file --batch-check`), None when none."""
        wanted = list(dict.fromkeys(specs))
        if not wanted:
            return {}
        out = self.git(
            "cat-file", "--batch-check", stdin="".join(f"{s}\n" for s in wanted).encode()
        )
        found: dict[str, str | None] = {}
        for spec, line in zip(wanted, out.stdout.decode().splitlines(), strict=True):
            parts = line.split(" ")  # "OID TYPE SIZE", or "SPEC missing"
            found[spec] = parts[0] if len(parts) == 3 and _OID_RE.match(parts[0]) else None
        return found

    def sync_worktree(self, branch_ref: str, paths: Iterable[str]) -> list[str]:
        """After `branch_ref` moved: show `paths` as committed there in the work tree and index.

        Only if the branch is checked out, and only those paths, so the user's other staged
        changes stay as they were. Writers serialise on a lock file and copy the branch tip's
        content (not their own), so concurrent writers leave the work tree at the final tip.
        Returns warnings for what could not be done (an index locked by another process).
        """
        if self.head_ref() != branch_ref:
            return []
        paths = list(paths)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.state_dir / "worktree.lock"):
            tip = self.ref_oid(branch_ref)
            contents = self.read_paths(f"{tip}:{path}" for path in paths) if tip else {}
            mode = file_mode()
            for path in paths:
                data = contents.get(f"{tip}:{path}")
                target = self.toplevel / path
                if data is None:
                    with contextlib.suppress(FileNotFoundError):
                        target.unlink()
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(target, data, mode=mode)
            listing = b"".join(path.encode() + b"\0" for path in paths)  # any number of them
            proc = self.git(
                "update-index", "--add", "--remove", "-z", "--stdin", stdin=listing, check=False
            )
        if proc.returncode != 0:
            joined = " ".join(paths) if len(paths) <= 5 else f"({len(paths)} files)"
            command = f"git reset -q -- {joined}" if len(paths) <= 5 else "git reset -q"
            return [
                "the git index is locked by another process, so `git status` may show "
                f"{joined} as changed; the next modelctl write finishes this, or once the "
                f"index is free run: {command}"
            ]
        return []


def _ssh_signature_of(commit: bytes) -> bytes | None:
    """The SSH signature in a raw commit object's `gpgsig` header, or None."""
    header, _, _ = commit.partition(b"\n\n")
    lines: list[bytes] = []
    for line in header.split(b"\n"):
        if lines and line.startswith(b" "):
            lines.append(line[1:])
        elif lines:
            break
        elif line.startswith((b"gpgsig ", b"gpgsig-sha256 ")):
            lines.append(line.partition(b" ")[2])
    text = b"\n".join(lines) + b"\n"
    return text if lines and lines[0].startswith(b"-----BEGIN SSH SIGNATURE-----") else None


@dataclass(frozen=True)
class PushVerdict:
    """One ref's line of `git push --porcelain`: flag, destination ref and git's summary."""

    flag: str  # " " fast-forward, "+" forced, "-" deleted, "*" new, "!" rejected, "=" up to date
    ref: str
    summary: str

    @property
    def secondary(self) -> bool:
        """Refused only because another ref of the same atomic push was."""
        return self.flag == "!" and "atomic" in self.summary and "(" in self.summary

    @property
    def refused(self) -> bool:
        """The receiving side said no for a reason other than a lost race: its pre-receive or
        update hook, a protected branch, a repository rule. Retrying cannot change that."""
        if self.flag != "!" or "[remote rejected]" not in self.summary or self.secondary:
            return False
        return not any(race in self.summary for race in _REMOTE_RACES)


# What a receiving git says when the ref moved between its advertisement and the update (a
# race that planning again on the new tip resolves), as opposed to a refusal.
_REMOTE_RACES = (
    "failed to update ref",
    "failed to lock",
    "cannot lock ref",
    "incorrect old value",
    "stale info",
    "fetch first",
    "non-fast-forward",
)


def push_verdicts(porcelain: str) -> list[PushVerdict]:
    """The per-ref lines of `git push --porcelain` output (`<flag>\t<from>:<to>\t<summary>`)."""
    verdicts = []
    for line in porcelain.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and len(fields[0]) == 1 and ":" in fields[1]:
            verdicts.append(PushVerdict(fields[0], fields[1].rpartition(":")[2], fields[2]))
    return verdicts


def _scratch_in(folder: Path | None, data: bytes, prefix: str) -> Path | None:
    """A new file holding `data` in `folder` (None: the system's temporary folder), or None
    when the file system refuses (the partial file removed)."""
    name = None
    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError:
        if name is not None:
            Path(name).unlink(missing_ok=True)
        return None
    return Path(name)


def _walks_history(args: tuple[str, ...]) -> bool:
    """Whether a git command walks commit history (rather than reading named objects)."""
    rest = list(args)
    while len(rest) >= 2 and rest[0] == "-c":  # `-c key=value` before the command
        rest = rest[2:]
    if not rest:
        return False
    command, options = rest[0], rest[1:]
    if command in ("log", "rev-list"):
        return not any(o.startswith("--no-walk") for o in options)
    if command == "merge-base":
        return True
    if command in ("for-each-ref", "branch", "tag"):
        return any(o in ("--contains", "--merged", "--no-merged", "--no-contains") for o in options)
    return False


def _trust_args(allowed_signers: Path | None) -> list[str]:
    """Pin SSH verification to `allowed_signers`; None trusts no key (an empty file)."""
    return ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers or os.devnull}"]


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else None


_IDENTITY: dict[str, Any] = {}


def _writer() -> dict[str, Any]:
    """Who this process is, for its notes: a PID alone is reused (containers hand a restarted
    writer its predecessor's PID), so its start time, the host and a random nonce come with it.
    Worked out again in a forked child, which is another process."""
    if _IDENTITY.get("pid") != os.getpid():
        _IDENTITY.update(
            pid=os.getpid(),
            start=_process_start(os.getpid()),
            host=socket.gethostname(),
            nonce=uuid.uuid4().hex,
        )
    return dict(_IDENTITY)


def _writer_alive(writer: Any, note: dict[str, Any]) -> bool:
    """Whether a note's writer may still run, where its lock cannot say (no fcntl).

    Notes written before writers recorded who they were carry only a PID.
    """
    if not isinstance(writer, dict):
        return _alive(int(note.get("pid") or 0))
    pid, me = int(writer.get("pid") or 0), _writer()
    if writer.get("host") != me["host"]:
        return True  # another machine's writer: nothing here can tell
    if pid == me["pid"]:
        return bool(writer.get("nonce") == me["nonce"])
    if not _alive(pid):
        return False
    start = _process_start(pid)
    return start is None or writer.get("start") in (None, start)


def _lock(handle: IO[str], *, wait: bool) -> bool | None:
    """An exclusive advisory lock on an open file, held until it is closed (or its process
    ends): False when another process holds it and `wait` is False; None where there are no
    such locks (no fcntl)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _worktree_blob(path: Path) -> str | None:
    """The blob id of a work-tree file, None when there is none; a symlink or a folder there
    gets a marker no blob id equals."""
    if path.is_symlink():
        return "symlink"
    if not path.exists():
        return None
    if not path.is_file():
        return "not a file"
    return blob_id(path.read_bytes())


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An advisory lock between modelctl processes (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def blob_id(data: bytes) -> str:
    """The id git gives `data` as a blob (SHA-1 repositories)."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


SIGNING_HINT = (
    "configure a signing key for git, e.g. for SSH: git config --global gpg.format ssh && "
    "git config --global user.signingkey ~/.ssh/id_ed25519.pub (see docs/signing.md)"
)
