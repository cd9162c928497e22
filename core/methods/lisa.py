"""LISA: embeddings and head always train; every K steps γ decoder layers are sampled, the rest are frozen.

Unlike the reference implementation, a layer that is frozen again gives back its optimizer state and gradients,
so memory stays flat across re-samplings instead of growing with every layer ever sampled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from core.methods.base import Target, WeightsMethod, projector_groups
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig

STATE_ATTR = "studio_lisa"
ALL_LAYERS = ("γ = {layers} covers all {layers} decoder layers of this model, so this trains every layer: it is full "
              "fine-tuning, with its memory and none of LISA's savings; lower γ, or choose full fine-tuning")


@dataclass
class LisaState:
    """Which decoder layers train now, how to sample the next ones, and the history of samples."""

    layers: list[list[Any]]  # parameters of each decoder layer
    gamma: int
    interval: int
    rng: random.Random
    active: list[int] = field(default_factory=list)
    history: list[tuple[int, list[int]]] = field(default_factory=list)

    def sample(self, step: int) -> tuple[list[int], list[int]]:
        """Draw γ layers uniformly; returns (layers switched on, layers switched off)."""
        chosen = sorted(self.rng.sample(range(len(self.layers)), self.gamma))
        on = [i for i in chosen if i not in self.active]
        off = [i for i in self.active if i not in chosen]
        self.active = chosen
        self.history.append((step, chosen))
        return on, off


def lisa_state(model: Any) -> LisaState:
    return getattr(model, STATE_ATTR)


def release(params: list[Any], optimizer: Any) -> None:
    """Freeze parameters and drop their gradients and optimizer state (Adam moments, 8-bit or not)."""
    for param in params:
        param.requires_grad_(False)
        param.grad = None
        if optimizer is not None:
            optimizer.state.pop(param, None)


class LisaMethod(WeightsMethod):
    name = "lisa"
    label = "LISA (layerwise importance sampling)"
    quantization_refusal = ("LISA trains whole decoder layers, and a 4-/8-bit base stores them as frozen integers "
                            "that take no gradients")

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        layers = target.facts.text_layers if target.facts else None
        if layers is not None and config.lisa_layers > layers:
            return [Problem(f"the language model has {layers} decoder layers; sample at most {layers} "
                            f"(γ = {layers} trains them all, which is full fine-tuning)", field="lisa_layers")]
        if layers is not None and config.lisa_layers == layers:
            return [Problem(ALL_LAYERS.format(layers=layers), field="lisa_layers", severity="warning")]
        return []

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        from core.models.parts import decoder_layers, layer_index, part_names, set_trainable

        named_layers = decoder_layers(model)
        names = [n for n, _ in named_layers]
        if config.lisa_layers > len(names):
            raise ValueError(f"the language model has {len(names)} decoder layers; sample at most {len(names)}")
        # Always trained: embeddings, final norm and head (and the projector when chosen); never the vision tower.
        always = {"language", "head"} | ({"projector"} if config.train_projector else set())
        part_of = part_names(model)
        set_trainable(model, lambda n: part_of(n) in always and layer_index(n, names) is None)
        state = LisaState([list(layer.parameters()) for _, layer in named_layers], config.lisa_layers,
                          config.lisa_interval, random.Random(config.seed))
        setattr(model, STATE_ATTR, state)
        on, _ = state.sample(0)
        for i in on:
            for param in state.layers[i]:
                param.requires_grad_(True)
        print(f"LISA: step 0, training decoder layers {state.active} of {len(names)}", flush=True)
        return model

    def training_state(self, model: Any) -> dict[str, Any]:
        state = lisa_state(model)
        return {"lisa_rng": state.rng.getstate(), "lisa_active": list(state.active), "lisa_history": state.history}

    def restore_training_state(self, model: Any, saved: dict[str, Any], optimizer: Any) -> None:
        state = lisa_state(model)
        state.rng.setstate(saved["lisa_rng"])
        state.history = list(saved["lisa_history"])
        for i in state.active:
            release(state.layers[i], optimizer)
        state.active = list(saved["lisa_active"])
        for i in state.active:
            for param in state.layers[i]:
                param.requires_grad_(True)

    def optimizer_groups(self, model: Any, config: TrainConfig) -> list[dict[str, Any]]:
        """Every layer that may be sampled is in the optimizer; frozen ones have no gradient, hence no state."""
        state = lisa_state(model)
        candidates = {id(p) for layer in state.layers for p in layer}
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad or id(p) in candidates]
        return projector_groups(named, config)

    def on_step_start(self, step: int, model: Any, optimizer: Any) -> None:
        state = lisa_state(model)
        if step == 0 or step % state.interval:
            return
        on, off = state.sample(step)
        for i in off:
            release(state.layers[i], optimizer)
        for i in on:
            for param in state.layers[i]:
                param.requires_grad_(True)
        print(f"LISA: step {step}, training decoder layers {state.active}", flush=True)
