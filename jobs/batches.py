"""Training batches: encodes a dataset folder once (checking every row first), then orders samples (shuffled, or
grouped by length), shares the micro-batches among ranks, and pads or packs them with the processor's image
inputs."""

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


class PackingCollator(Collator):
    """Padding-free batches for text: the samples of a micro-batch become one row, positions restarting at each
    sample, so attention (SDPA's packed mask, FlashAttention's varlen) stays inside each. A sample's first token is
    never a target (it would be predicted from the previous sample). Batches with images are padded as usual."""

    def __call__(self, batch: list[EncodedSample]) -> dict[str, Any]:
        if len(batch) == 1 or any(s.image_paths for s in batch):
            return super().__call__(batch)
        ids = torch.tensor([[t for s in batch for t in s.input_ids]], dtype=torch.long)
        labels = [IGNORE_INDEX if i == 0 else t for s in batch for i, t in enumerate(s.labels)]
        positions = [i for s in batch for i in range(len(s.input_ids))]
        extra = self.encoder.batch_inputs(batch, ids)
        if extra:  # the family needs per-row inputs (token types, a prefix mask): pad instead
            return super().__call__(batch)
        # transformers finds the samples from the positions only without a KV cache (so never with use_cache).
        return {"input_ids": ids, "labels": torch.tensor([labels], dtype=torch.long),
                "position_ids": torch.tensor([positions], dtype=torch.long), "use_cache": False}


def token_count(batch: dict[str, Any]) -> int:
    """Real tokens in a batch (padded: the mask's ones; packed: every position)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())


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


MEGA_BATCH = 50  # micro-batches sorted together by length (as Hugging Face's LengthGroupedSampler)


def length_grouped(order: list[int], samples: list[EncodedSample], batch_size: int,
                   generator: torch.Generator) -> list[list[int]]:
    """LLaVA's group_by_modality_length: inside each mega-batch of the shuffled ``order``, samples with images and
    without are sorted apart, longest first, and cut into micro-batches, which are then shuffled (from the same
    generator, so the order is fixed by the seed and a resume sees it again)."""
    mega = batch_size * max(1, min(MEGA_BATCH, len(order) // (4 * batch_size)))
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start:start + mega],
                       key=lambda i: (bool(samples[i].image_paths), len(samples[i].input_ids)), reverse=True)
        cut = [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
        batches += [cut[k] for k in torch.randperm(len(cut), generator=generator).tolist()]
    return batches


def batch_stream(samples: list[EncodedSample], batch_size: int, seed: int,
                 collate: Callable[[list[EncodedSample]], dict[str, Any]], skip: int = 0,
                 group_by_length: bool = False, rank: int = 0, world: int = 1) -> Iterator[dict[str, Any]]:
    """Endless micro-batches, reshuffled each epoch from ``seed``; ``skip`` passes over the first ones without
    loading them, so a resumed run sees exactly the batches it would have seen. With ``world`` ranks, the one
    stream is dealt out in turn: rank r gets micro-batches r, r + world, ... (so a step of N ranks sees what N
    accumulated micro-batches of one process would)."""
    generator = torch.Generator().manual_seed(seed)
    index = 0
    while True:
        order = torch.randperm(len(samples), generator=generator).tolist()
        batches = length_grouped(order, samples, batch_size, generator) if group_by_length else \
            [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
        for members in batches:
            mine = index % world == rank
            index += 1
            if skip:
                skip -= 1
                continue
            if mine:
                yield collate([samples[i] for i in members])
