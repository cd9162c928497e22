"""LoRA: r·(d_in+d_out) per adapted matrix, rsLoRA/DoRA, the projector trained beside it with its own LR, a real run."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from method_runs import check_learned, single_thread, tiny_path, train_run

from core.methods import get_method
from core.models.loading import load_model
from core.models.parts import count_parameters, part_of
from core.train_config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def adapted_linears(model: torch.nn.Module, short_names: set[str]) -> list[torch.nn.Linear]:
    return [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and part_of(n) == "language"
            and n.rsplit(".", 1)[-1] in short_names]


def test_trainable_count_is_r_times_din_plus_dout(data_dir: Path) -> None:
    config = TrainConfig(method="lora", lora_r=4, lora_targets="attention")
    base = load_model(tiny_path(data_dir))
    expected = sum(4 * (m.in_features + m.out_features)
                   for m in adapted_linears(base, {"q_proj", "k_proj", "v_proj", "o_proj"}))
    model = get_method("lora").prepare(base, config)
    counts = count_parameters(model)
    assert counts["adapter"]["trainable"] == expected == counts["all"]["trainable"]
    assert counts["language"]["trainable"] == counts["vision"]["trainable"] == 0


def test_rslora_dora_and_projector_with_its_own_learning_rate(data_dir: Path) -> None:
    config = TrainConfig(method="lora", lora_r=4, lora_alpha=8, use_rslora=True, use_dora=True,
                         lora_train_projector=True, projector_lr=1e-3, learning_rate=2e-4)
    base = load_model(tiny_path(data_dir))
    linears = adapted_linears(base, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    lora = sum(4 * (m.in_features + m.out_features) for m in linears)
    magnitudes = sum(m.out_features for m in linears)  # DoRA learns one magnitude per output
    projector = sum(p.numel() for n, p in base.named_parameters() if part_of(n) == "projector")
    method = get_method("lora")
    model = method.prepare(base, config)
    counts = count_parameters(model)
    assert counts["adapter"]["trainable"] == lora + magnitudes
    assert counts["projector"]["trainable"] == projector  # the modules_to_save copy
    q_proj = next(m for n, m in model.named_modules() if n.endswith("language_model.layers.0.self_attn.q_proj"))
    assert math.isclose(q_proj.scaling["default"], 8 / math.sqrt(4))  # rsLoRA: alpha / sqrt(r)
    groups = method.optimizer_groups(model, config)
    assert [g.get("lr") for g in groups] == [None, 1e-3]
    assert sum(p.numel() for p in groups[1]["params"]) == projector


def test_lora_run_learns_and_chat_answers(data_dir: Path, tmp_path: Path) -> None:
    trained = train_run(data_dir, tmp_path, method="lora", use_dora=True, lora_train_projector=True,
                        projector_lr=1e-3)
    assert (Path(trained.run.artefact_dir) / "adapter_config.json").is_file()
    assert trained.run.params["projector"]["trainable"] > 0 and trained.run.params["adapter"]["trainable"] > 0
    check_learned(data_dir, trained, min_drop=0.5)
