"""What the family tests share: the two-turn, two-image sample and its images, encoders and fixed batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from family_models import FAMILIES, TEXT_MODELS

from core.datasets.records import Message, Sample
from core.models.encoding import SampleEncoder
from core.models.families import ImageSettings, family_for
from core.models.loading import load_model, load_processor
from jobs.batches import Collator

ALL_MODELS = FAMILIES + TEXT_MODELS
ANSWERS = ("It is red.", "It is blue.")
TWO_IMAGES = Sample("two-images", [
    Message("system", "Answer briefly."),
    Message("user", "<image>What colour is the shape?"),
    Message("assistant", ANSWERS[0]),
    Message("user", "And in this one? <image>"),
    Message("assistant", ANSWERS[1]),
], ["wide.png", "tall.png"])
TEXT_ONLY = Sample("text-only", [Message("user", "Which one is larger?"), Message("assistant", "The circle.")])
TEXT_TWO_TURNS = Sample("text-two-turns", [
    Message("user", "What colour is the sky?"), Message("assistant", ANSWERS[0]),
    Message("user", "And the sea?"), Message("assistant", ANSWERS[1]),
])


def write_images(folder: Path) -> Path:
    """A wide red and a tall blue image (different sizes give different token counts in dynamic families)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (100, 40), (220, 30, 30)).save(folder / "wide.png")
    Image.new("RGB", (40, 100), (30, 30, 220)).save(folder / "tall.png")
    return folder


def encoder_for(path: Path, max_length: int = 4096, settings: ImageSettings | None = None) -> SampleEncoder:
    """An encoder as training builds it: the model's processor, family and config."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path)
    return SampleEncoder(load_processor(str(path)), max_length, settings, family_for(config), config)


def samples_for(name: str) -> list[Sample]:
    return [TEXT_TWO_TURNS, TEXT_ONLY] if name in TEXT_MODELS else [TWO_IMAGES, TEXT_ONLY]


def fixed_batch(path: Path, name: str, images: Path) -> dict[str, Any]:
    """The family's fixed batch: the two-image sample beside a text-only one (text models: two text samples)."""
    encoder = encoder_for(path)
    return Collator(encoder)([encoder.encode(s, images) for s in samples_for(name)])


def loss_of(model: Any, batch: dict[str, Any]) -> float:
    """The batch's loss without gradients. In train mode (the tiny models have no dropout): bitsandbytes repacks a
    4-bit weight for CPU inference the first time it runs in eval mode, and its layers with a bias then fail to
    train (an in-place add on a leaf that requires grad)."""
    model.train()
    with torch.no_grad():
        return float(model(**batch).loss)


def train_steps(model: Any, batch: dict[str, Any], steps: int = 3, lr: float = 1e-2) -> list[float]:
    """``steps`` AdamW steps on one batch; the losses before each step."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses


def loaded(path: Path, **kwargs: Any) -> Any:
    return load_model(str(path), **kwargs)
