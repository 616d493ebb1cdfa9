"""Evaluators: built-in checks of one output against its dataset row, and external commands.

A built-in evaluator is a function `(row, output) -> (passed, score, reason)`. An external
evaluator is a command that reads one JSON object per line on stdin, each the dataset row
plus `output` and `side`, and writes one `{"id", "score", "passed", "reason"}` line per
example; this is how an LLM judge plugs in.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelctl.errors import ManifestError, Problem, UsageError

Verdict = tuple[bool, float, str]


@dataclass
class EvaluatorSpec:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    judge: str | None = None  # judge manifest pin, for judge-backed external evaluators
    command: list[str] | None = None  # external evaluators only
    threshold: float | None = None  # external: score at or above passes, when no `passed`


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _expected(row: dict[str, Any], args: dict[str, Any]) -> Any:
    key = args.get("field", "expected")
    if key not in row:
        raise KeyError(key)
    return row[key]


def _flag(args: dict[str, Any], key: str, default: bool) -> bool:
    value = args.get(key, default)
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Builtin:
    """A built-in evaluator: `prepare(row)` once per example, `test(prepared, output)` per side.

    Splitting the two halves the work: what depends only on the row (the expected answer,
    normalised) is computed once for both candidate and baseline.
    """

    prepare: Callable[[dict[str, Any]], Any]
    test: Callable[[Any, Any], bool]

    def __call__(self, row: dict[str, Any], output: Any) -> Verdict:
        ok = bool(self.test(self.prepare(row), output))
        return ok, float(ok), ""


def _none(row: dict[str, Any]) -> None:
    return None


def exact_match(args: dict[str, Any]) -> Builtin:
    strip = _flag(args, "strip", True)
    fold = _flag(args, "ignore_case", False)

    def norm(text: str) -> str:
        text = text.strip() if strip else text
        return text.casefold() if fold else text

    return Builtin(
        lambda row: norm(_text(_expected(row, args))), lambda want, out: norm(_text(out)) == want
    )


def contains(args: dict[str, Any]) -> Builtin:
    fold = _flag(args, "ignore_case", True)
    fixed = args.get("text")

    def prepare(row: dict[str, Any]) -> str:
        needle = str(fixed) if fixed is not None else _text(_expected(row, args))
        return needle.casefold() if fold else needle

    if fold:
        return Builtin(prepare, lambda needle, out: needle in _text(out).casefold())
    return Builtin(prepare, lambda needle, out: needle in _text(out))


def regex(args: dict[str, Any]) -> Builtin:
    if "pattern" not in args:
        raise UsageError("evaluator regex needs a pattern: --evaluator 'regex:pattern=^[0-9]+$'")
    flags = re.IGNORECASE if _flag(args, "ignore_case", False) else 0
    try:
        pattern = re.compile(str(args["pattern"]), flags)
    except re.error as exc:
        raise UsageError(f"evaluator regex: invalid pattern: {exc}") from None
    match = pattern.fullmatch if _flag(args, "fullmatch", False) else pattern.search
    return Builtin(_none, lambda _, out: match(_text(out)) is not None)


def _parses(out: Any) -> bool:
    if not isinstance(out, str):
        return True  # already structured JSON in the outputs file
    try:
        json.loads(out)
    except ValueError:
        return False
    return True


def json_valid(args: dict[str, Any]) -> Builtin:
    return Builtin(_none, lambda _, out: _parses(out))


def json_schema(args: dict[str, Any]) -> Builtin:
    import jsonschema

    schema = args.get("schema_data")
    if schema is None:
        raise UsageError(
            "evaluator json_schema needs a schema: set output_schema in the dataset manifest "
            "or pass --evaluator json_schema:schema=FILE.json"
        )
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise UsageError(f"evaluator json_schema: the schema is invalid: {exc.message}") from None
    validator = validator_cls(schema)

    def test(_: Any, out: Any) -> bool:
        if isinstance(out, str):
            try:
                out = json.loads(out)
            except ValueError:
                return False
        return bool(validator.is_valid(out))

    return Builtin(_none, test)


def _number(value: Any) -> float | None:
    try:
        number = float(_text(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def number_arg(
    args: dict[str, Any], key: str, default: float, evaluator: str, *, negative: bool = False
) -> float:
    """A finite number given as `key=` to an evaluator (>= 0 unless `negative`)."""
    value = args.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or (number < 0 and not negative):
        wanted = "a number" if negative else "a number >= 0"
        raise UsageError(f"--evaluator {evaluator}: {key}={value!r} is not {wanted}")
    return number


def numeric_close(args: dict[str, Any]) -> Builtin:
    abs_tol = number_arg(args, "abs" if "abs" in args else "tolerance", 1e-6, "numeric_close")
    rel_tol = number_arg(args, "rel", 0.0, "numeric_close")

    def test(want: float | None, out: Any) -> bool:
        got = _number(out)
        return (
            want is not None
            and got is not None
            and math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
        )

    return Builtin(lambda row: _number(_expected(row, args)), test)


BUILTIN: dict[str, Callable[[dict[str, Any]], Builtin]] = {
    "exact_match": exact_match,
    "contains": contains,
    "regex": regex,
    "json_valid": json_valid,
    "json_schema": json_schema,
    "numeric_close": numeric_close,
}


def parse_spec(text: str) -> EvaluatorSpec:
    """`NAME[:key=value,key=value]`; `external:cmd=...` runs a command."""
    name, _, rest = text.partition(":")
    name = name.strip()
    args: dict[str, Any] = {}
    if rest:
        # Split on commas that start a new key=, so values (patterns) may hold commas.
        for part in re.split(r",(?=[A-Za-z_][A-Za-z0-9_]*=)", rest):
            key, eq, value = part.partition("=")
            if not eq:
                raise UsageError(
                    f"--evaluator {text!r}: arguments are key=value pairs",
                    hint="e.g. --evaluator 'regex:pattern=^yes',  --evaluator numeric_close:abs=0.01",
                )
            args[key.strip()] = value
    if name == "external":
        if "cmd" not in args:
            raise UsageError("--evaluator external needs a command: 'external:cmd=python judge.py'")
        label = args.pop("name", "external")
        threshold = (
            number_arg(args, "threshold", 0, "external", negative=True)
            if "threshold" in args
            else None
        )
        return EvaluatorSpec(label, args, command=shlex.split(args["cmd"]), threshold=threshold)
    if name not in BUILTIN:
        choices = ", ".join([*BUILTIN, "external:cmd=..."])
        raise UsageError(f"unknown evaluator {name!r}", hint=f"built-in evaluators: {choices}")
    return EvaluatorSpec(name, args)


def builtin_check(spec: EvaluatorSpec, output_schema: dict[str, Any] | None) -> Builtin:
    args = dict(spec.args)
    if spec.name == "json_schema":
        if "schema" in args:
            path = Path(str(args["schema"]))
            try:
                args["schema_data"] = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"json_schema: cannot read schema {path}: {exc}") from None
        else:
            args["schema_data"] = output_schema
    return BUILTIN[spec.name](args)


def run_external(
    spec: EvaluatorSpec, side: str, rows: list[dict[str, Any]], outputs: dict[str, Any]
) -> dict[str, Verdict]:
    """Run an external evaluator over one side; id -> verdict. Errors name the command."""
    assert spec.command is not None
    payload = "".join(
        json.dumps({**row, "output": outputs[str(row["id"])], "side": side}, ensure_ascii=False)
        + "\n"
        for row in rows
    )
    label = shlex.join(spec.command)
    try:
        proc = subprocess.run(
            spec.command, input=payload.encode(), capture_output=True, check=False
        )
    except OSError as exc:
        raise UsageError(f"evaluator {spec.name}: cannot run {label}: {exc.strerror}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise UsageError(f"evaluator {spec.name}: {label} exited {proc.returncode}: {err}")
    verdicts: dict[str, Verdict] = {}
    problems: list[Problem] = []
    source = f"output of {label}"
    for number, line in enumerate(proc.stdout.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            rid = str(item["id"])
            score = float(item.get("score", 1.0 if item.get("passed") else 0.0))
            if "passed" in item:
                passed = bool(item["passed"])
            elif spec.threshold is not None:
                passed = score >= spec.threshold
            else:
                raise KeyError("passed")
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(
                Problem(source, "", f"expected {{id, score, passed, reason}}: {exc}", number)
            )
            continue
        verdicts[rid] = (passed, score, str(item.get("reason", ""))[:500])
    missing = [str(r["id"]) for r in rows if str(r["id"]) not in verdicts]
    if missing:
        problems.append(
            Problem(source, "", f"no result for {len(missing)} example(s), e.g. {missing[:3]}")
        )
    if problems:
        raise ManifestError(problems[:20], hint=f"fix the evaluator command {label}")
    return verdicts
