"""Every table, tree and `--json` payload. stdout carries data; stderr carries messages.

`--json` prints the same result object the table shows, as JSON, on stdout. Human output uses
rich; colour follows the terminal (and NO_COLOR).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime
from enum import Enum
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich loads on first use: `--json` output never needs it
    from rich.console import Console
    from rich.table import Table

_out: Console | None = None
_err: Console | None = None
# What rich would read as markup: `[` followed by a tag-like run up to `]`.
_MARKUP = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
# What a terminal would act on rather than show: C0 and C1 controls but newline and tab, DEL,
# and characters that reorder or hide text (bidi controls, zero-width, line separators, lone
# surrogates).
_UNSHOWN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _visible(char: str) -> str:
    if char in "\n\t" or unicodedata.category(char) not in _UNSHOWN:
        return char
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def printable(text: str) -> str:
    """`text` with every character a terminal would act on (an escape sequence from a
    hand-made commit's reason, a bidi override) written as a visible `\\xNN`/`\\uNNNN`."""
    if text.isprintable():  # the common case: nothing to look at one by one
        return text
    return "".join(_visible(char) for char in text)


def escape(text: str) -> str:
    """Text as rich prints it literally (a file path with `[brackets]`, a user's reason), with
    nothing in it a terminal would act on (see `printable`)."""
    return _MARKUP.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", printable(text))


def out() -> Console:
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False, soft_wrap=False)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False)
    return _err


_PLAIN = (str, int, float, bool, type(None))


def jsonable(value: Any) -> Any:
    """Plain JSON data from dataclasses, pydantic models, paths, enums and datetimes."""
    if type(value) in _PLAIN:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return value.as_posix()
    return value


def _default(value: Any) -> Any:
    """One level of `jsonable`, for json's encoder, which walks dicts and lists itself."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    converted = jsonable(value)
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON data")
    return converted


def dumps(payload: Any, indent: int | None = None) -> str:
    """JSON text of `payload` as `jsonable` would make it: encoded in C, with only the values
    json does not know converted in Python (a whole status of 1,000 routes: 60 -> 15 ms)."""
    try:
        return json.dumps(payload, indent=indent, ensure_ascii=False, default=_default)
    except TypeError:  # e.g. a key json cannot take: the slow walk, which makes keys strings
        return json.dumps(jsonable(payload), indent=indent, ensure_ascii=False)


def emit_text(text: str) -> None:
    """Print JSON text made elsewhere (a cache), as `emit_json` would print its payload."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit_json(payload: Any) -> None:
    # Indented for a person at a terminal; compact for a pipe.
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(dumps(payload, indent) + "\n")
    sys.stdout.flush()


def message(text: str) -> None:
    err().print(text)


def success(text: str) -> None:
    err().print(f"[green]✓[/green] {text}")


def warn(text: str) -> None:
    err().print(f"[yellow]warning:[/yellow] {escape(text)}")


def error(text: str, hint: str | None = None) -> None:
    err().print(f"[bold red]error:[/bold red] {escape(text)}")
    if hint:
        err().print(f"[dim]hint:[/dim] {escape(hint)}")


def in_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> Table:
    from rich.table import Table

    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None)
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*("" if c is None else escape(str(c)) for c in row))
    return t


def print_table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    out().print(table(title, columns, rows))


# --- per-command views -------------------------------------------------------------------------


def init_result(result: Any) -> None:
    success(f"created registry at {result.root}")
    if result.created_repo:
        message("  initialised a new git repository there")
    if result.committed:
        message(f"  committed as {result.commit[:12]}")
    else:
        message("  files written, not committed (--no-commit)")
    message("next: modelctl add model NAME VERSION --provider P --provider-model ID")


def add_result(result: Any) -> None:
    if result.committed:
        signed = "signed " if result.signed else ""
        success(f"added {result.ref} as {signed}commit {result.commit[:12]} ({result.path})")
    else:
        success(f"wrote {result.path} (not committed)")
    for text in result.warnings:
        warn(text)


def list_rows(source: str, rows: list[Any]) -> None:
    if not rows:
        message(f"nothing in the registry at {source}")
        return
    print_table(
        None,
        ["KIND", "NAME", "VERSION", "SUMMARY"],
        ([r.kind, r.name, r.version or "", r.summary] for r in rows),
    )
    message(f"[dim]{len(rows)} item(s) at {escape(source)}[/dim]")


def show_result(result: Any) -> None:
    from modelctl.registry import yamlio

    o = out()
    o.print(
        f"[bold]{escape(result.ref)}[/bold]  "
        f"[dim]{escape(result.path)} at {escape(result.source)}[/dim]"
    )
    if result.data is not None:
        o.print(escape(yamlio.dump(result.data)).rstrip())
    for problem in result.problems:
        o.print(f"[red]problem:[/red] {escape(problem)}")
    if result.used_by:
        o.print("\n[bold]used by[/bold]")
        for usage in result.used_by:
            o.print(f"  {escape(usage.path)}  [dim]{escape(usage.field)}[/dim]")
    elif result.kind in ("model", "prompt", "judge", "dataset"):
        o.print("\n[dim]not referenced by any other manifest[/dim]")


