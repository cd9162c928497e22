"""P-tuning: virtual token embeddings produced by a small trained MLP prompt encoder, through peft."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.prompt_common import PromptLearningMethod, text_hidden_size

if TYPE_CHECKING:
    from core.train_config import TrainConfig


class PTuningMethod(PromptLearningMethod):
    name = "ptuning"
    label = "P-tuning"

    def peft_config(self, model: Any, config: TrainConfig) -> Any:
        from peft import PromptEncoderConfig, PromptEncoderReparameterizationType

        return PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.prompt_tokens,
                                   encoder_reparameterization_type=PromptEncoderReparameterizationType.MLP,
                                   encoder_hidden_size=text_hidden_size(model))
