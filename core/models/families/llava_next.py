"""LLaVA-NeXT (LLaVA-1.6): any-resolution tiling. Each image is encoded whole at the tower's size and as tiles of
its best-fitting grid, the padding is cut off again, and every row of tile features ends with a newline token."""

from __future__ import annotations

import math
from typing import Any

from core.models.families.base import Family, ImageMeta, ImageSettings
from core.models.families.llava import patch_tokens

# LlavaNextConfig's grid when a config.json names none.
DEFAULT_PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]


def unpadded(orig: tuple[int, int], grid: tuple[int, int], side: int) -> tuple[int, int]:
    """Rows and columns of tile features left once the padding around the image is cut (transformers'
    ``unpad_image`` on a grid of ``grid`` tiles of ``side`` features)."""
    orig_h, orig_w = orig
    cur_h, cur_w = grid[0] * side, grid[1] * side
    if orig_w / orig_h > cur_w / cur_h:
        new_h = int(round(orig_h * (cur_w / orig_w), 7))
        cur_h -= 2 * ((cur_h - new_h) // 2)
    else:
        new_w = int(round(orig_w * (cur_h / orig_h), 7))
        cur_w -= 2 * ((cur_w - new_w) // 2)
    return cur_h, cur_w


def best_grid(orig: tuple[int, int], pinpoints: list, tile: int) -> tuple[int, int]:
    """(rows, columns) of tiles for an image, as transformers' ``get_anyres_image_grid_shape`` picks them."""
    from transformers.image_processing_utils import select_best_resolution

    height, width = select_best_resolution(list(orig), [list(p) for p in pinpoints])
    return height // tile, width // tile


class LlavaNextFamily(Family):
    name = "llava_next"
    label = "LLaVA-NeXT"
    model_types = ("llava_next",)
    processor_class = "LlavaNextProcessor"
    projector_modules = ("multi_modal_projector", "image_newline")
    batch_keys = ("pixel_values", "image_sizes")
    size_dependent = True
    fixed_images_why = "its any-resolution tiling is what its weights were trained with"
    common_size = "LLaVA-v1.6-Mistral-7B"

    def meta(self, processed: dict[str, Any], index: int, counts: list[int]) -> ImageMeta:
        height, width = processed["pixel_values"][0][0].shape[-2:]
        orig = [int(x) for x in processed["image_sizes"][index]]
        return ImageMeta(height=int(height), width=int(width), orig_height=orig[0], orig_width=orig[1],
                         alone=self.alone(counts, index))

    @staticmethod
    def alone(counts: list[int], index: int) -> bool:
        seen = 0
        for n in counts:
            if index < seen + n:
                return n == 1
            seen += n
        return True

    def tile_features(self, model_config: Any, meta: ImageMeta) -> tuple[int, int, int]:
        """(base tokens, rows, columns) of features the model keeps for one image."""
        vision = model_config.vision_config
        side = int(vision.image_size) // int(vision.patch_size)
        base = patch_tokens(model_config, int(vision.image_size), int(vision.image_size))
        grid = best_grid((meta.orig_height, meta.orig_width), model_config.image_grid_pinpoints,
                         int(vision.image_size))
        rows, cols = unpadded((meta.orig_height, meta.orig_width), grid, side)
        return base, rows, cols

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        base, rows, cols = self.tile_features(model_config, meta)
        return base + rows * (cols + 1)  # each row of tile features ends with the image_newline embedding

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        """The LLaVA reading, with the largest grid of the pinpoints: its tiles plus the whole image."""
        size, patch = int(base["image_size"]), int(base["patch_size"])
        pinpoints = config.get("image_grid_pinpoints") or preprocessor.get("image_grid_pinpoints") or \
            DEFAULT_PINPOINTS
        largest = max(pinpoints, key=math.prod)
        tiles = math.prod(largest) // (size * size)
        side = size // patch
        rows, cols = largest[0] // size * side, largest[1] // size * side
        per_tile = (size // patch) ** 2 + (1 if base["class_token"] else 0)
        return {**base, "tower_tokens": (tiles + 1) * per_tile, "tiles": tiles + 1,
                "image_tokens": self.token_cap(int(base["image_tokens"]), rows, cols, side)}

    def token_cap(self, base: int, rows: int, cols: int, side: int) -> int:
        return base + rows * (cols + 1)

