"""The registry of model families: one module per family, registered here and nowhere else."""

from __future__ import annotations

from typing import Any

from core.models.families.base import Family, ImageMeta, ImageSettings
from core.models.families.gemma3 import Gemma3Family
from core.models.families.generic import GenericVisionFamily
from core.models.families.idefics3 import Idefics3Family
from core.models.families.llava import LlavaFamily
from core.models.families.llava_next import LlavaNextFamily
from core.models.families.llava_onevision import LlavaOnevisionFamily
from core.models.families.mllama import MllamaFamily
from core.models.families.paligemma import PaliGemmaFamily
from core.models.families.qwen2_5_vl import Qwen25VLFamily
from core.models.families.qwen2_vl import Qwen2VLFamily
from core.models.families.qwen3_vl import Qwen3VLFamily
from core.models.families.smolvlm import SmolVLMFamily
from core.models.families.text import TextFamily

__all__ = ["GENERIC", "TEXT", "Family", "ImageMeta", "ImageSettings", "all_families", "family_for",
           "family_named", "family_of_facts", "family_of_processor"]

_VISION: list[Family] = [
    Qwen2VLFamily(), Qwen25VLFamily(), Qwen3VLFamily(), LlavaFamily(), LlavaNextFamily(), LlavaOnevisionFamily(),
    Gemma3Family(), SmolVLMFamily(), Idefics3Family(), PaliGemmaFamily(), MllamaFamily(),
]
TEXT = TextFamily()
GENERIC = GenericVisionFamily(_VISION)
_BY_TYPE = {t: f for f in _VISION for t in f.model_types}
_BY_NAME = {f.name: f for f in [*_VISION, TEXT, GENERIC]}
_BY_PROCESSOR = {f.processor_class: f for f in _VISION}


def all_families() -> list[Family]:
    """The described families, vision-language ones first, then text LLMs."""
    return [*_VISION, TEXT]


def family_named(name: str) -> Family:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(_BY_NAME)}") from None


def family_for(config: Any) -> Family:
    """The family of a model config (a transformers config, or a config.json dict)."""
    get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
    if get("vision_config") is None:
        return TEXT
    return _BY_TYPE.get(str(get("model_type", "") or ""), GENERIC)


def family_of_facts(model_type: str, vision: bool, name: str = "") -> Family:
    """The family of a model known by its type (ModelFacts), or by the family name recorded with it."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    return _BY_TYPE.get(model_type, GENERIC) if vision else TEXT


def family_of_processor(processor: Any) -> Family:
    """The family a loaded processor belongs to (by its class), for encoders built without a model config."""
    if not hasattr(processor, "image_processor"):
        return TEXT
    return _BY_PROCESSOR.get(type(processor).__name__, GENERIC)
