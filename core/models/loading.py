"""Load a model and its processor from a hub id, a local folder or the built-in tiny model."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.models.families import Family, family_for
from core.models.starter import recipe as starter_recipe
from core.paths import StudioPaths
from core.train_config import STARTER_MODEL, TINY_MODEL

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "pure_bf16": "bfloat16"}
CHAT_QUANTIZATIONS = ("none", "8bit", "4bit")


@dataclass(frozen=True)
class ModelFacts:
    """What validation needs to know about a model before loading it: its type, family, parts and size."""

    model_type: str
    vision: bool
    text_layers: int | None
    hidden_size: int | None
    family: str = ""


# The built-in model's shape (core/models/tiny_llava.py), known without building it; a test checks they agree.
TINY_FACTS = ModelFacts(model_type="llava", vision=True, text_layers=2, hidden_size=64, family="llava")
STARTER_FACTS = ModelFacts(model_type="llava", vision=True, text_layers=starter_recipe.TEXT["num_hidden_layers"],
                           hidden_size=starter_recipe.TEXT["hidden_size"], family="llava")


BUILT_IN_MODELS = (TINY_MODEL, STARTER_MODEL)  # built by the studio itself (the starter from PyPI wheels)


def resolve_model(spec: str, paths: StudioPaths, progress: Any = None) -> str:
    """The folder or hub id that ``from_pretrained`` should get for a model choice (building a built-in one
    first; ``progress(fraction, message)`` follows the starter's build, which prints lines without it)."""
    spec = spec.strip()
    if spec == TINY_MODEL:
        from core.models.tiny_llava import ensure_tiny_llava

        return str(ensure_tiny_llava(paths.models_dir))
    if spec == STARTER_MODEL:
        from core.models.starter.build import ensure_starter

        return str(ensure_starter(paths.models_dir, progress))
    local = Path(spec).expanduser()
    if local.is_dir():
        return str(local.resolve())
    return spec  # a hub id; transformers downloads it (or reads its cache when offline)


def config_source(spec: str, paths: StudioPaths) -> str:
    """Like ``resolve_model``, but never waits for a download: what a config.json alone is enough for (the
    memory estimate) gets the starter's config on its own until the starter is built."""
    if spec.strip() == STARTER_MODEL:
        from core.models.starter.build import config_folder

        return str(config_folder(paths.models_dir))
    return resolve_model(spec, paths)


def facts_of(config: Any) -> ModelFacts:
    """ModelFacts from a loaded transformers config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return ModelFacts(
        model_type=str(getattr(config, "model_type", "") or ""),
        vision=getattr(config, "vision_config", None) is not None,
        text_layers=getattr(text, "num_hidden_layers", None),
        hidden_size=getattr(text, "hidden_size", None),
        family=family_for(config).name,
    )


def read_config(spec: str) -> Any | None:
    """A model choice's transformers config from a local folder or the hub cache; None when unknown offline."""
    try:
        from transformers import AutoConfig

        local = Path(spec).expanduser()
        if local.is_dir():
            return AutoConfig.from_pretrained(str(local))
        return AutoConfig.from_pretrained(spec, local_files_only=True)
    except Exception:  # noqa: BLE001 - unknown here; the job checks again once the model is loaded
        return None


def describe_model(spec: str) -> ModelFacts | None:
    """Facts about a model choice from its config alone (local folder or hub cache); None when unknown offline."""
    spec = spec.strip()
    if spec == TINY_MODEL:
        return TINY_FACTS
    if spec == STARTER_MODEL:
        return STARTER_FACTS
    if not spec:
        return None
    config = read_config(spec)
    return facts_of(config) if config is not None else None


def model_family(model_path: str) -> Family:
    from transformers import AutoConfig

    return family_for(AutoConfig.from_pretrained(model_path))


def is_vision_language(model_path: str) -> bool:
    return model_family(model_path).vision


def load_processor(model_path: str) -> Any:
    """The multimodal processor for a VLM (without its video part where torchvision is missing), or the
    tokenizer for a text model; right padding for training."""
    from transformers import AutoTokenizer

    from core.models.processors import load_vision_processor

    family = model_family(model_path)
    if family.vision:
        processor = load_vision_processor(model_path, family.processor_class, family.has_video_processor)
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


def inference_dtype(device: str) -> Any:
    """The dtype chat loads a model in: bf16 on CUDA (fp16 on GPUs without bf16), fp32 on CPU (where half
    precision is slow and not every kernel has it)."""
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def inference_quantization(bits: str, device: str) -> dict[str, Any]:
    """``from_pretrained`` arguments that load a base in 4-bit NF4 or 8-bit for chat (nothing for 'none')."""
    if bits == "none":
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    if bits == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True)}
    compute = inference_dtype(device)
    return {"quantization_config": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute if device == "cuda" else torch.float32, bnb_4bit_quant_storage=torch.uint8)}


# transformers' from_pretrained swaps PreTrainedModel.tie_weights for a no-op on the class while it loads and puts
# back what it found: two loads at once in one process (A/B chat loads its models in parallel threads) can leave the
# no-op in place for good, and every later model with tied embeddings gets an untied, random head. One at a time.
LOAD_LOCK = threading.Lock()


def load_model(model_path: str, *, precision: str = "fp32", device: str = "cpu", **kwargs: Any) -> Any:
    """Load the model for training or inference (see ``load_dtype``); a quantized base is placed by bitsandbytes.

    A quantization config that names no modules to skip gets the family's: the vision tower, the projector and the
    head stay in full precision.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    family = family_for(AutoConfig.from_pretrained(model_path))
    quantization = kwargs.get("quantization_config")
    quantized = quantization is not None
    if quantized and not getattr(quantization, "llm_int8_skip_modules", None):
        quantization.llm_int8_skip_modules = list(family.quantize_skip)
    dtype = kwargs.pop("dtype", None) or load_dtype(precision, quantized)
    if quantized and device.startswith("cuda"):  # "cuda:N" for rank N's GPU
        kwargs.setdefault("device_map", {"": int(device.partition(":")[2] or 0)})
    auto = AutoModelForImageTextToText if family.vision else AutoModelForCausalLM
    with LOAD_LOCK:
        model = auto.from_pretrained(model_path, dtype=dtype, **kwargs)
    if not quantized and "device_map" not in kwargs:
        model.to(device)
    return model
