"""Full and freeze tuning: which parts train (LLaVA stage presets), real runs, and a result from_pretrained loads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from method_runs import check_learned, single_thread, tiny_path, train_run

from core.methods import get_method
from core.models.loading import load_model
from core.models.parts import count_parameters, decoder_layers
from core.train_config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def trainable_after(data_dir: Path, **settings: object) -> tuple[dict, dict]:
    """Counts after preparing the tiny model, and the untouched totals per part."""
    config = TrainConfig(**settings)
    model = load_model(tiny_path(data_dir))
    totals = {part: c["total"] for part, c in count_parameters(model).items()}
    last_layer = sum(p.numel() for p in decoder_layers(model)[-1][1].parameters())
    totals["last_layer"] = last_layer
    counts = count_parameters(get_method(config.method).prepare(model, config))
    return {part: c["trainable"] for part, c in counts.items()}, totals


@pytest.mark.parametrize("settings, parts", [
    ({"method": "full"}, {"language", "head", "projector"}),
    ({"method": "full", "train_language_model": False, "train_vision_tower": True}, {"projector", "vision"}),
    ({"method": "freeze", "freeze_preset": "llava_stage1"}, {"projector"}),
    ({"method": "freeze", "freeze_preset": "llava_stage2"}, {"projector", "language", "head"}),
])
def test_whole_parts_train_as_chosen(data_dir: Path, settings: dict, parts: set[str]) -> None:
    trainable, totals = trainable_after(data_dir, **settings)
    for part in ("vision", "projector", "language", "head"):
        assert trainable[part] == (totals[part] if part in parts else 0), part


def test_freeze_trains_the_last_n_layers_and_chosen_parts(data_dir: Path) -> None:
    trainable, totals = trainable_after(data_dir, method="freeze", freeze_layers=1, train_projector=True)
    assert trainable["language"] == totals["last_layer"]
    assert trainable["projector"] == totals["projector"]
    assert trainable["vision"] == trainable["head"] == 0


def test_full_run_saves_a_model_that_from_pretrained_and_chat_load(data_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    trained = train_run(data_dir, tmp_path, method="full", learning_rate=1e-3)
    final = Path(trained.run.artefact_dir)
    assert (final / "config.json").is_file() and (final / "model.safetensors").is_file()
    AutoProcessor.from_pretrained(final)
    AutoModelForImageTextToText.from_pretrained(final)
    check_learned(data_dir, trained, min_drop=1.0)


def test_freeze_runs_learn(data_dir: Path, tmp_path: Path) -> None:
    trained = train_run(data_dir, tmp_path, method="freeze", freeze_layers=1)
    assert trained.run.params["language"]["trainable"] > 0 and trained.run.params["vision"]["trainable"] == 0
    check_learned(data_dir, trained, min_drop=0.5)
    stage1 = train_run(data_dir, tmp_path, method="freeze", freeze_preset="llava_stage1", run_name="stage1")
    assert stage1.run.params["all"]["trainable"] == stage1.run.params["projector"]["trainable"]
    check_learned(data_dir, stage1, min_drop=0.05)