def problems(items: list[Any], prefix: str = "") -> None:
    for p in items:
        where = f"{p.path}:{p.line}" if p.line else p.path
        field = f" [cyan]{escape(p.field)}[/cyan]:" if p.field else ""
        out().print(f"[bold]{escape(where)}[/bold]:{field} {escape(p.message)}")
    if in_github_actions():
        for p in items:
            line = f",line={p.line}" if p.line else ""
            text = f"{p.field}: {p.message}" if p.field else p.message
            where = f"file={_gh(prefix + p.path, prop=True)}{line},title=modelctl validate"
            sys.stdout.write(f"::error {where}::{_gh(text)}\n")


def _gh(text: str, *, prop: bool = False) -> str:
    """Escape a workflow-command value (a property value also escapes `:` and `,`)."""
    text = printable(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def validate_result(result: Any) -> None:
    if result.problems:
        problems(result.problems, result.prefix)
        err().print(
            f"[red]✗[/red] {len(result.problems)} problem(s) in {result.files} file(s) "
            f"({escape(result.source)})"
        )
    else:
        base = f", immutability checked against {result.base}" if result.base else ""
        success(f"{result.files} file(s) valid ({escape(result.source)}{escape(base)})")
    for path in result.skipped:
        message(f"[dim]skipped {escape(path)}: outside the registry[/dim]")


def demo_intro(directory: str) -> None:
    out().print(
        "[bold]modelctl demo[/bold]: a fresh registry built from the bundled example in "
        + escape(directory)
    )
    out().print(
        "[dim]Each step runs the real command; type the same in that folder to follow along.[/dim]"
    )


def demo_step(index: int, step: Any) -> None:
    import shlex

    o = out()
    o.print()
    o.rule(f"[bold]{index}. {escape(step.title)}[/bold]", align="left")
    if step.note:
        o.print(f"[dim]({escape(step.note)})[/dim]")
    o.print(f"[bold cyan]$ {escape(shlex.join(step.argv))}[/bold cyan]")
    if step.output:
        o.print(escape(step.output), soft_wrap=True)
    if step.expect != 0:
        o.print(f"[dim]exit code {step.exit_code}, as expected[/dim]")


def demo_done(result: Any) -> None:
    out().print()
    success(f"demo finished: {len(result.steps)} steps; the registry is at {result.directory}")
    message(f"[dim]cd {escape(result.directory)} && modelctl list[/dim]")


# --- lifecycle ---------------------------------------------------------------------------------


def _gate_lines(results: list[Any]) -> None:
    for gate in results:
        mark = "[green]✓[/green]" if gate.passed else "[red]✗[/red]"
        err().print(f"  {mark} {escape(gate.gate)}: {escape(gate.detail)}")


def lifecycle_result(result: Any) -> None:
    where = f"{result.route} {result.stage}"
    if result.noop:
        success(f"{where} already serves {_summary(result.binding)}; nothing to do")
        return
    _gate_lines(result.gates)
    if result.dry_run:
        success(f"dry run: {result.action} {where} would make it serve {_summary(result.binding)}")
        message(f"  now: {escape(_summary(result.previous))}")
        _restore_lines(result.restore)
        return
    signed = "signed " if result.signed else ""
    commit = (result.commit or "")[:12]
    success(f"{result.action} {where}: {signed}commit {commit}, tag {result.tag}")
    message(f"  was: {escape(_summary(result.previous))}")
    message(f"  now: {escape(_summary(result.binding))}")
    if result.trailers.get("reason"):
        message(f"  reason: {escape(result.trailers['reason'])}")
    _restore_lines(result.restore)
    if result.pushed:
        message(f"  pushed to {escape(result.pushed)} (branch and tag, atomically)")
    if result.attempts > 1:
        message(
            f"  [dim]{result.attempts} attempts: another writer moved the branch meanwhile[/dim]"
        )
    for text in result.warnings:
        warn(text)


def _restore_lines(restore: Any) -> None:
    """Which event a rollback restores, why, and why it went past the ones in between."""
    if restore is None:
        return
    message(f"  restores {escape(restore.event)} ({restore.time}): {escape(restore.why)}")
    for item in restore.skipped:
        message(f"  [dim]skipped {escape(item.event)} ({item.action}): {escape(item.why)}[/dim]")


def _summary(binding: Any) -> str:
    from modelctl.lifecycle.gates import summary

    return summary(binding)


def _since(event: Any) -> str:
    if event is None:
        return ""
    who = event.tag or f"an unattested change ({event.commit[:8]})"
    return f"since {who}: {event.action}, {event.time}, {event.author}"


def status_result(result: Any) -> None:
    o = out()
    for route in result.routes:
        o.print(f"[bold]{escape(route.route)}[/bold]")
        width = max((len(s.stage) for s in route.stages), default=5)
        for stage in route.stages:
            serves = escape(stage.summary) if stage.binding else "[dim]nothing[/dim]"
            o.print(f"  {escape(stage.stage):<{width}}  {serves}")
            if stage.canary is not None:
                c = stage.canary
                share = f"canary {c.percent}%" if c.percent is not None else "canary"
                o.print(
                    f"  {'':<{width}}  [yellow]{share}[/yellow] of {escape(c.candidate)}"
                    + (f" [dim](started by {escape(c.started)})[/dim]" if c.started else "")
                )
            if stage.event is not None:
                o.print(f"  {'':<{width}}  [dim]{escape(_since(stage.event))}[/dim]")
                if stage.event.reason:
                    o.print(f"  {'':<{width}}  [dim]reason: {escape(stage.event.reason)}[/dim]")
        for problem in route.problems:
            warn(problem)
    message(f"[dim]{len(result.routes)} route(s) at {result.branch} ({result.commit[:7]})[/dim]")


def _sig(letter: str | None, signer: str | None) -> str:
    if letter is None:
        return "signature not checked"
    names = {
        "G": "signed",
        "N": "unsigned",
        "B": "BAD signature",
        "U": "signed by an unknown key",
        "E": "signature not checkable",
    }
    text = names.get(letter, f"signature {letter}")
    return f"{text} by {signer}" if signer else text


def history_result(result: Any) -> None:
    o = out()
    title = result.route + (f" {result.stage}" if result.stage else "")
    o.print(
        f"[bold]{escape(title)}[/bold] [dim]({len(result.events)} events on {result.branch})[/dim]"
    )
    for e in result.events:
        seq = f"#{e.seq}" if e.seq is not None else "(unattested)"
        action = "[red]unattested[/red]" if e.action == "unattested" else escape(e.action)
        o.print(
            f"{escape(e.stage)} {seq} {action}  {e.time}  {escape(e.author)}  "
            f"[dim]{escape(_sig(e.signature, e.signer))}[/dim]"
        )
        o.print(f"    {escape(e.summary)}")
        detail = []
        if e.source_stage:
            detail.append(f"from {e.source_stage}")
        if e.canary:
            detail.append(f"canary {e.canary}%")
        if e.restores:
            detail.append(f"restores {e.restores}")
        if e.reason:
            detail.append(f"reason: {e.reason}")
        if e.detected_at:
            detail.append(f"detected {e.detected_at}")
        if e.eval_id:
            detail.append(f"eval {e.eval_id}")
        detail.append(f"commit {e.commit[:12]}")
        o.print(f"    [dim]{escape('; '.join(detail))}[/dim]")


def resolve_result(result: Any) -> None:
    o = out()
    o.print(f"[bold]{escape(result.route)} {escape(result.stage)}[/bold] at {escape(result.at)}")
    if result.event is None:
        o.print("served nothing then")
        return
    e = result.event
    o.print(f"served: {escape(result.summary)}")
    made = e.tag or "an unattested change"
    o.print(f"made live by {escape(made)} ({e.action}) in commit {e.commit} at {e.time}")
    o.print(
        f"author: {escape(e.author)} <{escape(e.email)}>; signature: {_sig(e.signature, e.signer)}"
    )
    if e.eval_id:
        o.print(f"gated by eval {escape(e.eval_id)}")


def verify_result(result: Any) -> None:
    for f in result.findings:
        out().print(f"[red]✗[/red] {escape(f.check)}: {escape(f.where)}: {escape(f.message)}")
        if in_github_actions():
            sys.stdout.write(
                f"::error title=modelctl verify::{_gh(f'{f.check}: {f.where}: {f.message}')}\n"
            )
    # Notes repeat (every unsigned commit in an optional-signing registry): count them instead.
    grouped: dict[tuple[str, str], list[str]] = {}
    for f in result.notes:
        grouped.setdefault((f.check, f.message), []).append(f.where)
    for (check, text), where in grouped.items():
        sample = ", ".join(w.removeprefix("refs/tags/")[:40] for w in where[:2])
        more = f" and {len(where) - 2} more" if len(where) > 2 else ""
        out().print(
            f"[yellow]note[/yellow] {escape(check)}: {len(where)} x {escape(text)} ({escape(sample)}{more})"
        )
    rate = result.lifecycle_commits / result.seconds if result.seconds else 0
    summary = (
        f"{result.commits} commit(s), {result.lifecycle_commits} lifecycle, {result.tags} tag(s) "
        f"on {result.branch} in {result.seconds:.2f}s"
    )
    if result.findings:
        err().print(f"[red]✗[/red] {len(result.findings)} finding(s); {summary}")
    else:
        success(
            f"history verified: {summary}" + (f" ({rate:.0f} lifecycle commits/s)" if rate else "")
        )


# --- evals and datasets ------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:+.1%}" if value else "0.0%"


def eval_result(result: Any) -> None:
    run = result.run
    rows = []
    for comp in [run["overall"], *run.get("comparisons", [])]:
        rows.append(
            [
                comp.get("evaluator") or "all",
                comp.get("cohort") or "(all)",
                str(comp["n"]),
                f"{comp['candidate']['rate']:.1%}",
                f"{comp['baseline']['rate']:.1%}",
                _pct(comp["delta"]),
                f"[{comp['ci_low']:+.1%}, {comp['ci_high']:+.1%}]",
                comp["status"],
            ]
        )
    print_table(
        f"eval {run['id']}: {run['route']} -> {run['stage']} on {run['dataset']['ref']}",
        ["EVALUATOR", "COHORT", "N", "CANDIDATE", "BASELINE", "DELTA", "CI", "STATUS"],
        rows,
    )
    for comp in [run["overall"], *run.get("comparisons", [])]:
        if comp["status"] != "pass":
            who = f"{comp.get('evaluator') or 'all'}/{comp.get('cohort') or '(all)'}"
            message(f"  [red]{escape(who)}[/red]: {escape(comp['reason'])}")
    if run.get("missing"):
        message(f"  missing outputs: {run['missing']}")
    where = f"committed {result.commit[:12]}" if result.commit else "written, not committed"
    if run["verdict"] == "pass":
        success(f"verdict: pass ({result.path}, {where})")
    else:
        err().print(f"[red]✗[/red] verdict: fail ({escape(result.path)}, {where})")
    for text in result.warnings:
        warn(text)


def gate_report(results: list[Any], *, passed: bool, noop: bool = False) -> None:
    _gate_lines(results)
    if noop:
        success("the stage already serves this binding; promote would do nothing")
    elif passed:
        success("promote would pass its gates")
    else:
        err().print("[red]✗[/red] promote would be refused")


def dataset_checks(checks: list[Any]) -> None:
    marks = {"ok": "[green]ok[/green]", "remote": "[yellow]remote[/yellow]"}
    for check in checks:
        mark = marks.get(check.status, f"[red]{check.status}[/red]")
        out().print(f"{mark} {escape(check.ref)} {escape(check.uri)}: {escape(check.detail)}")


# --- traces and the report ---------------------------------------------------------------------


def _t(epoch: float | None) -> str:
    if epoch is None:
        return ""
    from modelctl.lifecycle.history import iso

    return iso(int(epoch))


def coverage_payload(result: Any) -> dict[str, Any]:
    groups = [
        {
            "route": g.route,
            "stage": g.stage,
            "provider": g.provider,
            "model_string": g.model_string,
            "model": g.model,
            "prompt": g.prompt,
            "reason": g.reason,
            "count": g.count,
            "first": _t(g.first) or None,
            "last": _t(g.last) or None,
        }
        for g in result.blind_spots
    ]
    return {
        "spans": result.spans,
        "mode": "strict" if result.strict else "name",
        "coverage_pct": round(result.coverage_pct, 4),
        "name": {"covered": result.name_covered, "pct": round(result.name_pct, 4)},
        "strict": {"covered": result.strict_covered, "pct": round(result.strict_pct, 4)},
        "stage": result.stage_filter,
        "blind_spots": groups,
        "fallback": [
            {
                "route": r.route,
                "stage": r.stage,
                "requests": r.requests,
                "fallbacks": r.fallbacks,
                "per_million": round(r.per_million, 1),
            }
            for r in result.fallback_rates
        ],
        "fallback_conflicts": result.conflicts,
        "in_grace": result.in_grace,
        "waiting_evicted": result.waiting_evicted,
        "sources": result.sources,
        "read": jsonable(result.read),
    }


def coverage_result(result: Any, min_coverage: float | None) -> None:
    o = out()
    mode = "strict" if result.strict else "name-level"
    o.print(
        f"[bold]{result.coverage_pct:.2f}%[/bold] {mode} trace-to-version coverage of "
        f"{result.spans:,} model call(s)"
        + (f" on stage {escape(result.stage_filter)}" if result.stage_filter else "")
    )
    o.print(f"[dim]name-level {result.name_pct:.2f}%, strict {result.strict_pct:.2f}%[/dim]")
    if result.blind_spots:
        print_table(
            "blind spots",
            ["REASON", "ROUTE", "STAGE", "MODEL STRING", "VERSION", "PROMPT", "SPANS"],
            (
                [
                    g.reason,
                    g.route or "-",
                    g.stage,
                    g.model_string or "-",
                    g.model or "-",
                    g.prompt or "",
                    f"{g.count:,}",
                ]
                for g in result.blind_spots[:50]
            ),
        )
    if result.fallback_rates:
        print_table(
            "fallbacks",
            ["ROUTE", "STAGE", "REQUESTS", "FALLBACKS", "PER MILLION"],
            (
                [r.route, r.stage, f"{r.requests:,}", f"{r.fallbacks:,}", f"{r.per_million:,.0f}"]
                for r in result.fallback_rates
            ),
        )
    read = result.read
    extra = []
    if read.bad_lines:
        extra.append(f"{read.bad_lines} bad line(s) skipped")
    if read.duplicates:
        extra.append(f"{read.duplicates} duplicate span(s) ignored")
    if read.bad_times:
        extra.append(f"{read.bad_times} unusable time(s)")
    if read.unknown_unit_times:
        extra.append(
            f"{read.unknown_unit_times:,} numeric time(s) of unknown unit read as no time "
            "(say which with --epoch-unit s|ms|us|ns)"
        )
    if result.in_grace:
        extra.append(f"{result.in_grace:,} call(s) covered by --grace or --skew only")
    if result.waiting_evicted:
        extra.append(f"{result.waiting_evicted:,} call(s) decided before their ancestors arrived")
    message(
        f"[dim]{read.spans:,} span(s) in {read.files} file(s)"
        + (f"; {'; '.join(extra)}" if extra else "")
        + "[/dim]"
    )
    if min_coverage is not None:
        if not result.spans:
            err().print(f"[red]✗[/red] no model call was counted: nothing meets {min_coverage}%")
        elif not result.meets(min_coverage):
            err().print(
                f"[red]✗[/red] coverage {result.coverage_pct:.2f}% is below {min_coverage}%"
            )
        else:
            success(f"coverage meets {min_coverage}%")


def explanation(result: Any) -> None:
    o = out()
    o.print(f"[bold]trace {escape(result.trace_id)}[/bold]")
    o.print(f"route {escape(result.route or '(unknown)')}, stage {escape(result.stage)}")
    o.print(
        f"answered by {escape(result.model or '(unresolved)')}"
        + (f" with prompt {escape(result.prompt)}" if result.prompt else "")
        + f" [dim](reported as {escape(result.model_string or '-')})[/dim]"
    )
    if result.fallback:
        o.print(f"[yellow]a fallback[/yellow] ({escape(result.fallback_source or '')})")
    if not result.covered:
        o.print(f"[red]not covered:[/red] {escape(result.reason or '')}")
    o.print(f"binding live then: {escape(result.binding)}")
    if result.event:
        e = result.event
        o.print(
            f"made live by {escape(e['tag'] or 'an unattested change')} ({e['action']}) in commit "
            f"{e['commit'][:12]} at {e['time']} by {escape(e['author'])}; "
            f"{_sig(e['signature'], e['signer'])}"
        )
        if e.get("reason"):
            o.print(f"reason: {escape(e['reason'])}")
    if result.eval_run:
        run = result.eval_run
        o.print(
            f"gated by eval {escape(run['id'])}: {run['verdict']} on dataset {escape(run['dataset'])}"
        )
    if result.dataset:
        d = result.dataset
        o.print(
            f"dataset {d['name']}@{d['version']}: {d.get('rows')} rows, snapshot {d.get('snapshot_at')}, sha256 {str(d['sha256'])[:12]}"
        )
    if len(result.attempts) > 1:
        o.print("[bold]attempts[/bold]")
        for a in result.attempts:
            mark = "→" if a.answered else ("✗" if a.error else " ")
            o.print(
                f"  {mark} {a.time or '-'} {escape(a.model_string or '-')} ({escape(a.model or 'unresolved')})"
                + (" failed" if a.error else "")
            )


def _fmt(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"


def _drift_detail(d: Any) -> str:
    if d.eval_id is None:
        return f"what {d.stage} serves was not gated by an eval"
    if d.dataset is None:
        return f"eval {d.eval_id} is not in the registry"
    return f"{d.dataset}, eval {d.eval_id}"


def report_markdown(result: Any) -> None:
    lines = [f"## modelctl report ({result.branch} @ {result.commit[:7]})", ""]
    lines += ["| signal | value |", "|---|---|"]
    if result.coverage:
        c = result.coverage
        lines.append(
            f"| trace-to-version coverage | {c['strict_pct']}% strict, {c['name_pct']}% by name ({c['spans']:,} calls) |"
        )
    else:
        lines.append("| trace-to-version coverage | no traces given |")
    lines.append(
        f"| time to rollback | p50 {_fmt(result.rollback_p50_minutes, ' min')}, p95 {_fmt(result.rollback_p95_minutes, ' min')} ({len(result.rollbacks)} rollbacks) |"
    )
    if result.traffic_p50_minutes is not None:
        lines.append(
            f"| time to restored traffic | p50 {result.traffic_p50_minutes} min, p95 {result.traffic_p95_minutes} min |"
        )
    lines.append(
        f"| regression-eval pass rate | {_fmt(result.eval_pass_rate, '%')} of {len(result.releases)} releases to {result.production_stage} |"
    )
    for f in result.fallback:
        lines.append(
            f"| fallback hit rate {f['route']} {f['stage']} | {f['per_million']:,} per million ({f['fallbacks']:,} of {f['requests']:,}) |"
        )
    for d in result.drift:
        lines.append(f"| dataset drift {d.route} | {_fmt(d.days, ' days')} ({_drift_detail(d)}) |")
    if result.coverage and result.coverage["blind_spots"]:
        lines += [
            "",
            "### Blind spots",
            "",
            "| reason | route | stage | model | version | spans |",
            "|---|---|---|---|---|---|",
        ]
        for b in result.coverage["blind_spots"]:
            lines.append(
                f"| {b['reason']} | {b['route'] or '-'} | {b['stage']} | {b['model'] or '-'} | {b['version'] or '-'} | {b['count']:,} |"
            )
    if result.releases:
        lines += [
            "",
            f"### Releases to {result.production_stage}",
            "",
            "| route | event | eval | verdict | candidate | baseline |",
            "|---|---|---|---|---|---|",
        ]
        for r in result.releases:
            cand = f"{r.candidate_rate:.1%}" if r.candidate_rate is not None else "-"
            base = f"{r.baseline_rate:.1%}" if r.baseline_rate is not None else "-"
            lines.append(
                f"| {r.route} | {r.tag} | {r.eval_id or '-'} | {r.verdict or 'not gated'} | {cand} | {base} |"
            )
    if result.rollbacks:
        lines += [
            "",
            "### Rollbacks",
            "",
            "| route | stage | event | detected | rolled back | minutes |",
            "|---|---|---|---|---|---|",
        ]
        for r in result.rollbacks:
            lines.append(
                f"| {r.route} | {r.stage} | {r.tag} | {r.detected_at or '-'} | {r.rolled_back_at} | {_fmt(r.minutes) if r.problem is None else 'not counted: ' + r.problem} |"
            )
    text = printable("\n".join(lines) + "\n")
    sys.stdout.write(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as fh:  # noqa: PTH123 (a path from the environment)
            fh.write(text)


def report_table(result: Any) -> None:
    rows = []
    if result.coverage:
        c = result.coverage
        rows.append(
            [
                "trace-to-version coverage",
                f"{c['strict_pct']}% strict, {c['name_pct']}% by name",
                f"{c['spans']:,} calls",
            ]
        )
    else:
        rows.append(["trace-to-version coverage", "-", "pass --traces FILE"])
    rows.append(
        [
            "time to rollback",
            f"p50 {_fmt(result.rollback_p50_minutes, ' min')}, p95 {_fmt(result.rollback_p95_minutes, ' min')}",
            f"{len(result.rollbacks)} rollback(s)",
        ]
    )
    for r in result.rollbacks:
        if r.problem is not None:
            rows.append([f"rollback {r.tag or r.route}", "not counted", r.problem])
    if result.traffic_p50_minutes is not None:
        rows.append(
            [
                "time to restored traffic",
                f"p50 {result.traffic_p50_minutes} min, p95 {result.traffic_p95_minutes} min",
                "first span on the restored binding",
            ]
        )
    rows.append(
        [
            "regression-eval pass rate",
            _fmt(result.eval_pass_rate, "%"),
            f"{len(result.releases)} release(s) to {result.production_stage}",
        ]
    )
    for f in result.fallback:
        rows.append(
            [
                f"fallback hit rate {f['route']}/{f['stage']}",
                f"{f['per_million']:,} per million",
                f"{f['fallbacks']:,} of {f['requests']:,} requests",
            ]
        )
    for d in result.drift:
        rows.append([f"dataset drift {d.route}", _fmt(d.days, " days"), _drift_detail(d)])
    print_table(
        f"maturity report: {result.branch} @ {result.commit[:7]}",
        ["SIGNAL", "VALUE", "DETAIL"],
        rows,
    )


def write_chunks(chunks: Any, output: Any) -> None:
    if output is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return
    from modelctl.integrations.export import write_text

    write_text(Path(output), chunks)  # whole or not at all, whatever fails while writing
    success(f"wrote {output}")


# --- lineage and export ------------------------------------------------------------------------


def raw(text: str) -> None:
    """Text that is data (Mermaid, Graphviz, YAML): written as it is, never through rich markup."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _node_line(node: Any, prefix: str = "", suffix: str = "") -> str:
    name = (
        f"[red]{escape(node.label)}[/red]" if node.missing else f"[bold]{escape(node.label)}[/bold]"
    )
    extra = _lineage_describe(node)
    text = f"{escape(prefix)}{name}{escape(suffix)}"
    return text + (f"  [dim]{escape(extra)}[/dim]" if extra else "")


def _lineage_branch(
    tree: Any, children: _Children, node_id: str, side: str, seen: set[str]
) -> None:
    from modelctl.audit import lineage

    for edge, child in children.get((side, node_id), []):
        up_text, down_text = lineage.RELATIONS[edge.relation]
        if side == "up":
            line = _node_line(child, prefix=f"{up_text} ")
        else:
            line = _node_line(child, suffix=f" {down_text}")
        if not edge.current:
            line = f"[dim]{line}[/dim]"
        branch = tree.add(line)
        for period in edge.periods:
            branch.add(f"[dim]{escape(_period_text(period))}[/dim]")
        if edge.events:
            gated = ", ".join(_event_text(e) for e in edge.events)
            branch.add(f"[dim]gated {escape(gated)}[/dim]")
        if child.id in seen:
            if children.get((side, child.id)):
                branch.add("[dim](shown above)[/dim]")
            continue
        seen.add(child.id)
        _lineage_branch(branch, children, child.id, side, seen)


def lineage_result(result: Any, output_format: str = "tree") -> None:
    """Lineage as a tree (rich), or as Mermaid or Graphviz text."""
    from rich.tree import Tree

    if output_format in ("mermaid", "dot"):
        raw(lineage_mermaid(result) if output_format == "mermaid" else lineage_dot(result))
        return
    headers = {"up": "upstream: what it is made of", "down": "downstream: where it went"}
    nodes = {n.id: n for n in result.nodes}
    children = _lineage_children(result)
    for root in result.roots:
        tree = Tree(_node_line(nodes[root]))
        for side in _lineage_sides(result):
            branch = tree.add(f"[cyan]{headers[side]}[/cyan]")
            if not children.get((side, root)):
                branch.add("[dim]nothing[/dim]")
            _lineage_branch(branch, children, root, side, {root})
        out().print(tree)
    depth = f", depth {result.depth}" if result.depth is not None else ""
    message(
        f"[dim]{len(result.nodes)} node(s), {len(result.edges)} edge(s) at "
        f"{escape(result.source)}{depth}[/dim]"
    )


def json_text(payload: Any) -> str:
    """A JSON document for a file: indented, stable, newline-terminated."""
    return json.dumps(jsonable(payload), indent=2, ensure_ascii=False) + "\n"


def litellm_export(result: Any) -> None:
    if result.written is None:
        raw(result.text)
    else:
        success(
            f"wrote {result.written}: {len(result.groups)} model group(s), "
            f"{result.deployments} deployment(s), routing_strategy {result.routing_strategy}"
        )
    for text in result.warnings:
        warn(text)


# --- import ------------------------------------------------------------------------------------

_LISTED = 50  # skipped tags printed in full; --json carries all of them


def import_result(result: Any) -> None:
    rows = [
        [a.artifact, a.route, len(a.versions), a.events]
        + [a.stages.get(s) or "-" for s in result.stages]
        + ["deprecated" if a.deprecated else ""]
        for a in result.artifacts
    ]
    print_table(None, ["ARTIFACT", "ROUTE", "VERSIONS", "EVENTS", *result.stages, ""], rows)
    if result.skipped:
        out().print(f"\n[bold]not imported[/bold] ({len(result.skipped)} tag(s))")
        for item in result.skipped[:_LISTED]:
            out().print(f"  {escape(item.tag)}: {escape(item.reason)}")
        if len(result.skipped) > _LISTED:
            out().print(f"  ... and {len(result.skipped) - _LISTED} more (--json lists them all)")
    for note in result.notes:
        message(f"[dim]note:[/dim] {escape(note)}")
    what = (
        f"{len(result.artifacts)} artifact(s), {result.manifests} version(s) and "
        f"{result.events} stage change(s) from {result.tags_read} GTO tag(s)"
    )
    if result.dry_run:
        success(f"dry run: would import {what} as {result.commits} commit(s); nothing was written")
    else:
        success(
            f"imported {what} as {result.commits} commit(s) on {escape(result.branch)} "
            f"({result.commit[:12]}) in {result.seconds:.1f}s"
        )
    if result.other_tags:
        message(f"[dim]{result.other_tags} other tag(s) are not GTO's and were left alone[/dim]")
    where = "" if result.registry == "." else f"-C {escape(result.registry)} "
    message(f"[dim]stages: {', '.join(result.stages)}; next: modelctl {where}status[/dim]")
    for text in result.warnings:
        warn(text)


# --- lineage: text formats and tree helpers ------------------------------------------------


def _lineage_describe(node: Any) -> str:
    """One line of detail for a node, shared by every format."""
    d = node.detail
    if node.missing:
        return "not in the registry"
    if "invalid" in d:
        return f"invalid: {d['invalid']}"
    if node.kind == "model":
        return f"{d.get('provider', '')} {d.get('provider_model', '')}".strip()
    if node.kind == "dataset":
        rows = f"{d['rows']} rows, " if d.get("rows") is not None else ""
        return f"{rows}sha256 {str(d.get('sha256', ''))[:12]}"
    if node.kind == "judge":
        return f"{d.get('evaluator', '')} >= {d.get('threshold', '')}"
    if node.kind == "eval":
        return f"{d.get('verdict', '')} for {d.get('stage') or '?'} on {d.get('dataset', '')}"
    if node.kind == "stage":
        return f"now serves {d.get('serves', 'nothing')}"
    if node.kind == "code":
        return str(d.get("path", ""))
    return ""


def _event_text(event: Any) -> str:
    seq = f"#{event.seq} " if event.seq is not None else ""
    extra = f" (canary {event.canary}%)" if event.canary else ""
    return f"{seq}{event.action} {event.time}{extra}"


def _period_text(period: Any) -> str:
    role = "target" if period.role == "target" else "fallback"
    weight = f" (weight {period.weight})" if period.weight is not None else ""
    if period.end is None:
        return f"{role}{weight} since {_event_text(period.start)}"
    return f"{role}{weight} from {_event_text(period.start)} until {_event_text(period.end)}"


_MERMAID_SHAPES = {
    "model": ('["', '"]'),
    "prompt": ('[/"', '"/]'),
    "judge": ('{{"', '"}}'),
    "dataset": ('[("', '")]'),
    "eval": ('(["', '"])'),
    "stage": ('[["', '"]]'),
    "code": ('>"', '"]'),
    "source": ('>"', '"]'),
}


def _mermaid_text(text: str) -> str:
    return (
        text.replace("&", "#amp;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
        .replace("|", "#124;")
    )


def lineage_mermaid(result: Any) -> str:
    """A Mermaid flowchart (GitHub renders it in a ```mermaid block), upstream on the left."""
    from modelctl.audit import lineage

    ids = {node.id: f"n{i}" for i, node in enumerate(result.nodes)}
    lines = ["flowchart LR"]
    for node in result.nodes:
        start, end = _MERMAID_SHAPES.get(node.kind, ('["', '"]'))
        text = _mermaid_text(node.label)
        extra = _lineage_describe(node)
        if extra:
            text += "<br/><small>" + _mermaid_text(extra) + "</small>"
        lines.append(f"  {ids[node.id]}{start}{text}{end}")
    for edge in result.edges:
        arrow = "-->" if edge.current else "-.->"
        label = lineage.RELATIONS[edge.relation][0]
        lines.append(f"  {ids[edge.source]} {arrow}|{label}| {ids[edge.target]}")
    lines.append("  classDef root stroke-width:3px")
    lines.append("  classDef missing stroke-dasharray:4 3")
    roots = [ids[r] for r in result.roots]
    if roots:
        lines.append(f"  class {','.join(roots)} root")
    missing = [ids[n.id] for n in result.nodes if n.missing]
    if missing:
        lines.append(f"  class {','.join(missing)} missing")
    return "\n".join(lines) + "\n"


_DOT_SHAPES = {
    "model": "box",
    "prompt": "note",
    "judge": "hexagon",
    "dataset": "cylinder",
    "eval": "oval",
    "stage": "box3d",
    "code": "component",
    "source": "folder",
}


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lineage_dot(result: Any) -> str:
    """A Graphviz digraph (`dot -Tsvg`), upstream on the left."""
    from modelctl.audit import lineage

    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    roots = set(result.roots)
    for node in result.nodes:
        extra = _lineage_describe(node)
        attrs = [
            f"label={_dot_text(node.label + (chr(10) + extra if extra else ''))}",
            f"shape={_DOT_SHAPES.get(node.kind, 'box')}",
        ]
        if node.id in roots:
            attrs.append("penwidth=3")
        if node.missing:
            attrs.append("style=dashed")
        lines.append(f"  {_dot_text(node.id)} [{', '.join(attrs)}];")
    for edge in result.edges:
        attrs = [f"label={_dot_text(lineage.RELATIONS[edge.relation][0])}"]
        if not edge.current:
            attrs.append("style=dashed")
        lines.append(
            f"  {_dot_text(edge.source)} -> {_dot_text(edge.target)} [{', '.join(attrs)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


# (side, node id) -> the edges a tree shows under that node, with the node each leads to.
_Children = dict[tuple[str, str], list[tuple[Any, Any]]]


def _lineage_children(result: Any) -> _Children:
    """Every node's children on each side, in display order: built once per tree."""
    nodes = {n.id: n for n in result.nodes}
    children: _Children = {}
    for edge in sorted(result.edges, key=lambda e: (e.relation, e.source, e.target)):
        parent, child = (
            (edge.target, edge.source) if edge.side == "up" else (edge.source, edge.target)
        )
        children.setdefault((edge.side, parent), []).append((edge, nodes[child]))
    return children


def _lineage_sides(result: Any) -> Iterable[str]:
    return ("up", "down") if result.direction == "both" else (result.direction,)
