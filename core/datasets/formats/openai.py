"""OpenAI-style messages whose content is a list of parts ({type: text|image_url|image, ...})."""

from __future__ import annotations

from core.datasets.fields import RowView
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, first_turns, image_refs, row_id
from core.datasets.formats.chat import parse_turns


def match(rows: list[dict], columns: dict[str, str]) -> tuple[int, str] | None:
    column = columns.get("messages")
    if column is None:
        return None
    turns = first_turns(rows, column)
    listed = [t for t in turns if isinstance(t.get("content", t.get("value")), list)]
    if not listed:
        return None
    parts = [p for t in listed for p in t.get("content", t.get("value")) if isinstance(p, dict)]
    types = sorted({str(p.get("type")) for p in parts})
    return 40, f"rows have '{column}' whose content is a list of parts (types: {', '.join(types)})"


def convert(view: RowView, options: ConvertOptions) -> Draft:
    messages, fields, images = parse_turns(view, "messages", parts=True)
    refs = images + image_refs(view, "images", index_single=True)[0]
    return Draft(messages, fields, refs, id=row_id(view), images_field="image parts",
                 messages_field=view.column("messages"))


SPEC = FormatSpec(
    name="openai", title="OpenAI-style content parts",
    expects="'messages' whose content is a list of {type: text|image_url|image} parts",
    slots={"messages": ("messages",), "images": ("images",), "id": ("id",)},
    required=("messages",), match=match, convert=convert)
