"""Alpaca: instruction, input, output, with optional system, history and image/images."""

from __future__ import annotations

from core.datasets.fields import RowView, type_name
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, image_refs, row_id
from core.datasets.problem_log import RowError
from core.datasets.records import Message


def match(rows: list[dict], columns: dict[str, str]) -> tuple[int, str] | None:
    if "instruction" not in columns or "output" not in columns:
        return None
    extras = [columns[s] for s in ("input", "system", "history", "images") if s in columns]
    reason = f"rows have '{columns['instruction']}' and '{columns['output']}'"
    return 30, reason + (f" (with {', '.join(repr(e) for e in extras)})" if extras else "")


def convert(view: RowView, options: ConvertOptions) -> Draft:
    instruction = view.text("instruction")
    extra = view.text("input", required=False)
    output = view.text("output")
    messages, fields = [], []
    if view.has("system"):
        messages.append(Message("system", view.text("system")))
        fields.append(view.column("system"))
    history = view.items("history", "a list of [question, answer] pairs", required=False) or []
    if history:
        for i, pair in enumerate(history):
            where = f"{view.column('history')}[{i}]"
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise RowError("wrong_type", f"expected a [question, answer] pair of strings, found {type_name(pair)}",
                               field=where)
            messages += [Message("user", pair[0]), Message("assistant", pair[1])]
            fields += [where, where]
    messages.append(Message("user", instruction + ("\n" + extra if extra else "")))
    fields.append(view.column("instruction"))
    messages.append(Message("assistant", output))
    fields.append(view.column("output"))
    refs, column = image_refs(view, "images")
    return Draft(messages, fields, refs, id=row_id(view), images_field=column,
                 messages_field=view.column("instruction"))


SPEC = FormatSpec(
    name="alpaca", title="Alpaca", expects="'instruction', 'input', 'output', optional 'system', 'history', 'images'",
    slots={"instruction": ("instruction",), "input": ("input",), "output": ("output",), "system": ("system",),
           "history": ("history",), "images": ("images", "image"), "id": ("id",)},
    required=("instruction", "output"), match=match, convert=convert)
