"""Dataset files: digest, size, row count and row schema of a JSONL file, streamed."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl.errors import ManifestError, Problem

_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
    type(None): "null",
}
CHUNK = 1 << 20


@dataclass
class DatasetStats:
    sha256: str
    bytes: int
    rows: int
    schema: dict[str, str] = field(default_factory=dict)


def _type_name(value: object) -> str:
    return _JSON_TYPES.get(type(value), "string")


def inspect_jsonl(path: Path) -> DatasetStats:
    """Hash and parse a JSONL dataset in one streaming pass.

    Every non-empty line must be a JSON object with an `id`; ids must be unique. Field types are
    unioned over all rows (`integer|null`). Raises ManifestError listing the first bad lines.
    """
    label = str(path)
    digest = hashlib.sha256()
    size = rows = 0
    types: dict[str, set[str]] = {}
    ids: set[str] = set()
    problems: list[Problem] = []
    pending = b""
    line_no = 0

    def take(line: bytes) -> None:
        nonlocal rows
        if not line.strip():
            return
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(label, "", f"not valid JSON: {exc.msg}", line_no))
            return
        except UnicodeDecodeError:
            problems.append(Problem(label, "", "not valid UTF-8", line_no))
            return
        if not isinstance(row, dict):
            problems.append(Problem(label, "", "each line must be a JSON object", line_no))
            return
        rid = row.get("id")
        if not isinstance(rid, str | int) or isinstance(rid, bool):
            problems.append(
                Problem(label, "id", "every row needs an id (string or integer)", line_no)
            )
            return
        key = str(rid)
        if key in ids:
            problems.append(Problem(label, "id", f"duplicate id {key!r}", line_no))
        ids.add(key)
        rows += 1
        for name, value in row.items():
            types.setdefault(name, set()).add(_type_name(value))

    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                line_no += 1
                take(line)
                if len(problems) >= 20:
                    raise ManifestError(problems, hint="fix these rows (first 20 shown)")
    if pending:
        line_no += 1
        take(pending)
    if problems:
        raise ManifestError(problems)
    schema = {name: "|".join(sorted(kinds)) for name, kinds in sorted(types.items())}
    return DatasetStats(digest.hexdigest(), size, rows, schema)


_LFS_POINTER = re.compile(
    rb"version https://git-lfs\.github\.com/spec/v1\n(?:[a-z0-9.-]+ [^\n]*\n)*?"
    rb"oid sha256:([0-9a-f]{64})\n(?:[a-z0-9.-]+ [^\n]*\n)*?size ([0-9]+)\n"
)
_POINTER_MAX = 1024  # LFS pointers are about 130 bytes


def content_digest(content: bytes) -> tuple[str, int]:
    """(sha256, size) of a file's content. A Git LFS pointer stands for its content, whose
    sha256 and size it records: a registry keeping datasets in LFS is checked without them."""
    if len(content) < _POINTER_MAX and (match := _LFS_POINTER.match(content)):
        return match.group(1).decode(), int(match.group(2))
    return hashlib.sha256(content).hexdigest(), len(content)


def file_digest(file: Path) -> tuple[str, int] | None:
    """`content_digest` of a file in the work tree, read in chunks (datasets can be large);
    None when there is no regular file there."""
    if not file.is_file() or file.is_symlink():
        return None
    with file.open("rb") as fh:
        head = fh.read(_POINTER_MAX)
        if len(head) < _POINTER_MAX:
            return content_digest(head)
        digest, size = hashlib.sha256(head), len(head)
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass
class DatasetCheck:
    ref: str
    uri: str
    status: str  # ok, mismatch, missing, remote
    detail: str = ""


def verify_datasets(snapshot: Any, root: Path, wanted: list[str]) -> list[DatasetCheck]:
    """Recompute digests of local dataset files; remote ones are reported as not checkable."""
    from modelctl.registry import refs

    manifests = [e.data for e in snapshot.artifacts("datasets") if e.data is not None]
    if wanted:
        manifests = [snapshot.require(text, refs.Kind.DATASET) for text in wanted]
    out = []
    for data in manifests:
        name = f"{data['name']}@{data['version']}"
        uri = data["uri"]
        if "://" in uri:
            out.append(
                DatasetCheck(
                    name,
                    uri,
                    "remote",
                    "remote dataset: its digest is recorded as given and cannot be checked here",
                )
            )
            continue
        found = file_digest(root / uri)
        if found is None:
            out.append(DatasetCheck(name, uri, "missing", f"{uri} does not exist"))
            continue
        digest, size = found
        if digest != data["sha256"]:
            out.append(
                DatasetCheck(
                    name, uri, "mismatch", f"sha256 is {digest}, the manifest pins {data['sha256']}"
                )
            )
        elif data.get("bytes") is not None and size != data["bytes"]:
            out.append(
                DatasetCheck(
                    name, uri, "mismatch", f"{size} bytes, the manifest says {data['bytes']}"
                )
            )
        else:
            out.append(DatasetCheck(name, uri, "ok", f"{size:,} bytes"))
    return out
