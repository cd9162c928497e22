"""Helpers for the method tests: a real `jobs.train` run in-process, the result reloaded through Chat, its loss."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.chat import RUN_PREFIX, ChatService, LoadedModel
from core.datasets.records import SAMPLES_FILE, Message, read_samples
from core.models.encoding import SampleEncoder
from core.models.loading import load_model, load_processor
from core.paths import StudioPaths
from core.store.registry import Registry, RunRecord
from core.train_config import TrainConfig
from jobs.batches import Collator

BASE = {"run_name": "method-test", "max_steps": 24, "learning_rate": 5e-3, "batch_size": 4, "seed": 1,
        "lora_r": 16, "lora_alpha": 32}


def single_thread() -> Iterator[None]:
    """Tiny models step 10x faster on one thread than on two busy cores; restores the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiny_path(data_dir: Path) -> str:
    return str(data_dir / "models" / "tiny-random-llava")


def fixed_batch(data_dir: Path, rows: int = 8) -> tuple[Any, dict[str, Any]]:
    """The processor and the first rows of the sample dataset as one batch, without running a job."""
    from core.datasets.catalog import DatasetCatalog

    paths = StudioPaths.resolve(data_dir)
    dataset_dir = DatasetCatalog(paths, Registry(paths.db_file)).resolve_dir("sample")
    processor = load_processor(tiny_path(data_dir))
    encoder = SampleEncoder(processor, 512)
    samples = [encoder.encode(s, dataset_dir) for s in list(read_samples(dataset_dir / SAMPLES_FILE))[:rows]]
    return processor, Collator(encoder)(samples)


@dataclass
class Trained:
    run: RunRecord
    registry: Registry
    chat: ChatService


def train_run(data_dir: Path, tmp_path: Path, **overrides: Any) -> Trained:
    """Run `python -m jobs.train` in this process (same code path as the subprocess) and return the finished run."""
    from jobs.train import main

    config_path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json"
    TrainConfig.from_dict({**BASE, **overrides}).save(config_path)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = main(["--config", str(config_path), "--data-dir", str(data_dir)])
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    registry = Registry(data_dir / "studio.db")
    run = max(registry.list_runs(), key=lambda r: r.id)
    assert code == 0 and run.status == "completed", (code, run.status, run.error)
    return Trained(run, registry, ChatService(StudioPaths.resolve(data_dir), registry))


def sample_dir(trained: Trained) -> Path:
    return Path(trained.registry.find_dataset("sample").path)


def batch_loss(model: Any, processor: Any, dataset_dir: Path, rows: int = 8) -> float:
    """Loss of a model on the first rows of a dataset (the fixed batch)."""
    encoder = SampleEncoder(processor, 512)
    samples = [encoder.encode(s, dataset_dir) for s in list(read_samples(dataset_dir / SAMPLES_FILE))[:rows]]
    batch = Collator(encoder)(samples)
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


def base_loss(data_dir: Path, dataset_dir: Path) -> float:
    path = tiny_path(data_dir)
    return batch_loss(load_model(path), load_processor(path), dataset_dir)


def reloaded(trained: Trained) -> LoadedModel:
    """The run's result loaded exactly as the Chat tab loads it."""
    return trained.chat._load(f"{RUN_PREFIX}{trained.run.id}")


def chat_reply(trained: Trained) -> str:
    """Ask the reloaded result about the first sample's image through ChatService.stream; returns the answer."""
    dataset_dir = sample_dir(trained)
    sample = next(iter(read_samples(dataset_dir / SAMPLES_FILE)))
    question = sample.messages[0].content
    images = [dataset_dir / p for p in sample.images]
    text = ""
    for grown in trained.chat.stream(f"{RUN_PREFIX}{trained.run.id}", [Message("user", question)], images,
                                     max_new_tokens=12):
        text = grown
    return text


def check_learned(data_dir: Path, trained: Trained, min_drop: float) -> tuple[float, float]:
    """The reloaded result's loss on the fixed batch is at least ``min_drop`` below the base's; Chat answers."""
    dataset_dir = sample_dir(trained)
    before = base_loss(data_dir, dataset_dir)
    loaded = reloaded(trained)
    after = batch_loss(loaded.model, loaded.processor, dataset_dir)
    assert after < before - min_drop, (before, after)
    assert chat_reply(trained).strip(), "the chat answer is empty"
    return before, after
