"""Names the parts of a model (vision tower, projector, language model, head) so methods can pick layers."""

from __future__ import annotations

import re
from typing import Any

VISION_MARKERS = ("vision_tower", "vision_model", "visual")
PROJECTOR_MARKERS = ("multi_modal_projector", "mm_projector", "connector")
HEAD_MARKERS = ("lm_head",)
ADAPTER_MARKERS = ("lora_", "prompt_encoder", ".adapter_")
ATTENTION_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "c_attn", "Wqkv")


def part_of(name: str) -> str:
    """Which part a parameter or module name belongs to: vision, projector, head or language."""
    pieces = name.split(".")
    if any(m in pieces for m in VISION_MARKERS):
        return "vision"
    if any(m in pieces for m in PROJECTOR_MARKERS):
        return "projector"
    if any(m in pieces for m in HEAD_MARKERS):
        return "head"
    return "language"


def language_linear_names(model: Any, attention_only: bool) -> list[str]:
    """Short names (last component) of the language model's linear layers, excluding the head."""
    import torch

    names = set()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) and type(module).__name__ not in ("Linear4bit", "Linear8bitLt"):
            continue
        if part_of(name) != "language":
            continue
        short = name.rsplit(".", 1)[-1]
        if attention_only and short not in ATTENTION_SUFFIXES:
            continue
        names.add(short)
    return sorted(names)


def language_target_regex(short_names: list[str]) -> str:
    """A peft ``target_modules`` regex that matches these layers inside the language model only."""
    excluded = "|".join(VISION_MARKERS + PROJECTOR_MARKERS + HEAD_MARKERS)
    alternatives = "|".join(re.escape(n) for n in short_names)
    return rf"^(?!.*\b(?:{excluded})\b).*\.(?:{alternatives})$"


def count_parameters(model: Any) -> dict[str, dict[str, int]]:
    """Trainable and total parameter counts per part (and 'adapter' for peft-injected weights)."""
    counts: dict[str, dict[str, int]] = {}
    for name, param in model.named_parameters():
        part = "adapter" if any(marker in name for marker in ADAPTER_MARKERS) else part_of(name)
        entry = counts.setdefault(part, {"trainable": 0, "total": 0})
        entry["total"] += param.numel()
        if param.requires_grad:
            entry["trainable"] += param.numel()
    counts["all"] = {"trainable": sum(c["trainable"] for c in counts.values()),
                     "total": sum(c["total"] for c in counts.values())}
    return counts
