"""LoRA: low-rank adapters (rsLoRA, DoRA) on the language model's linear layers, through peft."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from core.methods.base import PeftAdapterMethod, Target, has_part
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig


def lora_target_modules(model: Any, config: TrainConfig) -> str:
    """A regex over the language model's layers: the family's attention projections, every linear layer of the
    language part, or the listed names (never the vision tower, the projector or the head)."""
    from core.models.parts import family_of, family_targets, language_linear_names, language_target_regex

    if config.lora_targets == "custom":
        names = config.custom_target_list()
    elif config.lora_targets == "attention":
        names = family_targets(model, "attention") or language_linear_names(model, attention_only=True)
    else:
        names = language_linear_names(model, attention_only=False)
    if not names:
        raise ValueError("the model's language part has no linear layers that LoRA can adapt")
    return language_target_regex(names, family_of(model))


def projector_module_names(model: Any) -> list[str]:
    """Short names of the family's projector modules the model has (for peft's ``modules_to_save``)."""
    import torch

    from core.models.parts import family_of

    wanted = family_of(model).projector_modules
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if name.rsplit(".", 1)[-1] in wanted and not isinstance(module, torch.nn.ModuleList)})


def lora_problems(config: TrainConfig, target: Target) -> list[Problem]:
    """The LoRA rules QLoRA shares."""
    problems = []
    r = max(config.lora_r, 1)  # a rank below 1 is reported by the range check
    scale = config.lora_alpha / (math.sqrt(r) if config.use_rslora else r)
    if scale > 64:
        rule = "alpha/√r" if config.use_rslora else "alpha/r"
        problems.append(Problem(f"{rule} = {scale:g} makes the update very large; keep it at most 64",
                                field="lora_alpha"))
    if config.lora_train_projector and has_part(target, "projector") is False:
        problems.append(Problem("this is a text-only model: it has no projector to train; turn this off",
                                field="lora_train_projector"))
    if config.use_dora and config.quantization == "8bit" and not target.cuda:
        problems.append(Problem(
            "DoRA on an 8-bit (LLM.int8) base fails on CPU with peft and bitsandbytes (the int8 weight loses its "
            "scaling statistics when DoRA dequantizes it, from the second step on); use 4-bit quantization with "
            "DoRA, or turn DoRA off", field="use_dora"))
    return problems


def attach_lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    modules_to_save = None
    if config.lora_train_projector:
        modules_to_save = projector_module_names(model)
        if not modules_to_save:
            raise ValueError("the model has no projector to train beside the adapter; turn that option off")
    lora_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_target_modules(model, config),
        use_rslora=config.use_rslora,
        use_dora=config.use_dora,
        modules_to_save=modules_to_save,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora_config)


class LoraMethod(PeftAdapterMethod):
    name = "lora"
    label = "LoRA (low-rank adapters)"
    quantization_refusal = "LoRA on a quantized base is QLoRA"

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        return lora_problems(config, target)

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        return attach_lora(model, config)
