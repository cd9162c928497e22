"""Turns a Sample into model inputs through the model's own processor, training only on the assistant's tokens.

The conversation is rendered by the model's chat template; each image placeholder is replaced by exactly the text
the model's processor puts there for that image (its family's rule: a fixed count, Qwen-VL's dynamic grid, any-res
tiles, split tiles, or mllama's single <|image|>); the whole text is tokenized once. The processor's other outputs
(grids, image sizes, masks, token types, cross-attention masks) are made for a batch by ``batch_inputs``. The
trainer, the dataset preview, the statistics and chat all use this module, so what the preview marks as trained
is exactly what the loss sees.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.datasets.records import IMAGE_PLACEHOLDER, Message, Sample
from core.models.families import Family, ImageMeta, ImageSettings, family_of_processor
from core.models.families.base import blank_images

IGNORE_INDEX = -100
PROBE = (64, 64)  # the size measured where a family's image tokens do not depend on the image
NO_ANSWER = "max length {n} leaves no answer token to learn from"
CUT_IMAGE = "max length {n} cuts image {k} of the row (its tokens end at {end}); raise max length to at least {end}"
TOKEN_MISMATCH = ("the ids hold {found} image tokens but its {n} images need {expected}; the chat template or "
                  "tokenizer does not keep each image placeholder as one piece")
MODEL_MISMATCH = ("image {k}: the processor gives {given} image tokens but the model makes {made} features of it; "
                  "the processor's settings do not match the model's config")
PLACEHOLDERS = "the chat template wrote {found} image placeholders for the row's {n} images"


@dataclass
class EncodedSample:
    input_ids: list[int]
    labels: list[int]
    image_paths: list[Path]
    truncated: bool
    image_tokens: list[int] = field(default_factory=list)  # per image: the ids standing for its features
    image_ends: list[int] = field(default_factory=list)  # per image: the token index just after its expansion
    prefix_length: int = 0  # tokens before the first answer (PaliGemma's bidirectional prefix)
    problem: str = ""  # why the row cannot train, found while encoding


class TemplateError(ValueError):
    """The model's chat template cannot be split into prompt and answer spans."""


@dataclass(frozen=True)
class Expansion:
    text: str  # what the placeholder becomes
    tokens: int  # counted image tokens in it
    meta: ImageMeta


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


