"""Every switch the memory estimate depends on (MemoryInputs), and how a TrainConfig maps onto them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.memory.architecture import Architecture, read_architecture

LORA_ALL = ("q", "k", "v", "o", "gate", "up", "down")
LORA_ATTENTION = ("q", "k", "v", "o")
# peft / LitGPT module names -> the short names used here
MODULE_NAMES = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up",
                "down_proj": "down", "query": "q", "key": "k", "value": "v", "dense": "o", "fc1": "up", "fc2": "down",
                "w1": "gate", "w3": "up", "w2": "down"}
ADAPTER_METHODS = ("lora", "qlora")
PROMPT_METHODS = ("prompt", "prefix", "ptuning")
CUDA_CONTEXT_LAZY = 0.5e9  # lazy module loading (CUDA >= 11.7, the default since PyTorch 2): context + cuBLAS
CUDA_CONTEXT_EAGER = 1.343e9  # all kernels loaded at init: transformers docs, "Model training anatomy"


@dataclass(frozen=True)
class MemoryInputs:
    """The architecture and run settings a peak-memory estimate is computed from.

    Byte widths: ``weight_bytes`` for unquantized weights (4 fp32, 2 bf16/fp16), ``compute_bytes`` for activations
    (2 under autocast or 16-bit weights, 4 in fp32), ``trainable_bytes`` for every trained parameter (adapters,
    or the parts a full/freeze/LISA run trains). ``seq_len`` is the language model's sequence per sample, image
    tokens and virtual tokens included.
    """

    arch: Architecture
    mode: str = "train"  # "train" or "inference"
    method: str = "lora"  # lora, qlora, full, freeze, lisa, adapter, prompt, prefix, ptuning
    micro_batch: int = 1
    grad_accum: int = 1
    seq_len: int = 512
    images_per_sample: int = 1
    # what trains
    lora_r: int = 8
    lora_modules: tuple[str, ...] = LORA_ALL
    lora_dropout: bool = True
    lora_shared_input: bool = False  # one dropout feeds fused q/k/v adapters (LitGPT) instead of one per module
    use_dora: bool = False
    train_language_model: bool = True
    train_projector: bool = False
    train_vision_tower: bool = False
    trained_layers: int | None = None  # freeze: last N layers; lisa: γ active layers; None = all
    train_embeddings: bool = False
    train_head: bool = False
    adapter_size: int = 8
    prompt_tokens: int = 0
    # weights
    weight_bits: int = 16  # language model linear layers: 16 (not quantized), 8 (LLM.int8) or 4 (NF4/FP4)
    double_quant: bool = False
    quantize_head: bool = False  # LitGPT quantizes lm_head; transformers + bitsandbytes keep it 16-bit
    weight_bytes: int = 2
    compute_bytes: int = 2
    trainable_bytes: int = 4  # what trains is fp32 (peft upcasts 16-bit adapters) except under pure bf16
    autocast: bool = False  # bf16/fp16 autocast is on (mixed precision); with fp32 weights it copies them
    # training machinery
    optimizer: str = "adamw_torch"
    gradient_checkpointing: bool = False
    training_kv_cache: bool = False  # use_cache during training; the studio's loop turns it off (other stacks may not)
    attention: str = "sdpa"  # sdpa, flash_attention_2, eager
    loss: str = "fp32"  # "fp32": transformers upcasts logits; "chunked_bf16": LitGPT's chunked cross-entropy;
    # "chunked": the studio's (jobs/speedups.py), fp32 logits of LOSS_CHUNK tokens at a time; "liger": Liger's fused
    # linear cross-entropy, chunked alike
    packed: bool = False  # padding-free packing: a micro-batch of text is one row, attention masked per sample
    norm_upcast: bool = True  # transformers' RMSNorm saves an fp32 copy of its input
    quant_saves_inputs: bool = False  # LLM.int8 (and bitsandbytes < 0.43 4-bit) keep each layer's input
    dropout_mask_bytes: int = 1  # CUDA keeps a bool mask; the CPU kernel keeps a mask in the input's dtype
    # device
    cuda_context_bytes: float = CUDA_CONTEXT_LAZY
    allocator_fraction: float = 0.10  # reserved but unallocated memory (fragmentation), share of allocated

    @property
    def text(self) -> Any:
        return self.arch.text

    @property
    def vision(self) -> Any:
        return self.arch.vision

    @property
    def tokens(self) -> int:
        """Tokens per forward pass through the language model."""
        return self.micro_batch * self.seq_len

    @property
    def images(self) -> int:
        return self.micro_batch * self.images_per_sample if self.vision else 0

    def replace(self, **changes: Any) -> MemoryInputs:
        return dataclasses.replace(self, **changes)


def lora_modules_of(targets: str, custom: str = "", gated: bool = True) -> tuple[str, ...]:
    """Short names of the adapted modules for a TrainConfig's lora_targets ('attention', 'all-linear', 'custom')."""
    if targets == "attention":
        return LORA_ATTENTION
    if targets == "custom":
        names = [MODULE_NAMES.get(n.strip(), n.strip()) for n in custom.split(",") if n.strip()]
        return tuple(n for n in LORA_ALL if n in names)
    return LORA_ALL if gated else ("q", "k", "v", "o", "up", "down")


