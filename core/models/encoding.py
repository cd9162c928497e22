"""Turns a Sample into model inputs through the model's chat template, training only on the assistant's tokens.

The trainer, the dataset preview and chat all use this module, so what the preview marks as trained
is exactly what the loss sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.records import IMAGE_PLACEHOLDER, Message, Sample

IGNORE_INDEX = -100


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    image_paths: list[Path]
    truncated: bool


class TemplateError(ValueError):
    """The model's chat template cannot be split into prompt and answer spans."""


def to_template_messages(messages: list[Message], vision: bool) -> list[dict[str, Any]]:
    """Messages in the transformers chat format: image placeholders become {type: image} parts for VLMs."""
    converted = []
    for m in messages:
        if not vision:
            converted.append({"role": m.role, "content": m.content})
            continue
        parts: list[dict[str, str]] = []
        for i, piece in enumerate(m.content.split(IMAGE_PLACEHOLDER)):
            if i > 0:
                parts.append({"type": "image"})
            if piece:
                parts.append({"type": "text", "text": piece})
        converted.append({"role": m.role, "content": parts})
    return converted


class SampleEncoder:
    """Encodes samples for one model's processor (a VLM processor or a plain tokenizer)."""

    def __init__(self, processor: Any, max_length: int):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.vision = hasattr(processor, "image_processor")
        self.max_length = max_length
        self.image_token = getattr(processor, "image_token", None) if self.vision else None
        self.image_token_id = getattr(processor, "image_token_id", None) if self.vision else None
        self.tokens_per_image = self._count_image_tokens() if self.vision else 0

    def _count_image_tokens(self) -> int:
        from PIL import Image

        probe = self.processor(text=self.image_token, images=[Image.new("RGB", (64, 64))], return_tensors="pt")
        return int((probe["input_ids"] == self.image_token_id).sum())

    def render(self, messages: list[Message], add_generation_prompt: bool = False) -> str:
        templated = to_template_messages(messages, self.vision)
        return self.processor.apply_chat_template(
            templated, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def segments(self, messages: list[Message]) -> list[tuple[str, bool]]:
        """The rendered conversation as (text, trained) pieces; only assistant answers are trained."""
        pieces: list[tuple[str, bool]] = []
        done = ""
        for i, message in enumerate(messages):
            if message.role != "assistant":
                continue
            prompt = self.render(messages[:i], add_generation_prompt=True)
            full = self.render(messages[: i + 1])
            if not prompt.startswith(done) or not full.startswith(prompt):
                raise TemplateError(
                    "this model's chat template renders earlier turns differently once later turns are added, "
                    "so answers cannot be located; use a model with a standard chat template"
                )
            if len(prompt) > len(done):
                pieces.append((prompt[len(done):], False))
            pieces.append((full[len(prompt):], True))
            done = full
        whole = self.render(messages)
        if len(whole) > len(done) and whole.startswith(done):
            pieces.append((whole[len(done):], False))
        return pieces

    def tokenize(self, text: str) -> list[int]:
        if self.image_token:
            text = text.replace(self.image_token, self.image_token * self.tokens_per_image)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode(self, sample: Sample, dataset_dir: Path | None = None) -> EncodedSample:
        input_ids: list[int] = []
        labels: list[int] = []
        for text, trained in self.segments(sample.messages):
            ids = self.tokenize(text)
            input_ids.extend(ids)
            labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))
        truncated = len(input_ids) > self.max_length
        input_ids, labels = input_ids[: self.max_length], labels[: self.max_length]
        root = Path(dataset_dir) if dataset_dir else Path(".")
        return EncodedSample(input_ids, labels, [root / p for p in sample.images], truncated)

    def is_trainable(self, encoded: EncodedSample) -> bool:
        """False when truncation cut into image tokens or left no answer token to learn from."""
        if not any(label != IGNORE_INDEX for label in encoded.labels):
            return False
        if self.vision:
            kept = sum(1 for t in encoded.input_ids if t == self.image_token_id)
            return kept == self.tokens_per_image * len(encoded.image_paths)
        return True

    def pixel_values(self, image_paths: list[Path]) -> Any:
        from PIL import Image

        images = []
        for path in image_paths:
            with Image.open(path) as img:
                images.append(img.convert("RGB"))
        return self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
