"""Freeze tuning: only the last N language-model layers and/or chosen parts train; LLaVA stage-1/2 presets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.methods.base import Target, WeightsMethod, has_part
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig

# LLaVA's recipe: stage 1 aligns the projector alone; stage 2 tunes projector and language model together.
PRESETS = {"llava_stage1": {"projector"}, "llava_stage2": {"projector", "language", "head"}}


def freeze_plan(config: TrainConfig) -> tuple[set[str], int]:
    """Whole parts that train, and how many of the last decoder layers train."""
    if config.freeze_preset in PRESETS:
        return set(PRESETS[config.freeze_preset]), 0
    parts = set()
    if config.train_projector:
        parts.add("projector")
    if config.train_vision_tower:
        parts.add("vision")
    return parts, config.freeze_layers


class FreezeMethod(WeightsMethod):
    name = "freeze"
    label = "Freeze tuning (last layers / projector / vision tower)"

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        problems = []
        parts, last = freeze_plan(config)
        vision = has_part(target, "vision")
        if config.freeze_preset in PRESETS and vision is False:
            problems.append(Problem("the LLaVA presets need a vision-language model (this one is text-only); "
                                    "choose custom", field="freeze_preset"))
        if vision is False:
            parts -= {"projector", "vision"}
        layers = target.facts.text_layers if target.facts else None
        if config.freeze_preset == "custom" and layers is not None and last > layers:
            problems.append(Problem(f"the language model has {layers} decoder layers; train at most {layers}",
                                    field="freeze_layers"))
        if not parts and last == 0 and config.freeze_preset == "custom":
            problems.append(Problem("nothing would train: set last N layers above 0, or train the projector or "
                                    "the vision tower", field="freeze_layers"))
        return problems

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        from core.models.parts import decoder_layers, part_names, set_trainable

        parts, last = freeze_plan(config)
        names = [name for name, _ in decoder_layers(model)]
        if last > len(names):
            raise ValueError(f"the language model has {len(names)} decoder layers; train at most {len(names)}")
        trained = tuple(n + "." for n in names[len(names) - last:]) if last else ()
        part_of = part_names(model)
        set_trainable(model, lambda name: part_of(name) in parts or name.startswith(trained))
        if not any(p.requires_grad for p in model.parameters()):
            raise ValueError("nothing to train: this model has none of the chosen parts")
        return model
