"""What prompt tuning, prefix tuning and P-tuning share: trained virtual tokens through peft, and where they work."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.base import PeftAdapterMethod, Target
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig


def verified_families() -> list[str]:
    """Vision-language families whose forward was checked to accept peft's virtual tokens: peft hands them
    inputs_embeds (or a prefix cache) instead of input_ids, and LLaVA then finds its image tokens by embedding."""
    from core.models.families import all_families

    return [f.label for f in all_families() if f.vision and f.prompt_learning]


class PromptLearningMethod(PeftAdapterMethod):
    """A peft prompt-learning method; subclasses give the peft config."""

    quantization_refusal = "prompt, prefix and P-tuning are trained here on a full-precision base"

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        from core.models.families import family_of_facts

        facts = target.facts
        if facts is not None and facts.vision and not family_of_facts(facts.model_type, True, facts.family
                                                                        ).prompt_learning:
            return [Problem(
                f"{self.label} is not available for '{facts.model_type}' models: peft feeds virtual tokens as "
                f"embeddings, and only {', '.join(verified_families())} vision-language models are known to place "
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
