"""LLaVA-OneVision: LLaVA-NeXT's any-resolution tiling on a SigLIP tower, pooled down when a single image would
pass 9 tiles' worth of features (anyres_max_9); in a sample with several images each image is encoded whole."""

from __future__ import annotations

import math
from typing import Any

from core.models.families.base import ImageMeta
from core.models.families.llava_next import LlavaNextFamily


class LlavaOnevisionFamily(LlavaNextFamily):
    name = "llava_onevision"
    label = "LLaVA-OneVision"
    model_types = ("llava_onevision",)
    processor_class = "LlavaOnevisionProcessor"
    batch_keys = ("pixel_values", "image_sizes", "batch_num_images")
    has_video_processor = True
    nested_images = True  # batch_num_images (images per sample) decides whether an image is tiled
    common_size = "LLaVA-OneVision-Qwen2-7B"

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        base, rows, cols = self.tile_features(model_config, meta)
        if not meta.alone:
            return base + 1
        rows, cols = self.pooled(model_config, rows, cols)
        return base + rows * (cols + 1)

    @staticmethod
    def pooled(model_config: Any, rows: int, cols: int) -> tuple[int, int]:
        """Rows and columns after the anyres_max_N interpolation, when the image has more than N tiles' worth."""
        vision = model_config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        limit = int(str(getattr(model_config, "vision_aspect_ratio", "anyres_max_9")).removeprefix("anyres_max_"))
        ratio = math.sqrt(rows * cols / (limit * side * side))
        if ratio > 1.1:
            return int(rows // ratio), int(cols // ratio)
        return rows, cols

    def token_cap(self, base: int, rows: int, cols: int, side: int) -> int:
        ratio = math.sqrt(rows * cols / (9 * side * side))
        if ratio > 1.1:
            rows, cols = int(rows // ratio), int(cols // ratio)
        return base + rows * (cols + 1)
