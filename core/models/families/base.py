"""What the studio knows about one model family: its parts, LoRA targets, image settings, image tokens and inputs.

A family describes itself with class attributes and overrides a few small methods where its processor or model
differ from the common case (a transformers 5 processor that expands each image placeholder with
``replace_image_token`` and whose image processor's outputs go to the model as they are).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.problems import Problem

TILING_CHOICES = ("default", "on", "off")
NOT_USED = "{label} does not use this setting: {why}; leave it at {default}"


@dataclass(frozen=True)
class ImageSettings:
    """The image-resolution choices of a run (TrainConfig's image fields); 0 and "default" keep the model's own."""

    max_pixels: int = 0
    min_pixels: int = 0
    image_size: int = 0
    tiling: str = "default"

    @classmethod
    def of(cls, config: Any) -> ImageSettings:
        """The settings of a TrainConfig (or of anything with the same field names; missing ones are defaults)."""
        return cls(max_pixels=int(getattr(config, "image_max_pixels", 0) or 0),
                   min_pixels=int(getattr(config, "image_min_pixels", 0) or 0),
                   image_size=int(getattr(config, "image_size", 0) or 0),
                   tiling=str(getattr(config, "image_tiling", "default") or "default"))


@dataclass(frozen=True)
class ImageMeta:
    """What the model needs to know about one processed image to count the features it makes of it."""

    height: int = 0  # of the pixel tensor the tower sees (per tile)
    width: int = 0
    orig_height: int = 0
    orig_width: int = 0
    grid: tuple[int, ...] = ()  # Qwen-VL: (t, h, w) patches
    tiles: int = 1  # crops or tiles the tower encodes for this image (Idefics3 rows x cols + global, Gemma crops + 1)
    alone: bool = True  # the only image of its sample (LLaVA-OneVision tiles only then)


class Family:
    """One model family. Subclasses set the attributes and override what differs."""

    name = ""
    label = ""
    model_types: tuple[str, ...] = ()
    processor_class = ""  # the transformers processor class
    vision = True
    # Module-name components of each part; the projector is looked for first (Qwen's merger sits in its tower).
    projector_modules: tuple[str, ...] = ("multi_modal_projector",)
    vision_modules: tuple[str, ...] = ("vision_tower",)
    language_modules: tuple[str, ...] = ("language_model",)
    head_modules: tuple[str, ...] = ("lm_head",)
    projector_label = "projector"  # what the family calls it
    # Full module names bitsandbytes must leave unquantized (transformers 5 matches them from the start).
    quantize_skip: tuple[str, ...] = ("model.vision_tower", "model.multi_modal_projector", "lm_head")
    attention_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    mlp_targets: tuple[str, ...] = ("gate_proj", "up_proj", "down_proj")
    # TrainConfig image fields this family reads, and why the others do not apply.
    image_options: tuple[str, ...] = ()
    fixed_images_why = "its image size is fixed by the vision tower"
    # Processor outputs that travel to the model, besides input_ids, attention_mask and labels.
    batch_keys: tuple[str, ...] = ("pixel_values",)
    has_video_processor = False  # loaded without its video part where torchvision is missing
    size_dependent = False  # whether an image's tokens depend on its size (else one probe size serves all)
    nested_images = False  # the image processor takes one list of images per sample
    prompt_learning = False  # peft's virtual tokens (fed as embeddings) are known to place images right
    chat_template: str | None = None  # used when the processor brings none
    common_size = ""  # what bench/gpu_families.py builds

    # --- parts ------------------------------------------------------------------------------------------
    def part_of(self, name: str) -> str:
        """Which part a parameter or module name belongs to: projector, vision, head or language."""
        pieces = name.split(".")
        if any(m in pieces for m in self.projector_modules):
            return "projector"
        if any(m in pieces for m in self.vision_modules):
            return "vision"
        if any(m in pieces for m in self.head_modules):
            return "head"
        return "language"

    def non_language_modules(self) -> tuple[str, ...]:
        return self.projector_modules + self.vision_modules + self.head_modules

    def lora_targets(self, which: str) -> tuple[str, ...]:
        """Short names of the language model's layers LoRA adapts: 'attention' or 'all-linear'."""
        return self.attention_targets if which == "attention" else self.attention_targets + self.mlp_targets

    # --- settings ---------------------------------------------------------------------------------------
    def problems(self, settings: ImageSettings) -> list[Problem]:
        """Warnings for image settings this family ignores (they would silently do nothing)."""
        found = []
        chosen = {"image_max_pixels": settings.max_pixels, "image_min_pixels": settings.min_pixels,
                  "image_size": settings.image_size, "image_tiling": settings.tiling}
        for field, value in chosen.items():
            if field in self.image_options or value in (0, "default"):
                continue
            why = self.fixed_images_why if self.vision else "it reads text only"
            default = "'default'" if field == "image_tiling" else "0"
            found.append(Problem(NOT_USED.format(label=self.label, why=why, default=default), field=field,
                                 severity="warning"))
        return found + self.own_problems(settings)

    def own_problems(self, settings: ImageSettings) -> list[Problem]:
        return []

    def image_kwargs(self, processor: Any, settings: ImageSettings) -> dict[str, Any]:
        """Keyword arguments for the image processor: the processor's own defaults, then the chosen settings."""
        return merged_image_kwargs(processor, self.setting_kwargs(processor, settings))

    def setting_kwargs(self, processor: Any, settings: ImageSettings) -> dict[str, Any]:
        return {}

    # --- tokens -----------------------------------------------------------------------------------------
    def placeholder(self, processor: Any) -> str | None:
        """The text the chat template writes where an image goes."""
        return getattr(processor, "image_token", None)

    def counted_token_id(self, processor: Any) -> int | None:
        """The token id the model replaces with image features (counted per image in input_ids)."""
        return getattr(processor, "image_token_id", None)

    def counted_token(self, processor: Any) -> str | None:
        token_id = self.counted_token_id(processor)
        return None if token_id is None else processor.tokenizer.convert_ids_to_tokens(token_id)

    def process(self, processor: Any, images: list[list[Any]], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The image processor's outputs for the images of each sample (samples without images left out)."""
        with_images = [group for group in images if group]
        flat = with_images if self.nested_images else [img for group in with_images for img in group]
        return dict(processor.image_processor(images=flat, **kwargs, return_tensors="pt"))

    def expand(self, processor: Any, processed: dict[str, Any], index: int, kwargs: dict[str, Any]) -> str:
        """The text image ``index`` (over the batch) becomes, exactly as the processor expands it."""
        return processor.replace_image_token(processed, image_idx=index, **kwargs)

    def meta(self, processed: dict[str, Any], index: int, counts: list[int]) -> ImageMeta:
        """What ``consumed`` needs about image ``index``; ``counts`` are the images per sample."""
        pixels = processed.get("pixel_values")
        height, width = (tuple(pixels[index].shape[-2:]) if pixels is not None and len(pixels) > index
                         else (0, 0))
        return ImageMeta(height=int(height), width=int(width))

    def consumed(self, model_config: Any, meta: ImageMeta) -> int | None:
        """How many image-token positions the model fills for one image (None: not known for this family)."""
        return None

    # --- batches ----------------------------------------------------------------------------------------
    def model_inputs(self, processed: dict[str, Any]) -> dict[str, Any]:
        """The processed outputs the model takes."""
        return {k: v for k, v in processed.items() if k in self.batch_keys}

    def text_inputs(self, processor: Any, input_ids: Any, labels: Any, processed: dict[str, Any],
                    counts: list[int]) -> dict[str, Any]:
        """Inputs made from the token ids (token types, cross-attention masks); none by default."""
        return {}

    # --- memory -----------------------------------------------------------------------------------------
    def vision_shape(self, config: dict[str, Any], text_hidden: int, preprocessor: dict[str, Any],
                     settings: ImageSettings, base: dict[str, Any]) -> dict[str, Any]:
        """The vision side's numbers for the memory estimate (VisionArch's fields) from the model's config.json
        and preprocessor config at these settings; ``base`` is the LLaVA reading of the same config."""
        return base


def merged_image_kwargs(processor: Any, chosen: dict[str, Any]) -> dict[str, Any]:
    """The image keyword arguments the processor's own call would use (its class defaults included), plus ours."""
    try:
        merged = processor._merge_kwargs(tokenizer_init_kwargs=processor.tokenizer.init_kwargs)["images_kwargs"]
    except Exception:  # noqa: BLE001 - a processor without transformers' kwargs machinery: its class defaults
        merged = dict(getattr(type(processor), "images_kwargs", {}) or {})
    merged = {k: v for k, v in merged.items() if k != "return_tensors"}
    merged.update(chosen)
    return merged


def blank_images(sizes: list[tuple[int, int]]) -> list[Any]:
    """Grey images of these (width, height) sizes: an image's tokens depend on its size only."""
    from PIL import Image

    return [Image.new("RGB", size, (128, 128, 128)) for size in sizes]


def siglip_head(hidden: int, intermediate: int) -> int:
    """Parameters of SigLIP's attention-pooling head (probe, attention, layer norm, MLP), which transformers builds
    unless the config sets vision_use_head to false."""
    return hidden + 4 * hidden * hidden + 4 * hidden + 2 * hidden + 2 * hidden * intermediate + intermediate + hidden
