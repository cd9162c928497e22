"""Turn lists shared by the chat formats: {role, content} or {from, value} turns, with text or content parts."""

from __future__ import annotations

from core.datasets.fields import RowView, missing_message, type_name
from core.datasets.problem_log import RowError
from core.datasets.records import IMAGE_PLACEHOLDER, Message
from core.datasets.turns import normalize_role

TEXT_PARTS = ("text", "input_text")
IMAGE_PARTS = ("image_url", "image", "input_image")


def parse_turns(view: RowView, slot: str, *, parts: bool) -> tuple[list[Message], list[str], list[tuple]]:
    """Messages, their field names, and images found in content parts (when ``parts`` is allowed)."""
    column = view.column(slot)
    turns = view.items(slot, "a list of turns ({role, content} or {from, value} objects)")
    if not turns:
        raise RowError("missing_field", f"'{column}' is an empty list; expected at least a user turn and an answer",
                       field=column)
    messages, fields, images = [], [], []
    for i, turn in enumerate(turns):
        where = f"{column}[{i}]"
        if not isinstance(turn, dict):
            raise RowError("wrong_type", f"expected a turn object ({{role, content}} or {{from, value}}), found "
                           f"{type_name(turn)}", field=where)
        role_key, text_key = ("role", "content") if "role" in turn or "content" in turn else ("from", "value")
        keys = [str(k) for k in turn]
        for key in (role_key, text_key):
            if key not in turn:
                raise RowError("missing_field", missing_message(key, keys, "each turn needs a role and its text"),
                               field=f"{where}.{key}")
        role = normalize_role(turn[role_key], f"{where}.{role_key}")
        content = turn[text_key]
        if content is None:
            content = ""
        if isinstance(content, list) and parts:
            content = content_parts(content, f"{where}.{text_key}", images)
        elif not isinstance(content, str):
            expected = "a string or a list of content parts" if parts else "a string"
            raise RowError("wrong_type", f"expected {expected}, found {type_name(content)}",
                           field=f"{where}.{text_key}")
        messages.append(Message(role, content))
        fields.append(where)
    return messages, fields, images


def content_parts(parts: list, where: str, images: list[tuple]) -> str:
    """OpenAI-style parts joined into one text, with <image> where each image part was."""
    pieces: list[str] = []
    previous_text = False
    for j, part in enumerate(parts):
        field = f"{where}[{j}]"
        if isinstance(part, str):
            kind, part = "text", {"text": part}
        elif not isinstance(part, dict):
            raise RowError("wrong_type", f"expected a content part object, found {type_name(part)}", field=field)
        else:
            kind = part.get("type") or next((k for k in TEXT_PARTS + IMAGE_PARTS if k in part), None)
        if kind in TEXT_PARTS:
            text = part.get("text", part.get("value"))
            if not isinstance(text, str):
                raise RowError("wrong_type", f"a text part needs 'text' (or 'value') holding a string, found "
                               f"{type_name(text)}", field=field)
            if previous_text:
                pieces.append("\n")
            pieces.append(text)
            previous_text = True
        elif kind in IMAGE_PARTS:
            ref = part.get(kind) or part.get("value") or part.get("url") or part.get("path") or part.get("image")
            if isinstance(ref, dict) and not ref.get("bytes"):
                ref = ref.get("url") or ref.get("path")
            images.append((ref or None, field))  # None: the row's next image from its images column
            pieces.append(IMAGE_PLACEHOLDER)
            previous_text = False
        else:
            raise RowError("unsupported", f"content part type {kind!r} is not supported; expected text, image_url or "
                           "image", field=field)
    return "".join(pieces)
