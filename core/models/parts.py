"""Names the parts of a model (vision tower, projector, language model, head) so methods can pick layers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

VISION_MARKERS = ("vision_tower", "vision_model", "visual")
PROJECTOR_MARKERS = ("multi_modal_projector", "mm_projector", "connector")
HEAD_MARKERS = ("lm_head",)
# peft LoRA/DoRA weights, peft prompt encoders (prompt, prefix, P-tuning) and the studio's bottleneck adapters
ADAPTER_MARKERS = ("lora_", "prompt_encoder", ".adapter_", "bottleneck_")
ATTENTION_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "c_attn", "Wqkv")
LAYER_LIST_NAMES = ("layers", "h", "blocks", "layer")


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


def is_adapter(name: str) -> bool:
    return any(marker in name for marker in ADAPTER_MARKERS)


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


def decoder_layers(model: Any) -> list[tuple[str, Any]]:
    """The language model's decoder blocks as (module name, module), in order.

    The longest ``ModuleList`` named like a layer stack (``layers``, ``h``, ``blocks``) outside the vision tower.
    """
    import torch

    best: tuple[str, Any] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or part_of(name) != "language":
            continue
        if name.rsplit(".", 1)[-1] not in LAYER_LIST_NAMES or is_adapter(name):
            continue
        if best is None or len(module) > len(best[1]):
            best = (name, module)
    if best is None:
        raise ValueError("could not find the language model's decoder layers (a ModuleList named 'layers')")
    return [(f"{best[0]}.{i}", layer) for i, layer in enumerate(best[1])]


def layer_index(name: str, layer_names: list[str]) -> int | None:
    """Index of the decoder layer a parameter name belongs to, or None."""
    for i, prefix in enumerate(layer_names):
        if name.startswith(prefix + "."):
            return i
    return None


def set_trainable(model: Any, wanted: Callable[[str], bool]) -> None:
    """requires_grad = wanted(name) for every parameter."""
    for name, param in model.named_parameters():
        param.requires_grad_(bool(wanted(name)))


def quantization_skip_modules() -> list[str]:
    """Module-name prefixes that bitsandbytes must leave unquantized: vision tower, projector and head.

    transformers 5 matches ``llm_int8_skip_modules`` from the start of the full module name (LLaVA's tower is
    ``model.vision_tower``), so both the bare and the ``model.``-prefixed names are listed.
    """
    names = [f"{prefix}{marker}" for marker in VISION_MARKERS + PROJECTOR_MARKERS for prefix in ("model.", "")]
    return names + ["lm_head"]


def _numel(param: Any) -> int:
    """Elements of the weight a parameter stands for (a 4-bit parameter packs two values per byte)."""
    shape = getattr(getattr(param, "quant_state", None), "shape", None)
    return int(math.prod(shape)) if shape is not None else param.numel()


def count_parameters(model: Any) -> dict[str, dict[str, int]]:
    """Trainable and total parameter counts per part (and 'adapter' for injected adapters and prompt encoders)."""
    counts: dict[str, dict[str, int]] = {}
    for name, param in model.named_parameters():
        if ".original_module." in name:  # peft keeps the frozen original beside a module it trains fully
            continue
        part = "adapter" if is_adapter(name) else part_of(name)
        entry = counts.setdefault(part, {"trainable": 0, "total": 0})
        numel = _numel(param)
        entry["total"] += numel
        if param.requires_grad:
            entry["trainable"] += numel
    counts["all"] = {"trainable": sum(c["trainable"] for c in counts.values()),
                     "total": sum(c["total"] for c in counts.values())}
    return counts
