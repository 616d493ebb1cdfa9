"""Did you mean ...? The one check for every stage, route and reference a user names.

A misspelt name must never read as an empty answer ("served nothing", "0 events"): each
command checks the stages, routes and `NAME@VERSION` references it is given against what the
registry holds, and a miss is a usage error (exit 2) that lists what exists and suggests the
nearest names. The error and its suggestions are made here, for all three.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from typing import Any

from modelctl.errors import UsageError

MAX_LISTED = 20  # names listed in a hint before "... and N more"


def nearest(value: str, choices: Iterable[str], limit: int = 3) -> list[str]:
    """The choices closest to `value`, best first: the same name in another case, longer names
    it begins, then the closest by difflib's ratio (at least 0.6, and within 0.05 of the best,
    so that one clear match is not buried among merely similar names)."""
    names = [c for c in dict.fromkeys(choices) if c != value]
    lowered = value.lower()
    found = [c for c in names if c.lower() == lowered]
    if len(lowered) >= 2:
        found += [c for c in names if c.lower().startswith(lowered)]
    matcher = difflib.SequenceMatcher(b=value)
    scored = []
    for name in names:
        matcher.set_seq1(name)
        if matcher.real_quick_ratio() >= 0.6 and matcher.quick_ratio() >= 0.6:
            ratio = matcher.ratio()
            if ratio >= 0.6:
                scored.append((ratio, name))
    scored.sort(key=lambda item: -item[0])
    if scored:
        best = scored[0][0]
        found += [name for ratio, name in scored if ratio >= best - 0.05]
    return list(dict.fromkeys(found))[:limit]


def did_you_mean(suggestions: list[str]) -> str:
    """`did you mean a?`, `did you mean a or b?`; empty when there is nothing to suggest."""
    if not suggestions:
        return ""
    if len(suggestions) == 1:
        return f"did you mean {suggestions[0]}?"
    return f"did you mean {', '.join(suggestions[:-1])} or {suggestions[-1]}?"


def listing(names: list[str], more: str = "") -> str:
    """`a, b, c`, cut after MAX_LISTED names; `more` says where to see the rest."""
    if not names:
        return "none"
    shown = ", ".join(names[:MAX_LISTED])
    rest = len(names) - MAX_LISTED
    if rest > 0:
        shown += f" ... and {rest} more" + (f" ({more})" if more else "")
    return shown


class UnknownName(UsageError):
    """A stage, route or reference the registry does not have; names the nearest ones."""

    def __init__(
        self,
        what: str,
        value: str,
        choices: Iterable[str],
        *,
        where: str,
        flag: str | None = None,
        listed_as: str | None = None,
        listed: list[str] | None = None,
        hint: str | None = None,
    ) -> None:
        names = list(dict.fromkeys(choices))
        self.what, self.value, self.flag = what, value, flag
        self.choices = names
        self.suggestions = nearest(value, names)
        message = f"{flag + ': ' if flag else ''}no {what} {value!r} {where}"
        if self.suggestions:
            message += f"; {did_you_mean(self.suggestions)}"
        label = listed_as or f"{what}s"
        shown = names if listed is None else listed
        listed_text = f"{label}: {listing(shown, 'see: modelctl list')}"
        super().__init__(message, hint=f"{listed_text}; {hint}" if hint else listed_text)

    def to_json(self) -> dict[str, Any]:
        payload = super().to_json()
        payload["type"] = "UsageError"  # what scripts match on; `unknown` says which kind
        payload["unknown"] = {
            "what": self.what,
            "value": self.value,
            "option": self.flag,
            "suggestions": self.suggestions,
            "choices": self.choices,
        }
        return payload


def stage_names(settings: dict[str, Any] | None, *, aliases: bool = False) -> dict[str, str]:
    """Every name `modelctl.yaml` gives a stage (its aliases too, when `aliases`), mapped to the
    stage's own name, in path order."""
    names: dict[str, str] = {}
    for stage in (settings or {}).get("stages", []):
        names[stage["name"]] = stage["name"]
    if aliases:
        for stage in (settings or {}).get("stages", []):
            for alias in stage.get("aliases", []):
                names.setdefault(alias, stage["name"])
    return names


def check_stage(
    settings: dict[str, Any] | None,
    value: str,
    flag: str = "--stage",
    *,
    aliases: bool = False,
    also: Collection[str] = (),
    where: str = "",
) -> str:
    """`value` as the registry names the stage; UnknownName (exit 2) when it is none of the
    stages of `settings` (the registry's `modelctl.yaml`), nor of `also` (stages a route's
    history still holds after they left the path). With `aliases`, a stage's aliases count."""
    if settings is None:
        if value in also:
            return value
        raise UsageError(
            f"{flag} {value}: modelctl.yaml is missing or invalid"
            f"{' at ' + where if where else ''}, so its stages are unknown",
            hint="run modelctl validate and fix what it reports",
        )
    names = stage_names(settings, aliases=aliases)
    if value in names:
        return names[value]
    extra = [s for s in also if s not in names]
    if value in extra:
        return value
    path = [s["name"] for s in settings.get("stages", [])]
    choices = list(names) + extra
    raise UnknownName(
        "stage",
        value,
        choices,
        where=f"in modelctl.yaml{' at ' + where if where else ''}",
        flag=flag,
        listed_as="stages" + (" (and aliases)" if len(names) > len(path) else ""),
    )
