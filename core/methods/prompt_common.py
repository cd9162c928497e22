"""What prompt tuning, prefix tuning and P-tuning share: trained virtual tokens through peft, and where they work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.base import PeftAdapterMethod, Target
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig

# Vision-language model types whose forward was checked to accept peft's virtual tokens: peft hands them
# inputs_embeds (or a prefix cache) instead of input_ids, and LLaVA then finds its image tokens by embedding.
VERIFIED_VLM_TYPES = ("llava",)


class PromptLearningMethod(PeftAdapterMethod):
    """A peft prompt-learning method; subclasses give the peft config."""

    quantization_refusal = "prompt, prefix and P-tuning are trained here on a full-precision base"

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        facts = target.facts
        if facts is not None and facts.vision and facts.model_type not in VERIFIED_VLM_TYPES:
            return [Problem(
                f"{self.label} is not available for '{facts.model_type}' models: peft feeds virtual tokens as "
                f"embeddings, and only {', '.join(VERIFIED_VLM_TYPES)} vision-language models are known to place "
                "their images correctly then; choose LoRA or QLoRA", field="method")]
        return []

    def peft_config(self, model: Any, config: TrainConfig) -> Any:
        raise NotImplementedError

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, self.peft_config(model, config))


def text_hidden_size(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.hidden_size)
