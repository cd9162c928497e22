"""Helpers for tests that run real training jobs: configs, waiting for a status, a fixed batch's loss."""

from __future__ import annotations

import time
from pathlib import Path

from core.store.registry import Registry, RunRecord
from core.train_config import TrainConfig

FAST = {"max_steps": 24, "learning_rate": 5e-3, "lora_r": 16, "lora_alpha": 32, "batch_size": 4, "seed": 1}


def fast_config(**overrides: object) -> TrainConfig:
    return TrainConfig.from_dict({"run_name": "test", **FAST, **overrides})


def wait_for(registry: Registry, run_id: int, statuses: tuple[str, ...], timeout: float = 180) -> RunRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = registry.get_run(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {registry.get_run(run_id).status} after {timeout} s")


def fixed_batch_loss(model_dir: Path, dataset_dir: Path, adapter_dir: Path | None) -> float:
    """Loss of the base model (or base + adapter) on the first 8 rows of a dataset."""
    import torch
    from peft import PeftModel

    from core.datasets.records import SAMPLES_FILE, read_samples
    from core.models.encoding import SampleEncoder
    from core.models.loading import load_model, load_processor
    from jobs.batches import Collator

    processor = load_processor(str(model_dir))
    model = load_model(str(model_dir))
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    encoder = SampleEncoder(processor, 512)
    rows = [encoder.encode(s, dataset_dir) for s in list(read_samples(dataset_dir / SAMPLES_FILE))[:8]]
    with torch.no_grad():
        return float(model(**Collator(encoder)(rows)).loss)
