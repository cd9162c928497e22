"""Scoring a model on samples: negative log-likelihood of the reference tokens, per row and over a set, and
batched greedy generation with a per-sample token limit that a stop request cuts short."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.records import Message
from core.models.encoding import IGNORE_INDEX, EncodedSample

Batch = dict[str, Any]


@dataclass
class SetLoss:
    """Summed negative log-likelihood over every reference token of a set, and how many tokens there were."""

    nll: float
    tokens: int
    rows: int

    @property
    def mean(self) -> float:
        return self.nll / self.tokens if self.tokens else float("nan")


def row_losses(model: Any, batch: Batch) -> list[tuple[float, int]]:
    """(summed NLL, label tokens) per row of a collated batch already on the model's device.

    The model runs without labels and each row's loss is taken from its own logits in fp32, so rows are told
    apart; virtual tokens a prompt-tuning model puts in front are cut off the logits first.
    """
    import torch
    import torch.nn.functional as F

    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        logits = model(**inputs).logits
    logits = logits[:, -labels.shape[1]:]
    out = []
    for row in range(labels.shape[0]):
        target = labels[row, 1:]
        count = int((target != IGNORE_INDEX).sum())
        if not count:
            out.append((0.0, 0))
            continue
        nll = F.cross_entropy(logits[row, :-1].float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
        out.append((float(nll), count))
    return out


def set_loss(model: Any, samples: Sequence[EncodedSample], batch_size: int, collate: Callable[[list], Batch],
             prepare: Callable[[Batch], Batch], autocast: Callable[[], contextlib.AbstractContextManager] | None = None
             ) -> SetLoss:
    """Eval loss over ``samples`` in micro-batches: ``collate`` pads them, ``prepare`` moves them to the device
    (and dtype), ``autocast`` gives the run's mixed-precision context. The model is put in eval mode for the
    pass and given back in the mode it was in."""
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    try:
        for start in range(0, len(samples), batch_size):
            batch = prepare(collate(list(samples[start:start + batch_size])))
            with autocast() if autocast else contextlib.nullcontext():
                for row_nll, count in row_losses(model, batch):
                    nll, tokens = nll + row_nll, tokens + count
    finally:
        model.train(was_training)
    return SetLoss(nll, tokens, len(samples))


def model_dtype(model: Any) -> Any:
    """The floating dtype images go in as: the model's own (bf16 for a bf16 model, fp32 otherwise)."""
    import torch

    dtype = getattr(model, "dtype", None)
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32


def to_model(batch: Batch, device: str, dtype: Any) -> Batch:
    """A batch on the device, its pixel values in the model's dtype."""
    moved = {k: v.to(device) for k, v in batch.items()}
    if "pixel_values" in moved:
        moved["pixel_values"] = moved["pixel_values"].to(dtype)
    return moved


def _stop_when(event: threading.Event | None) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            return torch.full((input_ids.shape[0],), bool(event and event.is_set()), dtype=torch.bool,
                              device=input_ids.device)

    return StoppingCriteriaList([Stop()])


def generate_answers(loaded: Any, prompts: Sequence[list[Message]], images: Sequence[list[Path]],
                     max_new_tokens: int, stop: threading.Event | None = None) -> list[str]:
    """Greedy answers to a batch of conversations (each ending with the user's turn), left-padded together.

    ``loaded`` is a chat ``LoadedModel`` (model, processor, encoder, device); ``images[i]`` fill the
    placeholders of ``prompts[i]`` in order. Generation stops at ``max_new_tokens`` per answer, or at once
    when ``stop`` is set.
    """
    import torch
    from PIL import Image

    encoder = loaded.encoder
    texts = [encoder.render(p, add_generation_prompt=True) for p in prompts]
    tokenizer = encoder.tokenizer
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        flat = [p for paths in images for p in paths]
        if encoder.vision:
            pictures = []
            for path in flat:
                with Image.open(path) as img:
                    pictures.append(img.convert("RGB"))
            inputs = loaded.processor(text=texts, images=pictures or None, padding=True, return_tensors="pt")
        else:
            inputs = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    inputs = to_model(dict(inputs), loaded.device, model_dtype(loaded.model))
    with torch.no_grad():
        out = loaded.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id, stopping_criteria=_stop_when(stop))
    new = out[:, inputs["input_ids"].shape[1]:]
    return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
