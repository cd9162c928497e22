"""Roles, turn order, empty answers and <image> placeholders: the checks every conversation passes."""

from __future__ import annotations

from core.datasets.problem_log import RowError
from core.datasets.records import IMAGE_PLACEHOLDER, Message

ROLE_ALIASES = {
    "user": "user", "human": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant",
    "system": "system",
}
ACCEPTED_ROLES = "user, assistant or system (human and gpt are accepted too)"


def normalize_role(raw: object, field: str) -> str:
    role = ROLE_ALIASES.get(str(raw).strip().lower()) if isinstance(raw, str) else None
    if role is None:
        extra = "; tool and function turns are not supported" if str(raw).lower() in {
            "tool", "function", "function_call", "observation", "ipython"} else ""
        raise RowError("role", f"unknown role {raw!r}; expected {ACCEPTED_ROLES}{extra}", field=field)
    return role


def check_turns(messages: list[Message], fields: list[str]) -> None:
    """Optional system first, then user/assistant alternating from user, ending with a non-empty answer."""
    if not messages:
        raise RowError("missing_field", "the conversation has no turns", field=fields[0] if fields else None)
    expected = "user"
    for i, (message, field) in enumerate(zip(messages, fields, strict=True)):
        if message.role == "system":
            if i != 0:
                raise RowError("turn_order", "a system turn may only come first", field=field)
            continue
        if message.role != expected:
            if message.role == "assistant" and i == (1 if messages[0].role == "system" else 0):
                problem = "the conversation starts with an assistant turn; the first turn must be the user's"
            else:
                problem = f"two {message.role} turns in a row; turns must alternate user, assistant, user, ..."
            raise RowError("turn_order", problem, field=field)
        if message.role == "assistant":
            if IMAGE_PLACEHOLDER in message.content:
                raise RowError("image_count", f"{IMAGE_PLACEHOLDER} in an assistant answer; images go in user turns",
                               field=field)
            if not message.content.strip():
                raise RowError("empty_text", "empty answer: the assistant turn has no text to train on", field=field)
        elif not message.content.replace(IMAGE_PLACEHOLDER, "").strip() and IMAGE_PLACEHOLDER not in message.content:
            raise RowError("empty_text", "empty user turn: no text and no image", field=field)
        expected = "assistant" if expected == "user" else "user"
    if messages[-1].role != "assistant":
        raise RowError("turn_order", "the conversation ends without an answer; the last turn must be the assistant's",
                       field=fields[-1])
    if messages[0].role == "system" and IMAGE_PLACEHOLDER in messages[0].content:
        raise RowError("image_count", f"{IMAGE_PLACEHOLDER} in the system turn; images go in user turns",
                       field=fields[0])


def place_images(messages: list[Message], image_count: int, images_field: str, messages_field: str) -> None:
    """Check that the <image> count matches the images; with no placeholders at all, they go before the first
    user text (the LLaVA convention of an implied image)."""
    found = sum(m.content.count(IMAGE_PLACEHOLDER) for m in messages)
    if found == image_count:
        return
    if found == 0:
        first_user = next((m for m in messages if m.role == "user"), None)
        if first_user is not None:
            first_user.content = IMAGE_PLACEHOLDER * image_count + "\n" + first_user.content
            return
    raise RowError("image_count", f"{found} {IMAGE_PLACEHOLDER} placeholder{'s' if found != 1 else ''} in the "
                   f"messages but {image_count} image{'s' if image_count != 1 else ''} in '{images_field}'; "
                   "each image needs exactly one placeholder", field=messages_field)
