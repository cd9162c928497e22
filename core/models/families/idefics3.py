"""Idefics3: image splitting. An image is resized so its longest edge is at most the chosen size, cut into tiles
of the tower's size plus one downscaled whole image, and each tile becomes image_seq_len <image> tokens (pixel
shuffle by scale_factor) between <fake_token_around_image> markers and <row_i_col_j> tags."""

from __future__ import annotations

import math
from typing import Any

from core.models.families.base import Family, ImageMeta, ImageSettings
from core.problems import Problem


class Idefics3Family(Family):
    name = "idefics3"
    label = "Idefics3"
    model_types = ("idefics3",)
    processor_class = "Idefics3Processor"
    projector_modules = ("connector",)
    projector_label = "connector"
    vision_modules = ("vision_model",)
    language_modules = ("text_model",)
    quantize_skip = ("model.vision_model", "model.connector", "lm_head")
    image_options = ("image_size", "image_tiling")
    batch_keys = ("pixel_values", "pixel_attention_mask")
    size_dependent = True
    nested_images = True
    common_size = "Idefics3-8B-Llama3"
    default_longest_edge = 4 * 364

    def own_problems(self, settings: ImageSettings) -> list[Problem]:
        if settings.image_size and settings.image_size < 64:
            return [Problem("give the longest edge in pixels, at least 64", field="image_size")]
        return []

    def setting_kwargs(self, processor: Any, settings: ImageSettings) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if settings.image_size:
            kwargs["size"] = {"longest_edge": settings.image_size}
        if settings.tiling != "default":
            kwargs["do_image_splitting"] = settings.tiling == "on"
        return kwargs

    def meta(self, processed: dict[str, Any], index: int, counts: list[int]) -> ImageMeta:
        rows = [r for group in processed["rows"] for r in group][index]
        cols = [c for group in processed["cols"] for c in group][index]
        return ImageMeta(tiles=int(rows) * int(cols) + 1)

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        vision = model_config.vision_config
        per_tile = (int(vision.image_size) // int(vision.patch_size)) ** 2 // int(model_config.scale_factor) ** 2
        return per_tile * meta.tiles

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        v = dict(config.get("vision_config") or {})
        hidden, size, patch = int(v.get("hidden_size", 1152)), int(v.get("image_size", 364)), int(
            v.get("patch_size", 14))
        scale = int(config.get("scale_factor") or 2)
        tile = int((preprocessor.get("max_image_size") or {}).get("longest_edge") or size)
        longest = settings.image_size or int((preprocessor.get("size") or {}).get("longest_edge")
                                             or self.default_longest_edge)
        split = settings.tiling != "off" and preprocessor.get("do_image_splitting", True) is not False
        tiles = (math.ceil(longest / tile) ** 2 + 1) if split else 1
        per_tile = (size // patch) ** 2
        return {"hidden_size": hidden, "intermediate_size": int(v.get("intermediate_size", 4304)),
                "num_layers": int(v.get("num_hidden_layers", 27)), "num_heads": int(v.get("num_attention_heads", 16)),
                "image_size": size, "patch_size": patch, "class_token": False, "tower_tokens": tiles * per_tile,
                "image_tokens": tiles * per_tile // (scale * scale), "tiles": tiles,
                "projector_in": hidden * scale * scale, "projector_out": text_hidden,
                "projector": hidden * scale * scale * text_hidden,  # one matrix after the pixel shuffle, no bias
                "model_type": str(v.get("model_type") or "idefics3_vision")}
