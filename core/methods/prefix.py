"""Prefix tuning: trained keys and values prepended at every decoder layer, through peft."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.base import Target
from core.methods.prompt_common import PromptLearningMethod
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig


class PrefixTuningMethod(PromptLearningMethod):
    name = "prefix"
    label = "Prefix tuning"

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        problems = super().validate(config, target)
        if config.gradient_checkpointing:
            problems.append(Problem(
                "prefix tuning passes its trained keys and values through the attention cache, which peft cannot "
                "combine with gradient checkpointing; turn gradient checkpointing off, or choose prompt tuning or "
                "P-tuning", field="gradient_checkpointing"))
        return problems

    def peft_config(self, model: Any, config: TrainConfig) -> Any:
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.prompt_tokens)
