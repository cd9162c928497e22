"""LLaVA: a list of {id, image, conversations: [{from: human|gpt, value}]}, <image> in the text or implied."""

from __future__ import annotations

from core.datasets.fields import RowView
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, first_turns, image_refs, row_id
from core.datasets.formats.chat import parse_turns


def match(rows: list[dict], columns: dict[str, str]) -> tuple[int, str] | None:
    if "conversations" not in columns or any("images" in r for r in rows):
        return None
    turns = first_turns(rows, "conversations")
    if turns and not all("from" in t and "value" in t for t in turns):
        return None
    reason = "rows have 'conversations' with 'from'/'value' turns"
    reason += " and an 'image' key" if "image" in columns else " (no 'image' key: a text-only conversation)"
    return (30 if "image" in columns else 12), reason


def convert(view: RowView, options: ConvertOptions) -> Draft:
    messages, fields, _ = parse_turns(view, "conversations", parts=False)
    refs, image_column = image_refs(view, "image")
    return Draft(messages, fields, refs, id=row_id(view), images_field=image_column,
                 messages_field=view.column("conversations"))


SPEC = FormatSpec(
    name="llava", title="LLaVA", expects="'conversations' (from/value turns) and 'image'",
    slots={"conversations": ("conversations",), "image": ("image",), "id": ("id",)},
    required=("conversations",), match=match, convert=convert)
