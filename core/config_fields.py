"""Field metadata for config dataclasses: label, help, range and choices, read by the form, validation and CLI."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from core.problems import Problem

# NaN passes every range check (NaN < min is false), so it is refused on its own, as are the infinities.
NOT_FINITE = "expected a finite number, got {value!r}: NaN and infinity are not allowed"

EMPTY_NUMBER = "expected {expected}; the field is empty or holds something that is not a number"

Choices = Sequence[str | tuple[str, str]] | Callable[[], Sequence[str | tuple[str, str]]]


def option(
    default: Any,
    label: str,
    help: str = "",
    *,
    choices: Choices | None = None,
    min: float | None = None,
    max: float | None = None,
    group: str = "basic",
    shown_when: dict[str, Sequence[str]] | None = None,
) -> Any:
    """A dataclass field that carries what the form and the validator need to know about it.

    ``shown_when`` maps another field's name to the values for which this field matters
    (the form hides it otherwise; validation still checks it).
    """
    meta = {
        "label": label,
        "help": help,
        "choices": choices,
        "min": min,
        "max": max,
        "group": group,
        "shown_when": shown_when or {},
    }
    return dataclasses.field(default=default, metadata=meta)


def labelled_choices_of(f: dataclasses.Field) -> list[tuple[str, str]] | None:
    """The field's choices as (label, value) pairs; a plain choice is its own label."""
    choices = f.metadata.get("choices")
    if choices is None:
        return None
    return [c if isinstance(c, tuple) else (c, c) for c in (choices() if callable(choices) else choices)]


def choices_of(f: dataclasses.Field) -> list[str] | None:
    """The values a field accepts."""
    pairs = labelled_choices_of(f)
    return None if pairs is None else [value for _, value in pairs]


def coerce(f: dataclasses.Field, value: Any) -> tuple[Any, Problem | None]:
    """Turn a form or CLI value into the field's type, or say what was expected."""
    kind = f.type if isinstance(f.type, type) else {"int": int, "float": float, "bool": bool, "str": str}.get(
        str(f.type), str
    )
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value, None
            words = value.strip().lower() if isinstance(value, str) else None
            if words in ("true", "1", "yes", "on", "false", "0", "no", "off"):
                return words in ("true", "1", "yes", "on"), None
            if isinstance(value, int | float) and value in (0, 1):
                return bool(value), None
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number), None
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if not math.isfinite(number):
                return f.default, Problem(NOT_FINITE.format(value=value), field=f.name)
            return number, None
        if value is None:
            return "", None
        if isinstance(value, list | tuple | dict | set):
            raise ValueError
        return str(value), None
    except (TypeError, ValueError, OverflowError):
        expected = {bool: "true or false", int: "a whole number", float: "a number"}.get(kind, "text")
        if value is None or (isinstance(value, str) and not value.strip()):
            # A browser's number box sends nothing for an empty box or one holding letters.
            return f.default, Problem(EMPTY_NUMBER.format(expected=expected), field=f.name)
        return f.default, Problem(f"expected {expected}, got {shown(value)}", field=f.name)


def shown(value: Any, limit: int = 60) -> str:
    """A value as a message quotes it: its repr, cut short (a list or object may be long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_field(f: dataclasses.Field, value: Any) -> list[Problem]:
    """Range and choice checks for one already-coerced value."""
    problems = []
    choices = choices_of(f)
    if choices is not None and value not in choices:
        problems.append(Problem(f"must be one of {', '.join(choices)}; got {value!r}", field=f.name))
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if isinstance(value, float) and not math.isfinite(value):
        return problems + [Problem(NOT_FINITE.format(value=value), field=f.name)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        if low is not None and value < low:
            problems.append(Problem(f"must be at least {low}; got {value}", field=f.name))
        if high is not None and value > high:
            problems.append(Problem(f"must be at most {high}; got {value}", field=f.name))
    return problems
