"""the_cauldron / Docmatix: an ``images`` list and ``texts``, a list of {user, assistant} pairs."""

from __future__ import annotations

from core.datasets.fields import RowView, type_name
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, first_turns, image_refs, row_id
from core.datasets.problem_log import RowError
from core.datasets.records import Message


def match(rows: list[dict], columns: dict[str, str]) -> tuple[int, str] | None:
    column = columns.get("texts")
    if column is None:
        return None
    pairs = first_turns(rows, column)
    if not pairs or not all("user" in p and "assistant" in p for p in pairs):
        return None
    images = f" and '{columns['images']}'" if "images" in columns else " (no image column: text only)"
    return 40, f"rows have '{column}' holding user/assistant pairs (the_cauldron's layout){images}"


def convert(view: RowView, options: ConvertOptions) -> Draft:
    column = view.column("texts")
    pairs = view.items("texts", "a list of {user, assistant} pairs")
    if not pairs:
        raise RowError("missing_field", f"'{column}' is an empty list; expected at least one user/assistant pair",
                       field=column)
    messages, fields = [], []
    for i, pair in enumerate(pairs):
        where = f"{column}[{i}]"
        if not isinstance(pair, dict):
            raise RowError("wrong_type", f"expected a {{user, assistant}} object, found {type_name(pair)}",
                           field=where)
        for role in ("user", "assistant"):
            text = pair.get(role)
            if not isinstance(text, str):
                raise RowError("wrong_type" if role in pair else "missing_field",
                               f"'{role}' should hold the {role}'s text, found {type_name(text)}",
                               field=f"{where}.{role}")
            messages.append(Message(role, text))
            fields.append(f"{where}.{role}")
    if view.has("system"):
        messages.insert(0, Message("system", view.text("system")))
        fields.insert(0, view.column("system"))
    refs, images_column = image_refs(view, "images", index_single=True)
    return Draft(messages, fields, refs, id=row_id(view), images_field=images_column, messages_field=column)


SPEC = FormatSpec(
    name="cauldron", title="the_cauldron (images + texts)",
    expects="'texts' (a list of {user, assistant} pairs) and an 'images' list",
    slots={"texts": ("texts",), "images": ("images", "image"), "system": ("system",), "id": ("id",)},
    required=("texts",), match=match, convert=convert)
