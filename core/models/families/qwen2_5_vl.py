"""Qwen2.5-VL: Qwen2-VL's dynamic resolution with a windowed-attention vision tower (SwiGLU MLP, RMSNorm)."""

from __future__ import annotations

from typing import Any

from core.models.families.base import ImageSettings
from core.models.families.qwen2_vl import Qwen2VLFamily


class Qwen25VLFamily(Qwen2VLFamily):
    name = "qwen2_5_vl"
    label = "Qwen2.5-VL"
    model_types = ("qwen2_5_vl",)
    processor_class = "Qwen2_5_VLProcessor"
    common_size = "Qwen2.5-VL-7B-Instruct"

    def tower(self, v: dict[str, Any]) -> tuple[int, int, int, int]:
        return (int(v.get("hidden_size") or 1280), int(v.get("intermediate_size") or 3420), int(v.get("depth") or 32),
                int(v.get("num_heads") or 16))

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        return {**super().vision_shape(config, text_hidden, preprocessor, settings, base), "mlp_matrices": 3}

    def merger_params(self, width: int, merge: int, out: int, v: dict[str, Any]) -> int:
        wide = width * merge * merge  # RMSNorm (weight only), then the same two linear layers as Qwen2-VL
        return width + wide * wide + wide + wide * out + out
