"""Names the parts of a model (vision tower, projector, language model, head) so methods can pick layers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from core.models.families import GENERIC, Family, family_for

# Every described family's module names (they never collide), for callers that do not know the model's family.
VISION_MARKERS = GENERIC.vision_modules
PROJECTOR_MARKERS = (*GENERIC.projector_modules, "mm_projector")
HEAD_MARKERS = ("lm_head",)
# peft LoRA/DoRA weights, peft prompt encoders (prompt, prefix, P-tuning) and the studio's bottleneck adapters
ADAPTER_MARKERS = ("lora_", "prompt_encoder", ".adapter_", "bottleneck_")
ATTENTION_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "query_key_value", "c_attn", "Wqkv")
LAYER_LIST_NAMES = ("layers", "h", "blocks", "layer")


def part_of(name: str, family: Family | None = None) -> str:
    """Which part a parameter or module name belongs to: vision, projector, head or language (by the family's
    module names; without a family, by every family's)."""
    if family is not None:
        return family.part_of(name)
    pieces = name.split(".")
    if any(m in pieces for m in PROJECTOR_MARKERS):
        return "projector"
    if any(m in pieces for m in VISION_MARKERS):
        return "vision"
    if any(m in pieces for m in HEAD_MARKERS):
        return "head"
    return "language"


def family_of(model: Any) -> Family:
    """The family of a loaded model (a peft wrapper included)."""
    return family_for(model.config)


def is_adapter(name: str) -> bool:
    return any(marker in name for marker in ADAPTER_MARKERS)


def language_linear_names(model: Any, attention_only: bool) -> list[str]:
    """Short names (last component) of the language model's linear layers, excluding the head."""
    import torch

    family = family_of(model)
    names = set()
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) and type(module).__name__ not in ("Linear4bit", "Linear8bitLt"):
            continue
        if part_of(name, family) != "language":
            continue
        short = name.rsplit(".", 1)[-1]
        if attention_only and short not in ATTENTION_SUFFIXES:
            continue
        names.add(short)
    return sorted(names)


def family_targets(model: Any, which: str) -> list[str]:
    """The family's LoRA targets ('attention' or 'all-linear') that the model's language part has."""
    wanted = set(family_of(model).lora_targets(which))
    return [n for n in language_linear_names(model, attention_only=False) if n in wanted]


def language_target_regex(short_names: list[str], family: Family | None = None) -> str:
    """A peft ``target_modules`` regex that matches these layers inside the language model only."""
    markers = family.non_language_modules() if family is not None else VISION_MARKERS + PROJECTOR_MARKERS + HEAD_MARKERS
    excluded = "|".join(re.escape(m) for m in markers) or "(?!)"
    alternatives = "|".join(re.escape(n) for n in short_names)
    return rf"^(?!.*\b(?:{excluded})\b).*\.(?:{alternatives})$"


def decoder_layers(model: Any) -> list[tuple[str, Any]]:
    """The language model's decoder blocks as (module name, module), in order.

    The longest ``ModuleList`` named like a layer stack (``layers``, ``h``, ``blocks``) outside the vision tower.
    """
    import torch

    family = family_of(model)
    best: tuple[str, Any] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.ModuleList) or part_of(name, family) != "language":
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


def part_names(model: Any) -> Callable[[str], str]:
    """``part_of`` bound to the model's family."""
    family = family_of(model)
    return lambda name: part_of(name, family)


def set_trainable(model: Any, wanted: Callable[[str], bool]) -> None:
    """requires_grad = wanted(name) for every parameter."""
    for name, param in model.named_parameters():
        param.requires_grad_(bool(wanted(name)))


def quantization_skip_modules(family: Family | None = None) -> list[str]:
    """Full module names bitsandbytes must leave unquantized: the family's vision tower, projector and head.

    transformers 5 matches ``llm_int8_skip_modules`` from the start of the full module name (LLaVA's tower is
    ``model.vision_tower``, Qwen-VL's ``model.visual``); without a family, every family's names.
    """
    return list(family.quantize_skip if family is not None else GENERIC.quantize_skip)


def _numel(param: Any) -> int:
    """Elements of the weight a parameter stands for (a 4-bit parameter packs two values per byte)."""
    shape = getattr(getattr(param, "quant_state", None), "shape", None)
    return int(math.prod(shape)) if shape is not None else param.numel()


def count_parameters(model: Any) -> dict[str, dict[str, int]]:
    """Trainable and total parameter counts per part (and 'adapter' for injected adapters and prompt encoders)."""
    family = family_of(model)
    counts: dict[str, dict[str, int]] = {}
    for name, param in model.named_parameters():
        if ".original_module." in name:  # peft keeps the frozen original beside a module it trains fully
            continue
        part = "adapter" if is_adapter(name) else part_of(name, family)
        entry = counts.setdefault(part, {"trainable": 0, "total": 0})
        numel = _numel(param)
        entry["total"] += numel
        if param.requires_grad:
            entry["trainable"] += numel
    counts["all"] = {"trainable": sum(c["trainable"] for c in counts.values()),
                     "total": sum(c["total"] for c in counts.values())}
    return counts
