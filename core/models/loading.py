"""Load a model and its processor from a hub id, a local folder or the built-in tiny model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.paths import StudioPaths
from core.train_config import TINY_MODEL

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "pure_bf16": "bfloat16"}


@dataclass(frozen=True)
class ModelFacts:
    """What validation needs to know about a model before loading it: its type, parts and size."""

    model_type: str
    vision: bool
    text_layers: int | None
    hidden_size: int | None


# The built-in model's shape (core/models/tiny_llava.py), known without building it; a test checks they agree.
TINY_FACTS = ModelFacts(model_type="llava", vision=True, text_layers=2, hidden_size=64)


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


def facts_of(config: Any) -> ModelFacts:
    """ModelFacts from a loaded transformers config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return ModelFacts(
        model_type=str(getattr(config, "model_type", "") or ""),
        vision=getattr(config, "vision_config", None) is not None,
        text_layers=getattr(text, "num_hidden_layers", None),
        hidden_size=getattr(text, "hidden_size", None),
    )


def describe_model(spec: str) -> ModelFacts | None:
    """Facts about a model choice from its config alone (local folder or hub cache); None when unknown offline."""
    spec = spec.strip()
    if spec == TINY_MODEL:
        return TINY_FACTS
    if not spec:
        return None
    try:
        from transformers import AutoConfig

        local = Path(spec).expanduser()
        if local.is_dir():
            return facts_of(AutoConfig.from_pretrained(str(local)))
        return facts_of(AutoConfig.from_pretrained(spec, local_files_only=True))
    except Exception:  # noqa: BLE001 - unknown here; the job checks again once the model is loaded
        return None


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


def load_dtype(precision: str, quantized: bool) -> Any:
    """The dtype weights are loaded in: fp32 for fp32; the half dtype for pure bf16 and for mixed precision.

    Under mixed precision the frozen weights stay in the half dtype autocast computes in (a 7B base takes 13 GB, not
    27), and the training loop casts everything the optimizer may update back to fp32 master weights, as the
    LoRA and QLoRA recipes do. ``quantized`` is accepted for callers' symmetry; the rule is the same.
    """
    import torch

    if precision in ("pure_bf16", "bf16", "fp16"):
        return getattr(torch, DTYPES[precision])
    return torch.float32


def load_model(model_path: str, *, precision: str = "fp32", device: str = "cpu", **kwargs: Any) -> Any:
    """Load the model for training or inference (see ``load_dtype``); a quantized base is placed by bitsandbytes."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    quantized = "quantization_config" in kwargs
    dtype = kwargs.pop("dtype", None) or load_dtype(precision, quantized)
    if quantized and device == "cuda":
        kwargs.setdefault("device_map", {"": 0})
    auto = AutoModelForImageTextToText if is_vision_language(model_path) else AutoModelForCausalLM
    model = auto.from_pretrained(model_path, dtype=dtype, **kwargs)
    if not quantized and "device_map" not in kwargs:
        model.to(device)
    return model
