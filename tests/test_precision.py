"""Precision and optimizers: bf16 mixed and pure bf16 train on CPU, fp16 is refused there, every optimizer steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from method_runs import check_learned, fixed_batch, single_thread, tiny_path, train_run

from core.methods import get_method
from core.models.loading import load_model
from core.models.parts import part_of
from core.train_config import OPTIMIZERS, TrainConfig
from jobs.loop import align_trainable_dtype, autocast_for
from jobs.optimizers import build_optimizer


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_lowers_the_loss(data_dir: Path, optimizer: str) -> None:
    config = TrainConfig(method="full", optimizer=optimizer, learning_rate=1e-3)
    method = get_method("full")
    model = method.prepare(load_model(tiny_path(data_dir)), config)
    _, batch = fixed_batch(data_dir, rows=4)
    opt = build_optimizer(config, method.optimizer_groups(model, config))
    losses = []
    for _ in range(6):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses


def test_pure_bf16_trains_bf16_weights_and_mixed_keeps_fp32(data_dir: Path) -> None:
    config = TrainConfig(method="lora", precision="pure_bf16")
    model = get_method("lora").prepare(load_model(tiny_path(data_dir), precision="pure_bf16"), config)
    align_trainable_dtype(model, config.precision)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}

    mixed = TrainConfig(method="qlora", quantization="4bit", compute_dtype="bf16", precision="bf16",
                        lora_train_projector=True)
    method = get_method("qlora")
    model = method.prepare(load_model(tiny_path(data_dir), precision="bf16", **method.load_kwargs(mixed)), mixed)
    align_trainable_dtype(model, mixed.precision)
    frozen = {p.dtype for n, p in model.named_parameters() if part_of(n) == "vision"}
    assert frozen == {torch.bfloat16}  # the frozen unquantized parts stay in the half dtype, as in QLoRA
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}  # master weights
    _, batch = fixed_batch(data_dir, rows=2)
    with autocast_for(mixed, "cpu"):
        model(**batch).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("precision", ["bf16", "pure_bf16"])
def test_bf16_runs_learn_on_cpu_and_chat_answers(data_dir: Path, tmp_path: Path, precision: str) -> None:
    trained = train_run(data_dir, tmp_path, method="full", precision=precision, learning_rate=1e-3,
                        max_steps=12, grad_accum=2, batch_size=2)
    assert trained.run.step == 12
    check_learned(data_dir, trained, min_drop=0.5)


def test_fp16_is_explained_not_changed_on_cpu() -> None:
    config = TrainConfig(precision="fp16")
    (problem,) = config.validate(cuda_available=False)
    assert problem.field == "precision" and "CUDA" in problem.message and "bf16" in problem.message
    assert config.precision == "fp16"  # nothing was silently switched


def test_mixed_precision_keeps_the_frozen_base_in_half_and_every_candidate_in_fp32(data_dir: Path) -> None:
    from jobs.loop import align_trainable_dtype as align

    lora = TrainConfig(method="lora", precision="bf16")
    model = get_method("lora").prepare(load_model(tiny_path(data_dir), precision="bf16"), lora)
    align(model, lora.precision)
    frozen = {p.dtype for n, p in model.named_parameters() if not p.requires_grad and p.is_floating_point()}
    assert frozen == {torch.bfloat16}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}

    lisa = TrainConfig(method="lisa", precision="bf16", lisa_layers=1, lisa_interval=2)
    method = get_method("lisa")
    model = method.prepare(load_model(tiny_path(data_dir), precision="bf16"), lisa)
    candidates = [p for group in method.optimizer_groups(model, lisa) for p in group["params"]]
    assert any(not p.requires_grad for p in candidates)  # a decoder layer frozen for now, sampled later
    align(model, lisa.precision, candidates)
    assert {p.dtype for p in candidates} == {torch.float32}
