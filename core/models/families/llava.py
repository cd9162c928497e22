"""LLaVA-1.5 (and any LlavaForConditionalGeneration: a CLIP, SigLIP or DINOv2 tower, an MLP projector, an LLM):
every image is resized to the tower's size and becomes a fixed number of <image> tokens, one per patch."""

from __future__ import annotations

from typing import Any

from core.models.families.base import Family, ImageMeta

# Towers that put a class token before the patch tokens (LLaVA's "default" strategy drops it again).
CLASS_TOKEN_TOWERS = ("clip_vision_model", "dinov2", "dinov2_with_registers")


def tower_extra_tokens(vision_config: Any) -> int:
    """Tokens a tower adds to its patch tokens: the class token, and DINOv2's registers."""
    kind = str(getattr(vision_config, "model_type", ""))
    if kind not in CLASS_TOKEN_TOWERS:
        return 0
    return 1 + int(getattr(vision_config, "num_register_tokens", 0) or 0)


def patch_tokens(model_config: Any, height: int, width: int) -> int:
    """Tokens of one tile after feature selection: patches, plus the tower's extra tokens unless 'default' drops
    one of them (the class token)."""
    vision = model_config.vision_config
    patch = int(vision.patch_size)
    tokens = (height // patch) * (width // patch) + tower_extra_tokens(vision)
    if getattr(model_config, "vision_feature_select_strategy", "default") == "default":
        tokens -= 1
    return tokens


class LlavaFamily(Family):
    name = "llava"
    label = "LLaVA"
    model_types = ("llava",)
    processor_class = "LlavaProcessor"
    batch_keys = ("pixel_values",)
    prompt_learning = True
    common_size = "LLaVA-1.5-7B"

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        return patch_tokens(model_config, meta.height, meta.width)