def open_rgb(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")


class SampleEncoder:
    """Encodes samples for one model's processor (a VLM processor or a plain tokenizer).

    ``images`` are the run's resolution settings; ``model_config``, when given, lets each sample be checked
    against what the model will consume.
    """

    def __init__(self, processor: Any, max_length: int, images: ImageSettings | None = None,
                 family: Family | None = None, model_config: Any = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.family = family or family_of_processor(processor)
        self.vision = hasattr(processor, "image_processor")
        self.max_length = max_length
        self.settings = images or ImageSettings()
        self.model_config = model_config
        self.image_token = self.family.placeholder(processor) if self.vision else None
        self.image_token_id = self.family.counted_token_id(processor) if self.vision else None
        self.counted = self.family.counted_token(processor) if self.vision else None
        self.image_kwargs = self.family.image_kwargs(processor, self.settings) if self.vision else {}
        own = getattr(processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)
        self.template = None if own else self.family.chat_template
        self._expansions: dict[tuple, Expansion] = {}
        self._sizes: dict[Path, tuple[int, int]] = {}

    # --- text -------------------------------------------------------------------------------------------
    def render(self, messages: list[Message], add_generation_prompt: bool = False) -> str:
        templated = to_template_messages(messages, self.vision)
        extra = {"chat_template": self.template} if self.template else {}
        return self.processor.apply_chat_template(
            templated, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)

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

    # --- images -----------------------------------------------------------------------------------------
    def _size(self, path: Path) -> tuple[int, int]:
        if not self.family.size_dependent:
            return PROBE
        if path not in self._sizes:
            from PIL import Image

            with Image.open(path) as img:
                self._sizes[path] = img.size
        return self._sizes[path]

    def expansions(self, sizes: list[tuple[int, int]]) -> list[Expansion]:
        """What each image of one sample becomes, measured once per (size, alone) on a blank image of that size."""
        alone = len(sizes) == 1
        if any((size, alone) not in self._expansions for size in sizes):
            processed = self.family.process(self.processor, [blank_images(sizes)], self.image_kwargs)
            counts = [len(sizes)]
            for i, size in enumerate(sizes):
                text = self.family.expand(self.processor, processed, i, self.image_kwargs)
                self._expansions[(size, alone)] = Expansion(text, text.count(self.counted or "\0"),
                                                            self.family.meta(processed, i, counts))
        return [self._expansions[(size, alone)] for size in sizes]

    @property
    def tokens_per_image(self) -> int:
        """Image tokens of one image at the probe size (every image's count, for families with a fixed count)."""
        return self.expansions([PROBE])[0].tokens if self.vision else 0

    # --- encoding ---------------------------------------------------------------------------------------
    def encode(self, sample: Sample, dataset_dir: Path | None = None) -> EncodedSample:
        root = Path(dataset_dir) if dataset_dir else Path(".")
        paths = [root / p for p in sample.images]
        return self._encode(self.segments(sample.messages), paths, truncate=True)

    def encode_prompt(self, messages: list[Message], image_paths: list[Path]) -> EncodedSample:
        """A conversation ending with the user's turn, ready for generation (nothing trained, never cut)."""
        return self._encode([(self.render(messages, add_generation_prompt=True), False)], list(image_paths),
                            truncate=False)

    def _encode(self, pieces: list[tuple[str, bool]], paths: list[Path], truncate: bool) -> EncodedSample:
        problem = ""
        expansions: list[Expansion] = []
        if self.vision and paths:
            try:
                expansions = self.expansions([self._size(p) for p in paths])
            except OSError as e:
                problem = f"an image cannot be read: {e}"
        texts, trained_spans, image_spans = self._expand(pieces, expansions)
        found = len(image_spans)
        if self.vision and found != len(paths) and not problem:
            problem = PLACEHOLDERS.format(found=found, n=len(paths))
        ids, trained, starts = self._tokenize(texts, trained_spans, image_spans)
        labels = [t if keep else IGNORE_INDEX for t, keep in zip(ids, trained, strict=True)]
        ends = [bisect.bisect_left(starts, end) for _, end in image_spans]
        first = next((i for i, keep in enumerate(trained) if keep), len(ids))
        encoded = EncodedSample(ids, labels, paths, False, [e.tokens for e in expansions], ends, first, problem)
        if not problem:
            encoded.problem = self._check(encoded, expansions)
        if truncate and len(ids) > self.max_length:
            encoded.input_ids, encoded.labels = ids[: self.max_length], labels[: self.max_length]
            encoded.truncated = True
        return encoded

    def _expand(self, pieces: list[tuple[str, bool]], expansions: list[Expansion]
                ) -> tuple[str, list[tuple[int, int]], list[tuple[int, int]]]:
        """The whole text with each placeholder expanded, the character spans that train, and each image's span."""
        out: list[str] = []
        trained_spans: list[tuple[int, int]] = []
        image_spans: list[tuple[int, int]] = []
        length = 0
        images = iter(expansions)
        token = self.image_token if self.vision else None
        for text, trained in pieces:
            start = length
            for i, chunk in enumerate(text.split(token) if token else [text]):
                if i > 0:
                    expansion = next(images, None)
                    piece = expansion.text if expansion is not None else token
                    image_spans.append((length, length + len(piece)))
                    out.append(piece)
                    length += len(piece)
                out.append(chunk)
                length += len(chunk)
            if trained:
                trained_spans.append((start, length))
        return "".join(out), trained_spans, image_spans

    def _tokenize(self, text: str, trained_spans: list[tuple[int, int]], image_spans: list[tuple[int, int]]
                  ) -> tuple[list[int], list[bool], list[int]]:
        """Token ids of the whole text, whether each trains (its first character is in an answer), and where each
        token starts in the text. A tokenizer without offsets tokenizes the pieces between span edges apart."""
        try:
            encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            ids = list(encoded["input_ids"])
            starts = [int(start) for start, _ in encoded["offset_mapping"]]
        except (NotImplementedError, KeyError, TypeError, ValueError):
            edges = sorted({0, len(text), *(b for span in trained_spans + image_spans for b in span)})
            ids, starts = [], []
            for a, b in zip(edges, edges[1:], strict=False):
                piece = self.tokenizer(text[a:b], add_special_tokens=False)["input_ids"]
                ids += piece
                starts += [a] * len(piece)
        bounds = [b for span in trained_spans for b in span]
        trained = [bisect.bisect_right(bounds, s) % 2 == 1 for s in starts]
        return ids, trained, starts

    def _check(self, encoded: EncodedSample, expansions: list[Expansion]) -> str:
        """The row's image tokens against its images (and, with a model config, against the model)."""
        if not self.vision or not expansions:
            return ""
        expected = sum(e.tokens for e in expansions)
        found = sum(1 for t in encoded.input_ids if t == self.image_token_id)
        if found != expected:
            return TOKEN_MISMATCH.format(found=found, n=len(expansions), expected=expected)
        if self.model_config is not None:
            for k, e in enumerate(expansions, start=1):
                made = self.family.consumed(self.model_config, e.meta)
                if made is not None and made != e.tokens:
                    return MODEL_MISMATCH.format(k=k, given=e.tokens, made=made)
        return ""

    def untrainable_reason(self, encoded: EncodedSample) -> str:
        """Why a (possibly truncated) row cannot train; empty when it can."""
        if encoded.problem:
            return encoded.problem
        kept = len(encoded.input_ids)
        if self.vision and encoded.image_paths:
            for k, end in enumerate(encoded.image_ends, start=1):
                if end > kept:
                    return CUT_IMAGE.format(n=kept, k=k, end=end)
            expected = sum(encoded.image_tokens) if encoded.image_tokens else self._expected(encoded)
            if sum(1 for t in encoded.input_ids if t == self.image_token_id) != expected:
                return CUT_IMAGE.format(n=kept, k=len(encoded.image_paths), end=kept + 1)
        if not any(label != IGNORE_INDEX for label in encoded.labels):
            return NO_ANSWER.format(n=kept)
        return ""

    def _expected(self, encoded: EncodedSample) -> int:
        try:
            return sum(e.tokens for e in self.expansions([self._size(p) for p in encoded.image_paths]))
        except OSError:
            return -1

    def is_trainable(self, encoded: EncodedSample) -> bool:
        """False when truncation cut into an image, no answer token is left, or the image tokens do not add up."""
        return not self.untrainable_reason(encoded)

    # --- batches ----------------------------------------------------------------------------------------
    def batch_inputs(self, samples: list[EncodedSample], input_ids: Any) -> dict[str, Any]:
        """The processor's other outputs for a batch whose padded ids are ``input_ids``: pixel values and whatever
        the family's model takes beside them (grids, sizes, masks, token types)."""
        if not self.vision:
            return {}
        images = [[open_rgb(p) for p in s.image_paths] for s in samples]
        counts = [len(group) for group in images]
        processed = self.family.process(self.processor, images, self.image_kwargs) if any(counts) else {}
        out = self.family.model_inputs(processed)
        out.update(self.family.text_inputs(self.processor, input_ids, samples, processed, counts))
        return out

    def prompt_inputs(self, messages: list[Message], image_paths: list[Path]) -> dict[str, Any]:
        """Everything ``generate`` needs for a conversation that ends with the user's turn."""
        import torch

        encoded = self.encode_prompt(messages, image_paths)
        if encoded.problem:
            raise ValueError(encoded.problem)
        ids = torch.tensor([encoded.input_ids], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), **self.batch_inputs([encoded], ids)}
