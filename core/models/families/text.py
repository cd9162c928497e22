"""Text-only language models (Llama, Qwen2.5/3, Gemma, SmolLM2, Mistral...): every weight is the language model's
except the head; no images."""

from __future__ import annotations

from core.models.families.base import Family


class TextFamily(Family):
    name = "text"
    label = "Text LLM"
    model_types = ("llama", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "mistral", "phi3")
    vision = False
    projector_modules = ()
    vision_modules = ()
    language_modules = ("model",)
    quantize_skip = ("lm_head",)
    batch_keys = ()
    prompt_learning = True
    common_size = "Llama-3.1-8B-Instruct"
