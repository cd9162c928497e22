"""Qwen3-VL: dynamic resolution with 16 px patches (32 px per image token) and DeepStack mergers that feed
features of earlier tower layers into the first language-model layers."""

from __future__ import annotations

from typing import Any

from core.models.families.base import ImageSettings
from core.models.families.qwen2_vl import Qwen2VLFamily


class Qwen3VLFamily(Qwen2VLFamily):
    name = "qwen3_vl"
    label = "Qwen3-VL"
    model_types = ("qwen3_vl",)
    processor_class = "Qwen3VLProcessor"
    projector_modules = ("merger", "deepstack_merger_list")
    common_size = "Qwen3-VL-8B-Instruct"

    def patch_default(self) -> int:
        return 16

    def tower(self, v: dict[str, Any]) -> tuple[int, int, int, int]:
        return (int(v.get("hidden_size") or 1152), int(v.get("intermediate_size") or 4304), int(v.get("depth") or 27),
                int(v.get("num_heads") or 16))

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        """Qwen2-VL's reading, plus Qwen3-VL's learned position table (interpolated to each image's grid)."""
        shape = super().vision_shape(config, text_hidden, preprocessor, settings, base)
        table = int(dict(config.get("vision_config") or {}).get("num_position_embeddings") or 2304)
        return {**shape, "image_size": int(table ** 0.5) * shape["patch_size"], "learned_positions": True}

    def merger_params(self, width: int, merge: int, out: int, v: dict[str, Any]) -> int:
        wide = width * merge * merge
        one = 2 * width + wide * wide + wide + wide * out + out
        deepstack = 2 * wide + wide * wide + wide + wide * out + out  # its LayerNorm sits after the shuffle
        return one + len(v.get("deepstack_visual_indexes") or (8, 16, 24)) * deepstack
