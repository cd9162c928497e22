"""Captioning tables (CSV, JSON, JSONL, Parquet, an image folder's metadata): an image column and a text column."""

from __future__ import annotations

from core.datasets.fields import RowView, type_name
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, image_refs, row_id
from core.datasets.problem_log import RowError
from core.datasets.records import IMAGE_PLACEHOLDER, Message

IMAGE_COLUMNS = ("image_path", "image", "file_name", "filename", "image_file", "img_path", "img", "path", "file",
                 "image_url", "url", "images")
TEXT_COLUMNS = ("text", "caption", "captions", "description", "label", "answer", "response", "output")
PROMPT_COLUMNS = ("prompt", "question", "query", "instruction")
CHAT_KEYS = ("messages", "conversations")


def match(rows: list[dict], columns: dict[str, str]) -> tuple[int, str] | None:
    if "image" not in columns or "text" not in columns or any(k in r for r in rows for k in CHAT_KEYS):
        return None
    reason = f"columns '{columns['image']}' (image) and '{columns['text']}' (caption)"
    if "prompt" in columns:
        reason += f", with '{columns['prompt']}' as the prompt"
    return 20, reason


def convert(view: RowView, options: ConvertOptions) -> Draft:
    image = view.get("image")
    column = view.column("image")
    if not isinstance(image, (str, dict, bytes, list)):
        raise RowError("wrong_type", f"expected an image path, found {type_name(image)}", field=column)
    if isinstance(image, str) and not image.strip() or image == []:
        raise RowError("missing_field", "the image path is empty", field=column)
    refs = image_refs(view, "image")[0] if isinstance(image, list) else [(image, column)]
    text = view.text("text")
    prompt = view.text("prompt", required=False)
    prompt = prompt if prompt is not None else options.caption_prompt
    user = IMAGE_PLACEHOLDER * len(refs) + ("\n" + prompt if prompt else "")
    messages = [Message("user", user), Message("assistant", text)]
    return Draft(messages, [column, view.column("text")], refs, id=row_id(view), images_field=column,
                 messages_field=view.column("text"))


SPEC = FormatSpec(
    name="captions", title="Captioning table", expects="an image path column and a caption text column",
    slots={"image": IMAGE_COLUMNS, "text": TEXT_COLUMNS, "prompt": PROMPT_COLUMNS, "id": ("id",)},
    required=("image", "text"), match=match, convert=convert)
