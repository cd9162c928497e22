"""What a format family provides: its column slots, a detector that explains itself, and a row converter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.datasets.fields import RowView, string_list
from core.datasets.records import Message

DEFAULT_CAPTION_PROMPT = "Describe this image."


@dataclass
class Draft:
    """A converted row before its images are checked and stored."""

    messages: list[Message]
    fields: list[str]  # where each message came from, for problem reports
    images: list[tuple[object, str]] = field(default_factory=list)  # (reference, field) in placeholder order
    id: str | None = None
    images_field: str = "images"
    messages_field: str = "messages"


@dataclass(frozen=True)
class ConvertOptions:
    caption_prompt: str = DEFAULT_CAPTION_PROMPT  # the user turn of a captioning row without a prompt column


@dataclass(frozen=True)
class FormatSpec:
    """One format family. ``slots`` maps each slot to the column names it is detected from, in order."""

    name: str
    title: str
    expects: str  # one line: the keys this format expects
    slots: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    match: Callable[[list[dict], dict[str, str]], tuple[int, str] | None]
    convert: Callable[[RowView, ConvertOptions], Draft]


def present_fraction(rows: list[dict], column: str) -> float:
    return sum(1 for r in rows if column in r) / len(rows) if rows else 0.0


def find_columns(spec: FormatSpec, rows: list[dict]) -> dict[str, str]:
    """For each slot, the candidate column present in the most rows (the earlier candidate on a tie)."""
    mapping = {}
    for slot, candidates in spec.slots.items():
        scored = [(present_fraction(rows, name), -i, name) for i, name in enumerate(candidates)]
        best = max(scored) if scored else (0, 0, "")
        if best[0] > 0:
            mapping[slot] = best[2]
    return mapping


def image_refs(view: RowView, slot: str, *, index_single: bool = False) -> tuple[list[tuple[object, str]], str]:
    """The image references in a row's ``slot`` column, each with the field a problem should name; and the column.

    A lone image is named by its column, unless ``index_single`` (for columns that are lists by definition).
    """
    column = view.column(slot)
    images = string_list(view.get(slot, required=False), column, "an image path")
    named = index_single or len(images) != 1
    return [(ref, f"{column}[{i}]" if named else column) for i, ref in enumerate(images)], column


def row_id(view: RowView) -> str | None:
    value = view.data.get(view.column("id"))
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def first_turns(rows: list[dict], column: str) -> list[dict]:
    """The turn objects found in ``column`` across the sample rows."""
    turns = []
    for row in rows:
        value = row.get(column)
        if isinstance(value, list):
            turns.extend(t for t in value[:4] if isinstance(t, dict))
    return turns
