"""Prompt tuning: a few trained virtual token embeddings prepended to every input, through peft."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.prompt_common import PromptLearningMethod

if TYPE_CHECKING:
    from core.train_config import TrainConfig


class PromptTuningMethod(PromptLearningMethod):
    name = "prompt"
    label = "Prompt tuning"

    def peft_config(self, model: Any, config: TrainConfig) -> Any:
        from peft import PromptTuningConfig

        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.prompt_tokens)
