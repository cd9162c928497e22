"""Gemma 3: a SigLIP tower at 896 px pooled to 256 soft tokens per image between <start_of_image> and
<end_of_image>; pan and scan (off by default) adds crops of a large image, 256 tokens each. Image tokens attend
to each other both ways, which token_type_ids tell the model."""

from __future__ import annotations

from typing import Any

from core.models.families.base import Family, ImageMeta, ImageSettings, siglip_head


class Gemma3Family(Family):
    name = "gemma3"
    label = "Gemma 3"
    model_types = ("gemma3",)
    processor_class = "Gemma3Processor"
    image_options = ("image_tiling",)
    batch_keys = ("pixel_values",)
    size_dependent = True  # with pan and scan, larger images get crops
    common_size = "Gemma-3-4B-IT"

    def setting_kwargs(self, processor: Any, settings: ImageSettings) -> dict[str, Any]:
        if settings.tiling == "default":
            return {}
        return {"do_pan_and_scan": settings.tiling == "on"}

    def counted_token_id(self, processor: Any) -> int:
        return int(processor.tokenizer.image_token_id)  # the soft tokens, not the <start_of_image> placeholder

    def meta(self, processed: dict[str, Any], index: int, counts: list[int]) -> ImageMeta:
        crops = processed.get("num_crops")
        return ImageMeta(tiles=1 + (int(crops[index]) if crops is not None else 0))

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        return int(model_config.mm_tokens_per_image) * meta.tiles

    def text_inputs(self, processor: Any, input_ids: Any, labels: Any, processed: dict[str, Any],
                    counts: list[int]) -> dict[str, Any]:
        """token_type_ids: 1 on image tokens (they attend to each other bidirectionally), 0 elsewhere."""
        return {"token_type_ids": (input_ids == self.counted_token_id(processor)).long()}

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        v = dict(config.get("vision_config") or {})
        hidden, size, patch = int(v.get("hidden_size", 1152)), int(v.get("image_size", 896)), int(
            v.get("patch_size", 14))
        crops = int(preprocessor.get("pan_and_scan_max_num_crops") or 4) if settings.tiling == "on" else 0
        tokens = int(config.get("mm_tokens_per_image") or 256)
        return {"hidden_size": hidden, "intermediate_size": int(v.get("intermediate_size", 4304)),
                "num_layers": int(v.get("num_hidden_layers", 27)), "num_heads": int(v.get("num_attention_heads", 16)),
                "image_size": size, "patch_size": patch, "class_token": False,
                "tower_tokens": (crops + 1) * (size // patch) ** 2, "image_tokens": (crops + 1) * tokens,
                "tiles": crops + 1, "projector_in": hidden, "projector_out": text_hidden,
                "projector": hidden + hidden * text_hidden,  # RMSNorm, then one matrix (after 4x4 average pooling)
                "model_type": str(v.get("model_type") or "siglip_vision_model"),
                "extra_params": siglip_head(hidden, int(v.get("intermediate_size", 4304))) if v.get(
                    "vision_use_head", True) else 0}
