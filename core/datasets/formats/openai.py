"""OpenAI-style messages whose content is a list of parts ({type: text|image_url|image, ...})."""

from __future__ import annotations

from core.datasets.fields import RowView
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, first_turns, image_refs, row_id
from core.datasets.formats.chat import parse_turns
from core.datasets.problem_log import RowError


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
    """Image parts carry their image, or (as the Hub's chat datasets write them: ``{"type": "image"}``) stand for
    the next image of the row's ``images`` column."""
    messages, fields, images = parse_turns(view, "messages", parts=True)
    column_refs, column = image_refs(view, "images", index_single=True)
    empty = [where for ref, where in images if ref is None]
    if not empty:
        return Draft(messages, fields, images + column_refs, id=row_id(view), images_field="image parts",
                     messages_field=view.column("messages"))
    if len(empty) != len(images) or len(column_refs) != len(empty):
        if not column_refs:
            raise RowError("missing_field", "an image part needs the image in 'image' (or 'value', 'url'), or the "
                           f"row an '{column}' column holding it", field=empty[0])
        raise RowError("image_count", f"{len(empty)} image part{'s' if len(empty) != 1 else ''} without an image "
                       f"but {len(column_refs)} image{'s' if len(column_refs) != 1 else ''} in '{column}'; each "
                       "image part takes the next image of the column", field=view.column("messages"))
    refs = [(ref, where) for (ref, where), (_, _part) in zip(column_refs, images, strict=True)]
    return Draft(messages, fields, refs, id=row_id(view), images_field=column,
                 messages_field=view.column("messages"))


SPEC = FormatSpec(
    name="openai", title="OpenAI-style content parts",
    expects="'messages' whose content is a list of {type: text|image_url|image} parts",
    slots={"messages": ("messages",), "images": ("images", "image"), "id": ("id",)},
    required=("messages",), match=match, convert=convert)
