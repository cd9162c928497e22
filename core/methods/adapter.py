"""Bottleneck adapter tuning (Houlsby): small adapters after the attention and the MLP of every decoder layer.

The base stays frozen, so the result is two small files: ``bottleneck_adapter.safetensors`` (the adapters'
weights, named as in the adapted model) and ``bottleneck_adapter.json`` (size, places, base model).
``core.methods.bottleneck.attach_saved(model, folder)`` puts them on a freshly loaded base; the Chat tab does that.
A full copy of the base is deliberately not written: ``from_pretrained`` cannot express an adapter with a
nonlinearity, so such a copy would load as the untrained base (and cost the base's size on disk per run).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.methods.base import Method, Target
from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig


class AdapterMethod(Method):
    name = "adapter"
    label = "Bottleneck adapters (Houlsby)"
    artefact = "adapter"
    quantization_refusal = "bottleneck adapters are trained here on a full-precision base"

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        hidden = target.facts.hidden_size if target.facts else None
        if hidden is not None and config.adapter_size >= hidden:
            return [Problem(f"a bottleneck must be narrower than the model ({hidden} wide); choose a size below "
                            f"{hidden}, e.g. {max(1, hidden // 16)}", field="adapter_size")]
        return []

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        from core.methods.bottleneck import attach

        for param in model.parameters():
            param.requires_grad_(False)
        attach(model, config.adapter_size)  # the new parameters require grad
        return model

    def save(self, model: Any, out_dir: Path, state_dict: dict[str, Any] | None = None) -> None:
        from core.methods.bottleneck import save

        save(model, out_dir, state_dict)

    def load_for_inference(self, model: Any, artefact_dir: Path) -> Any:
        from core.methods.bottleneck import attach_saved

        return attach_saved(model, artefact_dir)
