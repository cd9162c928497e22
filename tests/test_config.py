"""The training config: JSON round trip, every problem reported per field, and file errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.problems import ProblemsError
from core.train_config import TrainConfig


def test_round_trip_through_json_file(tmp_path: Path) -> None:
    config = TrainConfig(run_name="colours", lora_r=4, learning_rate=1e-3, gradient_checkpointing=True)
    path = tmp_path / "config.json"
    config.save(path)
    assert TrainConfig.load(path) == config
    assert json.loads(path.read_text())["lora_r"] == 4


def test_form_values_are_coerced() -> None:
    config = TrainConfig.from_dict({"lora_r": 16.0, "max_steps": "12", "gradient_checkpointing": "true"})
    assert (config.lora_r, config.max_steps, config.gradient_checkpointing) == (16, 12, True)


def test_every_problem_is_reported_with_its_field() -> None:
    _, problems = TrainConfig.parse({
        "lora_r": 0, "batch_size": 2.5, "precision": "fp8", "run_name": " ", "surprise": 1, "learning_rate": "fast",
    })
    by_field = {p.field: p.message for p in problems}
    assert "at least 1" in by_field["lora_r"]
    assert "whole number" in by_field["batch_size"]
    assert "one of fp32, bf16, fp16" in by_field["precision"]
    assert "name" in by_field["run_name"]
    assert "unknown setting" in by_field["surprise"]
    assert "a number" in by_field["learning_rate"]


def test_cross_field_rules() -> None:
    problems = TrainConfig(max_steps=0, num_epochs=0, lora_targets="custom").validate(cuda_available=False)
    fields = {p.field for p in problems}
    assert {"max_steps", "lora_custom_targets"} <= fields


def test_fp16_and_cuda_need_a_gpu() -> None:
    assert any(p.field == "precision" and "CUDA" in p.message
               for p in TrainConfig(precision="fp16").validate(cuda_available=False))
    assert not [p for p in TrainConfig(precision="fp16").validate(cuda_available=True)]
    assert any(p.field == "device" for p in TrainConfig(device="cuda").validate(cuda_available=False))


def test_bad_config_file_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "lora_r": 8,\n  "seed": \n}\n')
    with pytest.raises(ProblemsError) as err:
        TrainConfig.load(path)
    problem = err.value.problems[0]
    assert problem.file == str(path) and problem.line == 4


def test_bad_value_in_file_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"lora_r": -3}))
    with pytest.raises(ProblemsError) as err:
        TrainConfig.load(path)
    assert err.value.problems[0].file == str(path)
    assert "lora_r" in str(err.value)


def test_every_field_has_form_metadata() -> None:
    for f in TrainConfig.fields():
        assert f.metadata["label"], f.name
        assert f.metadata["help"], f.name
