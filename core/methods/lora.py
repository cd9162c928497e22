"""LoRA: low-rank adapters on the language model's linear layers, through peft."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.methods.base import Method
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig


def lora_target_modules(model: Any, config: TrainConfig) -> str:
    from core.models.parts import language_linear_names, language_target_regex

    if config.lora_targets == "custom":
        names = config.custom_target_list()
    else:
        names = language_linear_names(model, attention_only=config.lora_targets == "attention")
    if not names:
        raise ValueError("the model's language part has no linear layers that LoRA can adapt")
    return language_target_regex(names)


class LoraMethod(Method):
    name = "lora"
    label = "LoRA (low-rank adapters)"
    artefact = "adapter"

    def validate(self, config: TrainConfig) -> list[Problem]:
        problems = []
        if config.lora_r >= 1 and config.lora_alpha / config.lora_r > 64:
            problems.append(Problem(
                f"alpha/r = {config.lora_alpha / config.lora_r:g} makes the update very large; keep alpha within 64×r",
                field="lora_alpha"))
        return problems

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        from peft import LoraConfig, get_peft_model

        target = lora_target_modules(model, config)
        lora_config = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=target,
            bias="none",
            task_type="CAUSAL_LM",
        )
        return get_peft_model(model, lora_config)

    def load_for_inference(self, base_model: Any, artefact_dir: Path) -> Any:
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, str(artefact_dir))
