"""ShareGPT-style, as LLaMA-Factory writes it: 'messages' (role/content) or 'conversations' (from/value), 'images'."""

from __future__ import annotations

from core.datasets.fields import RowView
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, first_turns, image_refs, row_id
from core.datasets.formats.chat import parse_turns
from core.datasets.records import Message


def match(rows: list[dict], columns: dict[str, str]) -> tuple[int, str] | None:
    column = columns.get("messages")
    if column is None:
        return None
    turns = first_turns(rows, column)
    if any(isinstance(t.get("content", t.get("value")), list) for t in turns):
        return None  # content parts: the OpenAI-style format
    keys = "'role'/'content'" if any("role" in t for t in turns) else "'from'/'value'" if turns else "no readable"
    reason = f"rows have '{column}' with {keys} turns"
    if columns.get("images") == "images":
        return 35, reason + " and an 'images' list"
    if "images" in columns:
        return 25, reason + f" and '{columns['images']}'"
    return 25, reason


def convert(view: RowView, options: ConvertOptions) -> Draft:
    messages, fields, _ = parse_turns(view, "messages", parts=False)
    system = view.text("system", required=False)
    if system and messages[0].role != "system":
        messages.insert(0, Message("system", system))
        fields.insert(0, view.column("system"))
    refs, column = image_refs(view, "images", index_single=True)
    return Draft(messages, fields, refs, id=row_id(view), images_field=column, messages_field=view.column("messages"))


SPEC = FormatSpec(
    name="sharegpt", title="ShareGPT (messages + images)",
    expects="'messages' (role/content) or 'conversations' (from/value), optional 'images' list and 'system'",
    slots={"messages": ("messages", "conversations"), "images": ("images", "image"), "system": ("system",),
           "id": ("id",)},
    required=("messages",), match=match, convert=convert)
