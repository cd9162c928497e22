"""Qwen2-VL: dynamic resolution. Each image is resized to a multiple of 28 px between min and max pixels; every
2x2 group of 14 px patches becomes one <|image_pad|> token, so the count depends on the image's size."""

from __future__ import annotations

from typing import Any

from core.models.families.base import Family, ImageMeta, ImageSettings
from core.problems import Problem

# Qwen2VLImageProcessor's own limits when a folder does not say (56x56 up to 28x28x1280 pixels).
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280


class Qwen2VLFamily(Family):
    name = "qwen2_vl"
    label = "Qwen2-VL"
    model_types = ("qwen2_vl",)
    processor_class = "Qwen2VLProcessor"
    projector_modules = ("merger",)
    projector_label = "merger"
    vision_modules = ("visual",)
    quantize_skip = ("model.visual", "lm_head")
    image_options = ("image_max_pixels", "image_min_pixels")
    batch_keys = ("pixel_values", "image_grid_thw")
    has_video_processor = True
    size_dependent = True
    common_size = "Qwen2-VL-7B-Instruct"

    def own_problems(self, settings: ImageSettings) -> list[Problem]:
        if settings.max_pixels and settings.min_pixels > settings.max_pixels:
            return [Problem("min pixels must not exceed max pixels", field="image_min_pixels")]
        if settings.max_pixels and settings.max_pixels < 4 * self.patch_default() ** 2:
            return [Problem(f"{self.label} needs at least {4 * self.patch_default() ** 2} pixels per image "
                            "(one 2x2 group of patches)", field="image_max_pixels")]
        return []

    def patch_default(self) -> int:
        return 14

    def setting_kwargs(self, processor: Any, settings: ImageSettings) -> dict[str, Any]:
        if not (settings.max_pixels or settings.min_pixels):
            return {}
        size = dict(processor.image_processor.size)
        if settings.min_pixels:
            size["shortest_edge"] = settings.min_pixels
        if settings.max_pixels:
            size["longest_edge"] = settings.max_pixels
        return {"size": size}

    def meta(self, processed: dict[str, Any], index: int, counts: list[int]) -> ImageMeta:
        return ImageMeta(grid=tuple(int(x) for x in processed["image_grid_thw"][index]))

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        merge = int(model_config.vision_config.spatial_merge_size)
        t, h, w = meta.grid
        return t * h * w // (merge * merge)

    def text_inputs(self, processor: Any, input_ids: Any, labels: Any, processed: dict[str, Any],
                    counts: list[int]) -> dict[str, Any]:
        """M-RoPE places image tokens by mm_token_type_ids (1 for image tokens), as the processor returns them."""
        import torch

        image = self.counted_token_id(processor)
        return {"mm_token_type_ids": (input_ids == image).to(torch.int32)}

    # --- memory -----------------------------------------------------------------------------------------
    def tower(self, v: dict[str, Any]) -> tuple[int, int, int, int]:
        """(width, MLP width, layers, heads) of the vision transformer."""
        width = int(v.get("embed_dim") or 1280)
        return width, int(width * float(v.get("mlp_ratio") or 4)), int(v.get("depth") or 32), int(
            v.get("num_heads") or 16)

    def merger_params(self, width: int, merge: int, out: int, v: dict[str, Any]) -> int:
        """The patch merger: LayerNorm, then Linear(w*m^2 -> w*m^2), GELU, Linear(w*m^2 -> out), with biases."""
        wide = width * merge * merge
        return 2 * width + wide * wide + wide + wide * out + out

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        v = dict(config.get("vision_config") or {})
        width, mlp, layers, heads = self.tower(v)
        patch = int(v.get("patch_size") or self.patch_default())
        merge = int(v.get("spatial_merge_size") or 2)
        size = dict(preprocessor.get("size") or {})
        max_pixels = settings.max_pixels or int(preprocessor.get("max_pixels") or size.get("longest_edge")
                                                or DEFAULT_MAX_PIXELS)
        patches = max(max_pixels // (patch * patch) // (merge * merge), 1) * merge * merge
        side = int(patches ** 0.5) * patch
        return {"hidden_size": width, "intermediate_size": mlp, "num_layers": layers, "num_heads": heads,
                "image_size": side, "patch_size": patch, "class_token": False, "tower_tokens": patches,
                "learned_positions": False,
                "image_tokens": patches // (merge * merge), "projector_in": width * merge * merge,
                "projector_out": text_hidden, "projector": self.merger_params(width, merge, text_hidden, v),
                "model_type": str(v.get("model_type") or self.name)}
