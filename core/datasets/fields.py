"""Reading fields out of a raw row with precise errors: missing keys with close-name hints, wrong or mixed types."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.datasets.problem_log import RowError

# names people often use instead of the expected one, beyond simple typos
SYNONYMS = {
    "conversations": ("conversation", "convs", "dialog", "dialogue", "turns", "chat", "messages"),
    "messages": ("message", "msgs", "conversation", "conversations", "chat", "turns"),
    "images": ("image", "imgs", "image_paths", "pictures", "photos"),
    "image": ("images", "img", "image_path", "picture", "photo", "file_name"),
    "from": ("role", "speaker", "sender", "author"),
    "value": ("content", "text", "message", "utterance"),
    "role": ("from", "speaker", "sender", "author"),
    "content": ("value", "text", "message"),
    "instruction": ("instructions", "prompt", "question", "query"),
    "output": ("outputs", "response", "answer", "completion", "target"),
    "input": ("inputs", "context"),
    "text": ("caption", "captions", "description", "label"),
}


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def shorten(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def close_name(wanted: str, present: list[str]) -> str | None:
    """The key in ``present`` that most likely means ``wanted`` (a typo or a known synonym), if any."""
    if not present:
        return None
    lowered = {p.lower(): p for p in present}
    if wanted.lower() in lowered:
        return lowered[wanted.lower()]
    for synonym in SYNONYMS.get(wanted, ()):
        if synonym in lowered:
            return lowered[synonym]
    match = difflib.get_close_matches(wanted.lower(), list(lowered), n=1, cutoff=0.7)
    return lowered[match[0]] if match else None


def missing_message(wanted: str, present: list[str], what: str) -> str:
    hint = close_name(wanted, present)
    if hint is not None:
        return f"missing field '{wanted}' ({what}); this row has '{hint}': did you mean '{wanted}'?"
    keys = ", ".join(repr(k) for k in present[:8]) + (", ..." if len(present) > 8 else "")
    return f"missing field '{wanted}' ({what}); this row has {keys or 'no fields'}"


@dataclass
class TypeMemo:
    """The first type seen in each column and where, to tell 'mixed types in a column' apart from a plain wrong type."""

    first: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def note(self, column: str, value: object, line: int | None) -> tuple[str, int | None] | None:
        """Record ``value``'s type; returns the earlier (type, line) when it differs."""
        name = type_name(value)
        if value is None:
            return None
        seen = self.first.get(column)
        if seen is None:
            if len(self.first) < 1000:
                self.first[column] = (name, line)
            return None
        return seen if seen[0] != name else None


@dataclass
class RowView:
    """One raw row seen through a column mapping (slot -> column name)."""

    data: Mapping
    line: int | None
    columns: Mapping[str, str]
    memo: TypeMemo
    what: str = "the format"
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # other names a slot may have per row

    def column(self, slot: str) -> str:
        """The slot's mapped column, or, when this row lacks it, another known name for the slot that it has."""
        column = self.columns.get(slot)
        if column is not None and column in self.data:
            return column
        for name in self.fallbacks.get(slot, ()):
            if name in self.data:
                return name
        return column or next(iter(self.fallbacks.get(slot, ())), slot)

    def has(self, slot: str) -> bool:
        value = self.data.get(self.column(slot))
        return value is not None and value != "" and value != []

    def get(self, slot: str, *, required: bool = True) -> object:
        column = self.column(slot)
        if column not in self.data or self.data[column] is None:
            if required:
                raise RowError("missing_field", missing_message(column, [str(k) for k in self.data], self.what),
                               field=column)
            return None
        return self.data[column]

    def typed(self, slot: str, expected: type | tuple[type, ...], description: str, *, required: bool = True):
        value = self.get(slot, required=required)
        column = self.column(slot)
        earlier = self.memo.note(column, value, self.line)
        if value is None or isinstance(value, expected) and not isinstance(value, bool):
            return value
        raise wrong_type(column, value, description, earlier)

    def text(self, slot: str, *, required: bool = True) -> str | None:
        return self.typed(slot, str, "a string", required=required)

    def items(self, slot: str, description: str, *, required: bool = True) -> list | None:
        value = self.get(slot, required=required)
        if isinstance(value, str):
            column = self.column(slot)
            hint = " (it looks like JSON written as a string: was it encoded twice?)" if value.lstrip()[:1] in "[{" \
                else ""
            raise RowError("wrong_type", f"'{column}' is a string; expected {description}{hint}", field=column)
        return self.typed(slot, (list, tuple), description, required=required)


def wrong_type(column: str, value: object, description: str, earlier: tuple[str, int | None] | None) -> RowError:
    if earlier is not None:
        where = f" (first at line {earlier[1]})" if earlier[1] is not None else ""
        return RowError("mixed_types", f"column '{column}' holds {type_name(value)} here ({shorten(value)}) but "
                        f"{earlier[0]} in earlier rows{where}; expected {description}", field=column)
    return RowError("wrong_type", f"expected {description}, found {type_name(value)} ({shorten(value)})", field=column)


def string_list(value: object, field_name: str, description: str = "a path") -> list:
    """A single string or a list of image references, as a list; other shapes are an error."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, dict, bytes)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None and v != ""]
    raise RowError("wrong_type", f"expected {description} or a list of them, found {type_name(value)}",
                   field=field_name)
