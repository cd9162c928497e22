"""Training batches: encodes a dataset folder once (checking every row first), then pads samples into batches
with the processor's image inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.datasets.records import SAMPLES_FILE, read_samples
from core.models.encoding import IGNORE_INDEX, EncodedSample, SampleEncoder

NAMED_SKIPS = 20  # rows named in the report; the rest are counted


@dataclass
class EncodedDataset:
    samples: list[EncodedSample]
    skipped: int  # rows that cannot train: cut inside an image or before their answer, or image tokens off
    truncated: int
    skipped_rows: list[tuple[str, str]] = field(default_factory=list)  # (row id, why), the first NAMED_SKIPS

    def report(self) -> str:
        """One line of counts, then one line per named skipped row."""
        lines = [f"dataset: {len(self.samples)} rows to train on, {self.skipped} skipped, {self.truncated} truncated"]
        lines += [f"  skipped row {row}: {why}" for row, why in self.skipped_rows]
        if self.skipped > len(self.skipped_rows):
            lines.append(f"  ... and {self.skipped - len(self.skipped_rows)} more")
        return "\n".join(lines)


def encode_dataset(dataset_dir: Path, encoder: SampleEncoder) -> EncodedDataset:
    """Every row encoded and checked before the first step; rows that cannot train are left out and named."""
    kept, skipped, truncated, named = [], 0, 0, []
    for sample in read_samples(Path(dataset_dir) / SAMPLES_FILE):
        encoded = encoder.encode(sample, dataset_dir)
        truncated += encoded.truncated
        why = encoder.untrainable_reason(encoded)
        if not why:
            kept.append(encoded)
            continue
        skipped += 1
        if len(named) < NAMED_SKIPS:
            named.append((sample.id, why))
    if not kept:
        reasons = "; ".join(f"row {row}: {why}" for row, why in named[:3])
        raise ValueError(f"no trainable rows in {dataset_dir}: {skipped} rows cannot train ({reasons})")
    return EncodedDataset(kept, skipped, truncated, named)


class Collator:
    """Right-pads token ids (pad id) and labels (ignored), and adds the processor's inputs for the batch's images."""

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
        return {"input_ids": ids, "attention_mask": mask, "labels": labels,
                **self.encoder.batch_inputs(batch, ids)}


def to_device(batch: dict[str, Any], device: str, float_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The batch on ``device``; floating-point inputs (pixel values) in ``float_dtype`` when given."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if float_dtype is not None and value.is_floating_point():
                value = value.to(float_dtype)
        out[key] = value
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
