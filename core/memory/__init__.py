"""VRAM estimator: a run's peak GPU memory from its config and the model's config.json; the advisor the UI calls."""

from core.memory.architecture import Architecture, TextArch, VisionArch, read_architecture
from core.memory.estimate import FITS, TIGHT, WILL_NOT_FIT, Estimate, Term, estimate, verdict
from core.memory.fit import Proposal, apply_proposals, fit_to_card
from core.memory.inputs import MemoryInputs, inputs_from_train_config

__all__ = [
    "FITS", "TIGHT", "WILL_NOT_FIT", "Architecture", "Estimate", "MemoryInputs", "Proposal", "Term", "TextArch",
    "VisionArch", "apply_proposals", "estimate", "fit_to_card", "inputs_from_train_config", "read_architecture",
    "verdict",
]