def _precision_bytes(precision: str, quantized: bool) -> dict[str, Any]:
    """Weight/compute widths as core.models.loading.load_dtype and jobs.loop.autocast_for set them up."""
    if precision == "pure_bf16":
        return {"weight_bytes": 2, "compute_bytes": 2, "autocast": False}
    if precision in ("bf16", "fp16"):  # frozen weights load in the half dtype; what trains is fp32 (trainable_bytes)
        return {"weight_bytes": 2, "compute_bytes": 2, "autocast": True}
    # fp32: bitsandbytes casts each 4-bit product back to the input's dtype, so activations stay fp32
    return {"weight_bytes": 4, "compute_bytes": 4, "autocast": False}


def _trained_parts(cfg: Any, method: str, vlm: bool) -> dict[str, Any]:
    """Which parts train, per method (freeze presets and LISA's always-trained embeddings and head included)."""
    parts: dict[str, Any] = {"train_language_model": False, "train_projector": False, "train_vision_tower": False,
                             "trained_layers": None, "train_embeddings": False, "train_head": False}
    projector = bool(getattr(cfg, "train_projector", True)) and vlm
    if method in ADAPTER_METHODS:
        parts["train_projector"] = bool(getattr(cfg, "lora_train_projector", False)) and vlm
    elif method == "full":
        lm = bool(getattr(cfg, "train_language_model", True))
        parts.update(train_language_model=lm, train_embeddings=lm, train_head=lm, train_projector=projector,
                     train_vision_tower=bool(getattr(cfg, "train_vision_tower", False)) and vlm)
    elif method == "freeze":
        preset = getattr(cfg, "freeze_preset", "custom")
        if preset == "llava_stage1":
            parts.update(train_projector=vlm, trained_layers=0)
        elif preset == "llava_stage2":
            parts.update(train_projector=vlm, train_language_model=True, train_embeddings=True, train_head=True)
        else:
            layers = int(getattr(cfg, "freeze_layers", 2))
            parts.update(train_language_model=layers > 0, trained_layers=layers, train_projector=projector,
                         train_vision_tower=bool(getattr(cfg, "train_vision_tower", False)) and vlm)
    elif method == "lisa":
        parts.update(train_language_model=True, trained_layers=int(getattr(cfg, "lisa_layers", 2)),
                     train_embeddings=True, train_head=True, train_projector=projector)
    return parts


def inputs_from_train_config(cfg: Any, arch: Any, **overrides: Any) -> MemoryInputs:
    """MemoryInputs for a TrainConfig and an architecture (anything ``read_architecture`` accepts).

    Fields the methods issue adds are read with ``getattr`` defaults, so older configs map too.
    """
    from core.models.families import ImageSettings

    arch = read_architecture(arch, ImageSettings.of(cfg))
    method = str(getattr(cfg, "method", "lora"))
    quantization = str(getattr(cfg, "quantization", "4bit" if method == "qlora" else "none"))
    if method == "qlora" and quantization == "none":
        quantization = "4bit"
    bits = {"4bit": 4, "8bit": 8}.get(quantization, 16)
    quantized = bits < 16
    precision = str(getattr(cfg, "precision", "fp32"))
    widths = _precision_bytes(precision, quantized)
    prompt = int(getattr(cfg, "prompt_tokens", 20)) if method in PROMPT_METHODS else 0
    values: dict[str, Any] = {
        "arch": arch, "method": method, "micro_batch": int(cfg.batch_size),
        "grad_accum": int(getattr(cfg, "grad_accum", 1)),
        "seq_len": int(cfg.max_length) + (0 if method == "prefix" else prompt),  # prefix tuning adds keys only
        "lora_r": int(getattr(cfg, "lora_r", 8)),
        "lora_modules": lora_modules_of(str(getattr(cfg, "lora_targets", "all-linear")),
                                        str(getattr(cfg, "lora_custom_targets", "")), arch.text.gated_mlp),
        "lora_dropout": float(getattr(cfg, "lora_dropout", 0.05)) > 0,
        "use_dora": bool(getattr(cfg, "use_dora", False)),
        "adapter_size": int(getattr(cfg, "adapter_size", 8)), "prompt_tokens": prompt,
        "weight_bits": bits, "double_quant": bits == 4 and bool(getattr(cfg, "double_quant", True)),
        "trainable_bytes": 2 if precision == "pure_bf16" else 4,
        "quant_saves_inputs": bits == 8,
        "optimizer": str(getattr(cfg, "optimizer", "adamw_torch")),
        "gradient_checkpointing": bool(getattr(cfg, "gradient_checkpointing", False)),
        "attention": "sdpa" if str(getattr(cfg, "attention", "auto")) == "auto" else str(cfg.attention),
        "loss": "liger" if getattr(cfg, "liger", False) else "chunked" if getattr(cfg, "chunked_loss", False)
        else "fp32",
        "packed": bool(getattr(cfg, "packing", False)),
        **widths, **_trained_parts(cfg, method, arch.vision is not None),
    }
    values.update(overrides)
    return MemoryInputs(**values)
