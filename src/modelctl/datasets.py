"""Dataset files: digest, size, row count and row schema of a JSONL file, streamed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    cohorts: dict[str, int] = field(default_factory=dict)


def _type_name(value: object) -> str:
    return _JSON_TYPES.get(type(value), "string")


def inspect_jsonl(
    path: Path, *, label: str | None = None, on_bytes: Callable[[int], None] | None = None
) -> DatasetStats:
    """Hash and parse a JSONL dataset in one streaming pass.

    Every non-empty line must be a JSON object with an `id`; ids must be unique. Field types are
    unioned over all rows (`integer|null`). Raises ManifestError listing the first bad lines.
    """
    label = label or str(path)
    digest = hashlib.sha256()
    size = rows = 0
    types: dict[str, set[str]] = {}
    cohorts: dict[str, int] = {}
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
        cohort = row.get("cohort")
        if isinstance(cohort, str):
            cohorts[cohort] = cohorts.get(cohort, 0) + 1

    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
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
    return DatasetStats(digest.hexdigest(), size, rows, schema, cohorts)


def sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
