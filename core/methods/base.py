"""The small interface every fine-tuning method implements."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.problems import Problem

if TYPE_CHECKING:
    from core.train_config import TrainConfig


class Method:
    """One fine-tuning method: how it checks a config, prepares a model, saves and reloads its result.

    ``artefact`` says what ``save`` writes: "adapter" (a peft folder loaded on top of the base) or
    "weights" (a full model folder loadable with ``from_pretrained``).
    """

    name: str = ""
    label: str = ""
    artefact: str = "adapter"

    def validate(self, config: TrainConfig) -> list[Problem]:
        return []

    def load_kwargs(self, config: TrainConfig) -> dict[str, Any]:
        """Extra keyword arguments for ``from_pretrained`` (quantization, for example)."""
        return {}

    def prepare(self, model: Any, config: TrainConfig) -> Any:
        """Freeze what does not train and attach what does; returns the model to train."""
        raise NotImplementedError

    def on_step_start(self, step: int, model: Any, optimizer: Any) -> None:
        """Called before each optimizer step (LISA re-samples layers here)."""

    def save(self, model: Any, out_dir: Path) -> None:
        model.save_pretrained(out_dir)

    def load_for_inference(self, base_model: Any, artefact_dir: Path) -> Any:
        """Put a saved artefact on top of a freshly loaded base model."""
        raise NotImplementedError
