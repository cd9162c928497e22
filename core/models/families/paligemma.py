"""PaliGemma (1 and 2): a SigLIP tower and Gemma. The prefix (images, <bos>, the first prompt, a newline) is
attended both ways, what follows causally; token_type_ids mark the prefix with 0. PaliGemma brings no chat
template: turns are laid out as its processor lays out a prefix and a suffix."""

from __future__ import annotations

from typing import Any

from core.models.families.base import Family, ImageMeta, ImageSettings, siglip_head

# The processor's layout (images, <bos>, prompt, "\n"; answer, <eos>) carried over to several turns.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set parts = [{'type': 'text', 'text': message['content']}] %}"
    "{% else %}{% set parts = message['content'] %}{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{% for part in parts if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}{{ eos_token }}"
    "{% else %}"
    "{% for part in parts if part['type'] == 'image' %}<image>{% endfor %}"
    "{% if loop.first %}{{ bos_token }}{% endif %}"
    "{% for part in parts if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}{{ '\n' }}"
    "{% endif %}"
    "{% endfor %}"
)


class PaliGemmaFamily(Family):
    name = "paligemma"
    label = "PaliGemma"
    model_types = ("paligemma",)
    processor_class = "PaliGemmaProcessor"
    batch_keys = ("pixel_values",)
    chat_template = CHAT_TEMPLATE
    common_size = "PaliGemma 2 3B (448 px)"

    def consumed(self, model_config: Any, meta: ImageMeta) -> int:
        vision = model_config.vision_config
        return (int(vision.image_size) // int(vision.patch_size)) ** 2

    def text_inputs(self, processor: Any, input_ids: Any, encoded: list[Any], processed: dict[str, Any],
                    counts: list[int]) -> dict[str, Any]:
        """token_type_ids: 0 over the prefix (up to the first answer), 1 from there on."""
        import torch

        types = torch.ones_like(input_ids)
        for row, sample in enumerate(encoded):
            types[row, : sample.prefix_length] = 0
        return {"token_type_ids": types}

    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        v = dict(config.get("vision_config") or {})
        hidden, size, patch = int(v.get("hidden_size", 1152)), int(v.get("image_size", 224)), int(
            v.get("patch_size", 14))
        projection = int(config.get("projection_dim") or v.get("projection_dim") or text_hidden)
        return {"hidden_size": hidden, "intermediate_size": int(v.get("intermediate_size", 4304)),
                "num_layers": int(v.get("num_hidden_layers", 27)), "num_heads": int(v.get("num_attention_heads", 16)),
                "image_size": size, "patch_size": patch, "class_token": False,
                "tower_tokens": (size // patch) ** 2, "image_tokens": (size // patch) ** 2,
                "projector_in": hidden, "projector_out": projection, "projector": hidden * projection + projection,
                "model_type": str(v.get("model_type") or "siglip_vision_model"),
                "extra_params": siglip_head(hidden, int(v.get("intermediate_size", 4304))) if v.get(
                    "vision_use_head", True) else 0}
