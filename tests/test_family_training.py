"""Every family trains through the studio's methods: LoRA lowers the loss on a fixed batch and adapts only the
language model, QLoRA keeps the family's tower, projector and head unquantized, the freeze presets train only the
parts they name, and a merged export reloads as the same model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from family_cases import ALL_MODELS, fixed_batch, loaded, loss_of, train_steps, write_images
from family_models import FAMILIES, TEXT_MODELS
from method_runs import single_thread

from core.methods import get_method
from core.models.parts import part_names
from core.train_config import TrainConfig

LORA = {"method": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"))


def adapted(model: torch.nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if hasattr(m, "lora_A") and not n.endswith("lora_A")]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_three_lora_steps_lower_the_loss_and_adapt_only_the_language_model(family_model, images: Path,
                                                                           name: str) -> None:
    path = family_model(name)
    batch = fixed_batch(path, name, images)
    model = get_method("lora").prepare(loaded(path), TrainConfig(**LORA))
    before = loss_of(model, batch)
    train_steps(model, batch)
    assert loss_of(model, batch) < before - 0.05
    part_of = part_names(model)
    assert adapted(model) and {part_of(n) for n in adapted(model)} == {"language"}


@pytest.mark.parametrize("name", ALL_MODELS)
def test_qlora_quantizes_the_language_model_only_and_learns(family_model, images: Path, name: str) -> None:
    import bitsandbytes as bnb

    path = family_model(name)
    batch = fixed_batch(path, name, images)
    config = TrainConfig(**{**LORA, "method": "qlora", "quantization": "4bit", "compute_dtype": "fp32"})
    method = get_method("qlora")
    model = method.prepare(loaded(path, **method.load_kwargs(config)), config)
    part_of = part_names(model)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and "lora_" not in n}
    quantized = {part_of(n) for n, m in linears.items() if isinstance(m, bnb.nn.Linear4bit)}
    assert quantized == {"language"}
    outside = {part_of(n): p for n, p in model.named_parameters() if part_of(n) != "language"}
    assert set(outside) >= ({"vision", "projector"} if name in FAMILIES else set())
    assert all(p.is_floating_point() for n, p in model.named_parameters() if part_of(n) != "language")
    before = loss_of(model, batch)
    train_steps(model, batch)
    assert loss_of(model, batch) < before - 0.05


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("preset, parts", [("llava_stage1", {"projector"}),
                                           ("llava_stage2", {"projector", "language", "head"})])
def test_freeze_presets_train_only_the_parts_they_name(family_model, images: Path, name: str, preset: str,
                                                       parts: set[str]) -> None:
    path = family_model(name)
    batch = fixed_batch(path, name, images)
    model = get_method("freeze").prepare(loaded(path), TrainConfig(method="freeze", freeze_preset=preset))
    part_of = part_names(model)
    trainable = {part_of(n) for n, p in model.named_parameters() if p.requires_grad}
    has_head = any(part_of(n) == "head" for n, _ in model.named_parameters())  # a tied head is the embeddings
    assert trainable == (parts if has_head else parts - {"head"})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, batch, steps=1)
    changed = {part_of(n) for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= parts and "vision" not in changed


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_freeze_on_a_text_model_trains_the_last_layers_only(family_model, images: Path, name: str) -> None:
    model = get_method("freeze").prepare(loaded(family_model(name)), TrainConfig(method="freeze", freeze_layers=1,
                                                                                  train_projector=False))
    trained = {n.split(".layers.")[1].split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {"1"}  # the second (last) of two decoder layers


@pytest.mark.parametrize("name", ALL_MODELS)
def test_a_merged_export_reloads_as_base_plus_adapter(family_model, images: Path, tmp_path: Path, name: str) -> None:
    from core.export import merged_writer
    from core.models.loading import load_processor

    path = family_model(name)
    batch = fixed_batch(path, name, images)
    model = get_method("lora").prepare(loaded(path), TrainConfig(**LORA))
    train_steps(model, batch, steps=2)  # B is no longer zero: the merge changes the weights
    model.save_pretrained(tmp_path / "adapter")
    merged_writer(str(path), "lora", tmp_path / "adapter", "fp32")(tmp_path / "merged")
    reloaded = loaded(tmp_path / "merged").eval()
    assert not adapted(reloaded) and load_processor(str(tmp_path / "merged")) is not None
    model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        expected, got = model(**inputs).logits, reloaded(**inputs).logits
    assert torch.allclose(expected, got, atol=1e-4, rtol=1e-3), (expected - got).abs().max()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_full_lisa_and_bottleneck_adapters_train_every_family(family_model, images: Path, name: str) -> None:
    path = family_model(name)
    batch = fixed_batch(path, name, images)
    settings = {"full": {"train_projector": True}, "lisa": {"lisa_layers": 1, "train_projector": False},
                "adapter": {"adapter_size": 4}}
    for method_name, extra in settings.items():
        model = get_method(method_name).prepare(loaded(path), TrainConfig(method=method_name, **extra))
        part_of = part_names(model)
        trained = {part_of(n) for n, p in model.named_parameters() if p.requires_grad}
        expected = {"full": {"language", "head", "projector"}, "lisa": {"language", "head"},
                    "adapter": {"language"}}[method_name] - (set() if name in FAMILIES else {"projector"})
        assert trained <= expected and "language" in trained and "vision" not in trained, method_name
        losses = train_steps(model, batch, steps=2, lr=1e-3)
        assert all(torch.isfinite(torch.tensor(losses))) and losses[1] < losses[0], (method_name, losses)
