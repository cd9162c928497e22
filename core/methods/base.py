"""The small interface every fine-tuning method implements, and what methods share (parts, projector LR)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.problems import Problem

if TYPE_CHECKING:
    from core.models.loading import ModelFacts
    from core.train_config import TrainConfig

QUANTIZE_INSTEAD = "set quantization to none, or choose QLoRA to train LoRA adapters on a quantized base"


@dataclass(frozen=True)
class Target:
    """What a config is checked against: the model (None when it cannot be known before loading) and the device."""

    facts: ModelFacts | None
    cuda: bool


class Method:
    """One fine-tuning method: how it checks a config, prepares a model, saves and reloads its result.

    ``artefact`` says what ``save`` writes: "adapter" (small files loaded on top of a freshly loaded base: a peft
    folder, or the studio's bottleneck adapter files) or "weights" (a full model folder, processor included,
    loadable with ``from_pretrained``).
    """

    name: str = ""
    label: str = ""
    artefact: str = "adapter"
    # Why a quantized base cannot be used with this method; empty for methods that need one (QLoRA).
    quantization_refusal: str = "this method trains on a full-precision base"

    def check(self, config: TrainConfig, target: Target) -> list[Problem]:
        """The rules every method shares, then the method's own ``validate``."""
        problems = []
        if config.quantization != "none" and self.quantization_refusal:
            problems.append(Problem(f"{self.quantization_refusal}; {QUANTIZE_INSTEAD}", field="quantization"))
        return problems + self.validate(config, target)

    def validate(self, config: TrainConfig, target: Target) -> list[Problem]:
        return []

    def settings_for(self, values: dict[str, Any]) -> dict[str, Any]:
        """The settings that follow from choosing this method, given the current ones (the form applies them)."""
        if self.quantization_refusal and values.get("quantization", "none") != "none":
            return {"quantization": "none"}
        return {}

    def load_kwargs(self, config: TrainConfig) -> dict[str, Any]:
        """Extra keyword arguments for ``from_pretrained`` (quantization, for example)."""
        return {}

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        """Freeze what does not train and attach what does; returns the model to train."""
        raise NotImplementedError

    def optimizer_groups(self, model: Any, config: TrainConfig) -> list[dict[str, Any]]:
        """The optimizer's parameter groups: what trains, with the projector in its own group under projector_lr."""
        return projector_groups([(n, p) for n, p in model.named_parameters() if p.requires_grad], config)

    def on_step_start(self, step: int, model: Any, optimizer: Any) -> None:
        """Called before the first forward pass of each optimizer step (LISA re-samples layers here)."""

    def training_state(self, model: Any) -> dict[str, Any]:
        """What a checkpoint must keep, beyond weights and optimizer, to resume this method exactly."""
        return {}

    def restore_training_state(self, model: Any, state: dict[str, Any], optimizer: Any) -> None:
        """Put back what ``training_state`` kept, on a freshly prepared model."""

    def save(self, model: Any, out_dir: Path, state_dict: dict[str, Any] | None = None) -> None:
        """Write the artefact; ``state_dict`` holds the weights whole when the ranks shard them (FSDP)."""
        model.save_pretrained(out_dir, **({"state_dict": state_dict} if state_dict is not None else {}))

    def load_for_inference(self, model: Any, artefact_dir: Path) -> Any:
        """Turn a loaded model into the trained one: "adapter" methods get the base, "weights" methods the result."""
        raise NotImplementedError


def projector_groups(named: list[tuple[str, Any]], config: TrainConfig) -> list[dict[str, Any]]:
    """One group, or two when the projector has its own learning rate (LLaVA's mm_projector_lr); main group first."""
    from core.models.parts import is_adapter, part_of

    if config.projector_lr <= 0:
        return [{"params": [p for _, p in named]}]
    projector = [p for n, p in named if part_of(n) == "projector" and not is_adapter(n)]
    ids = {id(p) for p in projector}
    rest = [p for _, p in named if id(p) not in ids]
    groups = [{"params": rest}] if rest else []
    if projector:
        groups.append({"params": projector, "lr": config.projector_lr})
    return groups


def has_part(target: Target, part: str) -> bool | None:
    """Whether the model has a vision tower/projector; None when the model is not known yet."""
    if target.facts is None:
        return None
    return target.facts.vision if part in ("vision", "projector") else True


class PeftAdapterMethod(Method):
    """Methods whose result is a peft adapter folder loaded on top of the base."""

    artefact = "adapter"

    def load_for_inference(self, model: Any, artefact_dir: Path) -> Any:
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(artefact_dir))


class WeightsMethod(Method):
    """Methods that train the model's own weights; the result is a full model folder."""

    artefact = "weights"
    quantization_refusal = ("this method updates the base weights, and bitsandbytes stores 4-/8-bit weights as "
                            "frozen integers that take no gradients")

    def load_for_inference(self, model: Any, artefact_dir: Path) -> Any:
        return model
