"""Question and answer columns (``question``/``answer`` or ``query``/``response``) with an image column; a
multiple-choice answer given as an index into ``choices`` (ScienceQA) becomes that choice's text."""

from __future__ import annotations

from core.datasets.fields import RowView, type_name
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, image_refs, row_id
from core.datasets.problem_log import RowError
from core.datasets.records import Message

CHAT_KEYS = ("messages", "conversations", "texts")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def match(rows: list[dict], columns: dict[str, str]) -> tuple[int, str] | None:
    if "question" not in columns or "answer" not in columns or any(k in r for r in rows for k in CHAT_KEYS):
        return None
    reason = f"columns '{columns['question']}' (question) and '{columns['answer']}' (answer)"
    if "choices" in columns:
        reason += f", with the options in '{columns['choices']}'"
    if "images" not in columns:
        return 24, reason + " (no image column: text only)"
    return 32, reason + f", images in '{columns['images']}'"


def _answer(view: RowView) -> str:
    value = view.get("answer")
    column = view.column("answer")
    choices = view.get("choices", required=False)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(choices, list):
        if not 0 <= value < len(choices) or not isinstance(choices[value], str):
            raise RowError("wrong_type", f"answer {value} is not the index of one of the {len(choices)} options in "
                           f"'{view.column('choices')}'", field=column)
        return choices[value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return view.text("answer")


def convert(view: RowView, options: ConvertOptions) -> Draft:
    question = view.text("question")
    answer = _answer(view)
    choices = view.get("choices", required=False)
    if isinstance(choices, list) and choices:
        if not all(isinstance(c, str) for c in choices):
            raise RowError("wrong_type", f"each option should be a string, found {type_name(choices[0])}",
                           field=view.column("choices"))
        question += "\n" + "\n".join(f"{LETTERS[i % 26]}. {c}" for i, c in enumerate(choices))
    messages, fields = [Message("user", question), Message("assistant", answer)], \
        [view.column("question"), view.column("answer")]
    if view.has("system"):
        messages.insert(0, Message("system", view.text("system")))
        fields.insert(0, view.column("system"))
    refs, images_column = image_refs(view, "images")
    return Draft(messages, fields, refs, id=row_id(view), images_field=images_column,
                 messages_field=view.column("question"))


SPEC = FormatSpec(
    name="qa", title="Question and answer columns",
    expects="'question' and 'answer' (or 'query' and 'response') columns, with an 'image' or 'images' column",
    slots={"question": ("question", "query"), "answer": ("answer", "response"), "images": ("image", "images"),
           "choices": ("choices", "options"), "system": ("system",), "id": ("id",)},
    required=("question", "answer"), match=match, convert=convert)
