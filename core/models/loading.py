"""Load a model and its processor from a hub id, a local folder or the built-in tiny model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.paths import StudioPaths
from core.train_config import TINY_MODEL

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "pure_bf16": "bfloat16"}


def resolve_model(spec: str, paths: StudioPaths) -> str:
    """The folder or hub id that ``from_pretrained`` should get for a model choice."""
    spec = spec.strip()
    if spec == TINY_MODEL:
        from core.models.tiny_llava import ensure_tiny_llava

        return str(ensure_tiny_llava(paths.models_dir))
    local = Path(spec).expanduser()
    if local.is_dir():
        return str(local.resolve())
    return spec  # a hub id; transformers downloads it (or reads its cache when offline)


def is_vision_language(model_path: str) -> bool:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_path)
    return getattr(config, "vision_config", None) is not None


def load_processor(model_path: str) -> Any:
    """The multimodal processor for a VLM, or the tokenizer for a text model (right padding for training)."""
    from transformers import AutoProcessor, AutoTokenizer

    if is_vision_language(model_path):
        processor = AutoProcessor.from_pretrained(model_path)
        tokenizer = processor.tokenizer
    else:
        processor = tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # not saved in tokenizer configs: set at run time
    return processor


def load_model(model_path: str, *, precision: str = "fp32", device: str = "cpu", **kwargs: Any) -> Any:
    """Load the model for training or inference; mixed precision keeps fp32 weights, pure bf16 does not."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    dtype = torch.bfloat16 if precision == "pure_bf16" else torch.float32
    if "quantization_config" in kwargs and precision in ("bf16", "fp16"):
        dtype = getattr(torch, DTYPES[precision])
    auto = AutoModelForImageTextToText if is_vision_language(model_path) else AutoModelForCausalLM
    model = auto.from_pretrained(model_path, dtype=kwargs.pop("dtype", dtype), **kwargs)
    if "quantization_config" not in kwargs and "device_map" not in kwargs:
        model.to(device)
    return model
