"""Llama 3.2 Vision (mllama): images never enter the text. Each image is one <|image|> token; the language model
reads the tiles' features through cross-attention layers, and a cross-attention mask says which text tokens see
which image (those from its <|image|> token on)."""

from __future__ import annotations

from typing import Any

from core.models.families.base import Family, ImageMeta, ImageSettings


class MllamaFamily(Family):
    name = "mllama"
    label = "Llama 3.2 Vision"
    model_types = ("mllama",)
    processor_class = "MllamaProcessor"
    vision_modules = ("vision_model",)
    quantize_skip = ("model.vision_model", "model.multi_modal_projector", "lm_head")
    batch_keys = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")
    nested_images = True
    fixed_images_why = "its tiles (up to 4 of 560 px) are fixed by the vision tower"
    common_size = "Llama-3.2-11B-Vision-Instruct"

    def process(self, processor: Any, images: list[list[Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        """One row per sample, those without images included: the cross-attention mask lines up with the text."""
        return dict(processor.image_processor(images=images, **kwargs, return_tensors="pt"))

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        return 1

    def text_inputs(self, processor: Any, input_ids: Any, encoded: list[Any], processed: dict[str, Any],
                    counts: list[int]) -> dict[str, Any]:
        import torch
        from transformers.models.mllama.processing_mllama import (
            convert_sparse_cross_attention_mask_to_dense,
            get_cross_attention_token_mask,
        )

        if not processed:
            return {}
        token = self.counted_token_id(processor)
        sparse = [get_cross_attention_token_mask(row.tolist(), token) for row in input_ids]
        dense = convert_sparse_cross_attention_mask_to_dense(
            sparse, num_tiles=processed["num_tiles"], max_num_tiles=processed["pixel_values"].shape[2],
            length=input_ids.shape[1])
        return {"cross_attention_mask": torch.from_numpy(dense)}

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        v = dict(config.get("vision_config") or {})
        hidden, size, patch = int(v.get("hidden_size", 1280)), int(v.get("image_size", 560)), int(
            v.get("patch_size", 14))
        tiles = int(v.get("max_num_tiles", 4))
        per_tile = (size // patch) ** 2 + 1
        out = int(v.get("vision_output_dim", 7680))
        layers = int(v.get("num_hidden_layers", 32)) + int(v.get("num_global_layers", 8))
        ratios = len(v.get("supported_aspect_ratios") or range(8)) + 1
        # per aspect ratio and tile: a gated position embedding for every patch, and two tile embeddings
        tile_embeddings = ratios * tiles * (per_tile * hidden + 2 * hidden)
        return {"hidden_size": hidden, "intermediate_size": int(v.get("intermediate_size", 5120)),
                "num_layers": layers, "num_heads": int(v.get("attention_heads", 16)), "image_size": size,
                "patch_size": patch, "class_token": True, "tower_tokens": tiles * per_tile, "image_tokens": 1,
                "tiles": tiles, "projector_in": out, "projector_out": text_hidden,
                "projector": out * text_hidden + text_hidden, "model_type": "mllama_vision_model",
                "extra_params": tile_embeddings}
