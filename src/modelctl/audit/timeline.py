"""`modelctl timeline`: every binding interval as rows, for joins in DuckDB or a warehouse.

One row per (route, stage, binding entry) per interval `[valid_from, valid_to)`: primary
targets with their weight, fallback steps with their position. `valid_to` is empty for what
is live now. Times are UTC ISO 8601.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from modelctl.lifecycle import history
from modelctl.registry.snapshot import Location, check_route, routes_at

COLUMNS = (
    "route", "stage", "role", "model", "prompt", "weight", "fallback_position",
    "valid_from", "valid_to", "commit", "tag", "action",
)  # fmt: skip


@dataclass
class Row:
    route: str
    stage: str
    role: str  # target or fallback
    model: str
    prompt: str | None
    weight: int | None
    fallback_position: int | None
    valid_from: str
    valid_to: str | None
    commit: str
    tag: str | None
    action: str


def rows(loc: Location, route: str | None = None) -> Iterator[Row]:
    """Every interval of `route` (default: every route), after checking what was asked for:
    the problems of a bad question surface before any output is written."""
    _branch, tip = history.branch_tip(loc)
    if route:
        records = {route: history.route_records(loc, route, tip)}  # checks the name
        if not records[route]:
            check_route(loc, tip, route)
        names = [route]
    else:
        names = list(routes_at(loc, tip)[1])
        records = history.all_route_records(loc, tip)
    return _rows(names, records)


def _rows(names: list[str], records: dict[str, list[history.Record]]) -> Iterator[Row]:
    for name in sorted(names):
        by_stage: dict[str, list[history.Event]] = {}
        for event in history.events(name, records.get(name, [])):
            by_stage.setdefault(event.stage, []).append(event)
        for stage, stage_events in sorted(by_stage.items()):
            for i, event in enumerate(stage_events):
                if event.binding is None:
                    continue
                until = history.iso(stage_events[i + 1].time) if i + 1 < len(stage_events) else None
                for target in event.binding.get("targets", []):
                    yield Row(
                        name, stage, "target", target["model"], target.get("prompt"),
                        target["weight"], None, event.when, until, event.commit, event.tag,
                        event.action,
                    )  # fmt: skip
                for position, step in enumerate(event.binding.get("fallback", []), 1):
                    yield Row(
                        name, stage, "fallback", step["model"], step.get("prompt"), None,
                        position, event.when, until, event.commit, event.tag, event.action,
                    )  # fmt: skip


def write(rows_: Iterator[Row], fmt: str) -> Iterator[str]:
    """Text chunks in `csv` or `jsonl`."""
    if fmt == "jsonl":
        for row in rows_:
            yield json.dumps(asdict(row)) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows_:
        writer.writerow(["" if v is None else v for v in asdict(row).values()])
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
