"""Full fine-tuning: every weight of the chosen parts (language model, projector, vision tower) trains."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.base import Target, WeightsMethod, has_part
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig


def chosen_parts(config: TrainConfig) -> set[str]:
    parts = {"language", "head"} if config.train_language_model else set()
    if config.train_projector:
        parts.add("projector")
    if config.train_vision_tower:
        parts.add("vision")
    return parts


def train_parts(model: Any, parts: set[str]) -> None:
    """Only parameters of these parts train; raises if that leaves nothing."""
    from core.models.parts import part_names, set_trainable

    part_of = part_names(model)
    set_trainable(model, lambda name: part_of(name) in parts)
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"nothing to train: the model has none of the chosen parts ({', '.join(sorted(parts))})")


class FullMethod(WeightsMethod):
    name = "full"
    label = "Full fine-tuning (choose parts)"

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        parts = chosen_parts(config)
        if has_part(target, "vision") is False:
            parts -= {"projector", "vision"}
        if not parts:
            return [Problem("nothing would train: choose the language model, the projector or the vision tower "
                            "(a text-only model has only the language model)", field="train_language_model")]
        return []

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        train_parts(model, chosen_parts(config))
        return model
