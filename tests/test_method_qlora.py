"""QLoRA: bitsandbytes 4-bit (NF4/FP4, double quantization) or 8-bit base, unquantized vision/projector/head."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from method_runs import check_learned, fixed_batch, single_thread, tiny_path, train_run

from core.methods import get_method
from core.models.loading import load_model
from core.models.parts import count_parameters, part_of
from core.train_config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def quantized_model(data_dir: Path, **settings: object) -> tuple[torch.nn.Module, TrainConfig]:
    config = TrainConfig(method="qlora", compute_dtype="fp32", **settings)
    method = get_method("qlora")
    base = load_model(tiny_path(data_dir), **method.load_kwargs(config))
    return method.prepare(base, config), config


def base_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every linear layer of the model by name, quantized or not (peft's wrapped base layers included)."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(k in name for k in ("lora_", "modules_to_save")):
            found[name.replace(".base_layer", "")] = module
    return found


@pytest.mark.parametrize("quant_type, double", [("nf4", True), ("fp4", False)])
def test_4bit_base_is_quantized_as_asked_and_the_rest_is_not(data_dir: Path, quant_type: str,
                                                            double: bool) -> None:
    import bitsandbytes as bnb

    model, _ = quantized_model(data_dir, quantization="4bit", quant_type=quant_type, double_quant=double)
    layers = base_layers(model)
    language = {n: m for n, m in layers.items() if part_of(n) == "language"}
    assert language and all(isinstance(m, bnb.nn.Linear4bit) for m in language.values())
    for module in language.values():
        assert module.weight.quant_type == quant_type
        assert module.weight.quant_state.nested is double  # double quantization of the constants
        assert module.compute_dtype == torch.float32
    for name, module in layers.items():
        if part_of(name) in ("vision", "projector", "head"):
            assert type(module) is torch.nn.Linear and module.weight.dtype == torch.float32, name
    # Every adapted matrix is a 4-bit layer with LoRA on it; counts are of the unpacked weights.
    adapted = [m for n, m in model.named_modules() if hasattr(m, "lora_A") and part_of(n) == "language"]
    assert adapted and all(isinstance(m.base_layer, bnb.nn.Linear4bit) for m in adapted)
    counts = count_parameters(model)
    expected = sum(16 * (m.in_features + m.out_features) for m in adapted) // 2  # r = 8 by default
    assert counts["adapter"]["trainable"] == expected == counts["all"]["trainable"]
    assert counts["language"]["total"] == 103424  # the tiny model's language part, counted unpacked


def test_8bit_base_is_llm_int8_and_the_rest_is_not(data_dir: Path) -> None:
    import bitsandbytes as bnb

    model, _ = quantized_model(data_dir, quantization="8bit")
    layers = base_layers(model)
    assert all(isinstance(m, bnb.nn.Linear8bitLt) for n, m in layers.items() if part_of(n) == "language")
    assert all(type(m) is torch.nn.Linear for n, m in layers.items() if part_of(n) != "language")
    language = [m for n, m in layers.items() if part_of(n) == "language"]
    assert language and all(m.weight.dtype == torch.int8 for m in language)


def test_qlora_4bit_run_learns_and_chat_answers(data_dir: Path, tmp_path: Path) -> None:
    trained = train_run(data_dir, tmp_path, method="qlora", quantization="4bit", compute_dtype="fp32",
                        lora_train_projector=True)
    assert (Path(trained.run.artefact_dir) / "adapter_config.json").is_file()
    check_learned(data_dir, trained, min_drop=0.5)
    import bitsandbytes as bnb

    loaded = trained.chat._loaded.model  # Chat reloaded the base quantized as the run had it
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.modules())


def test_qlora_8bit_run_learns_and_chat_answers(data_dir: Path, tmp_path: Path) -> None:
    trained = train_run(data_dir, tmp_path, method="qlora", quantization="8bit", optimizer="paged_adamw_8bit")
    check_learned(data_dir, trained, min_drop=0.5)


def test_an_evaluation_in_eval_mode_leaves_the_4bit_layers_differentiable(data_dir: Path) -> None:
    """bitsandbytes repacks 4-bit weights for a CPU kernel without a backward on an eval-mode no-grad forward (an
    in-run evaluation); after one, every adapter must still receive the same gradients as before it."""
    model, _ = quantized_model(data_dir, quantization="4bit", quant_type="nf4", lora_dropout=0.0)
    _, batch = fixed_batch(data_dir)

    def adapter_grads() -> dict[str, torch.Tensor]:
        model.train()
        model.zero_grad()
        model(**batch).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if "lora_B" in n}

    before = adapter_grads()
    model.eval()
    with torch.no_grad():
        model(**batch)  # what the evaluation at step 0 does
    after = adapter_grads()
    first_layer = [n for n in before if ".layers.0." in n]
    assert first_layer and all(float(before[n].abs().sum()) > 0 for n in first_layer)
    for name, grad in before.items():
        assert torch.allclose(after[name], grad, atol=1e-6), name
