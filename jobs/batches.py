"""Training batches: encodes a dataset folder once, then pads samples into batches with their images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.datasets.records import SAMPLES_FILE, read_samples
from core.models.encoding import IGNORE_INDEX, EncodedSample, SampleEncoder


@dataclass
class EncodedDataset:
    samples: list[EncodedSample]
    skipped: int  # rows cut so short by max_length that nothing (or a partial image) was left
    truncated: int


def encode_dataset(dataset_dir: Path, encoder: SampleEncoder) -> EncodedDataset:
    kept, skipped, truncated = [], 0, 0
    for sample in read_samples(Path(dataset_dir) / SAMPLES_FILE):
        encoded = encoder.encode(sample, dataset_dir)
        truncated += encoded.truncated
        if encoder.is_trainable(encoded):
            kept.append(encoded)
        else:
            skipped += 1
    if not kept:
        raise ValueError(
            f"no trainable rows in {dataset_dir}: {skipped} rows were cut by max length before their answer "
            "or inside their image tokens; raise max length"
        )
    return EncodedDataset(kept, skipped, truncated)


class Collator:
    """Right-pads token ids (pad id) and labels (ignored) and stacks the batch's images in order."""

    def __init__(self, encoder: SampleEncoder):
        self.encoder = encoder
        self.pad_id = encoder.tokenizer.pad_token_id

    def __call__(self, batch: list[EncodedSample]) -> dict[str, Any]:
        width = max(len(s.input_ids) for s in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, s in enumerate(batch):
            n = len(s.input_ids)
            ids[row, :n] = torch.tensor(s.input_ids)
            labels[row, :n] = torch.tensor(s.labels)
            mask[row, :n] = 1
        out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        paths = [p for s in batch for p in s.image_paths]
        if paths:
            out["pixel_values"] = self.encoder.pixel_values(paths)
        return out


def batch_stream(samples: list[EncodedSample], batch_size: int, seed: int,
                 collate: Callable[[list[EncodedSample]], dict[str, Any]], skip: int = 0) -> Iterator[dict[str, Any]]:
    """Endless micro-batches, reshuffled each epoch from ``seed``; ``skip`` passes over the first ones without
    loading them, so a resumed run sees exactly the batches it would have seen."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(samples), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            if skip:
                skip -= 1
                continue
            yield collate([samples[i] for i in order[start:start + batch_size]])
