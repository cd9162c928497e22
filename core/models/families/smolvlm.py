"""SmolVLM: Idefics3's image splitting and layout with a smaller tower and language model (and a video part in its
processor, left out where torchvision is missing)."""

from __future__ import annotations

from core.models.families.idefics3 import Idefics3Family


class SmolVLMFamily(Idefics3Family):
    name = "smolvlm"
    label = "SmolVLM"
    model_types = ("smolvlm",)
    processor_class = "SmolVLMProcessor"
    has_video_processor = True
    common_size = "SmolVLM-Instruct (2.2B)"
    default_longest_edge = 4 * 384
