"""QLoRA: the base loaded in 4-bit (NF4/FP4, double quantization) or 8-bit by bitsandbytes, then LoRA on top."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.base import PeftAdapterMethod, Target
from core.methods.lora import attach_lora, lora_problems
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig

COMPUTE_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def quantization_config(config: TrainConfig) -> Any:
    """The BitsAndBytesConfig for a config. It names no modules to skip: ``load_model`` fills in the model
    family's (vision tower, projector and head stay unquantized)."""
    import torch
    from transformers import BitsAndBytesConfig

    if config.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, COMPUTE_DTYPES[config.compute_dtype]),
        # FSDP shards parameters of one dtype: the 4-bit storage then has the dtype of the rest of the model.
        bnb_4bit_quant_storage=torch.bfloat16 if config.strategy == "fsdp" else torch.uint8,
    )


class QloraMethod(PeftAdapterMethod):
    name = "qlora"
    label = "QLoRA (LoRA on a 4-/8-bit base)"
    quantization_refusal = ""

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        problems = []
        if config.quantization == "none":
            problems.append(Problem(
                "QLoRA loads the base quantized: set quantization to 4bit (NF4, the QLoRA recipe) or 8bit, or "
                "choose LoRA for a full-precision base", field="quantization"))
        return problems + lora_problems(config, target)

    def settings_for(self, values: dict[str, Any]) -> dict[str, Any]:
        """QLoRA's recipe: a 4-bit NF4 base with double quantization, unless a quantized base is already chosen."""
        if values.get("quantization", "none") == "none":
            return {"quantization": "4bit", "quant_type": "nf4", "double_quant": True}
        return {}

    def load_kwargs(self, config: TrainConfig) -> dict[str, Any]:
        if config.quantization == "none":
            return {}
        return {"quantization_config": quantization_config(config)}

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        for param in model.parameters():  # the quantized base is frozen; only the adapters (and projector) train
            param.requires_grad_(False)
        keep_4bit_layers_differentiable(model)
        return attach_lora(model, config)


def keep_4bit_layers_differentiable(model: Any) -> int:
    """Stop bitsandbytes repacking 4-bit weights for its CPU inference kernel; returns the layers changed.

    On a CPU with AVX512-BF16, bitsandbytes (0.50) repacks a Linear4bit's weights on its first forward in eval
    mode without gradients (an in-run evaluation does exactly that) and from then on uses a kernel that has no
    backward, also after ``train()``: gradients stop at every quantized layer and the adapters below it no
    longer learn, silently (bench/quality.py's QLoRA loss stayed flat until this). Training keeps the plain path.
    """
    changed = 0
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
            changed += 1
    return changed
