"""Memory terms that do not depend on the batch: weights, quantization constants, trainable parameters, optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from core.memory.inputs import MemoryInputs

NF4_BLOCK = 64  # QLoRA: one absmax constant per 64 weights
DQ_BLOCK = 256  # double quantization: one fp32 constant per 256 first-level constants
ADAM8_BLOCK = 256  # bitsandbytes blockwise 8-bit optimizer states: one fp32 absmax per 256 values
ADAM8_MIN_SIZE = 4096  # bitsandbytes keeps 32-bit states for tensors smaller than this (min_8bit_size)


@dataclass(frozen=True)
class ParamBlock:
    """``count`` trained tensors of shape rows x cols (cols 1 for vectors), stored in ``bytes_per`` bytes each value."""

    name: str
    rows: int
    cols: int
    count: int
    bytes_per: int

    @property
    def numel(self) -> int:
        return self.rows * self.cols * self.count


def cuda_context(inp: MemoryInputs) -> float:
    """CUDA context, kernel images and cuBLAS workspace: memory the driver holds outside PyTorch's allocator.

    About 0.5 GB with lazy module loading (the default since PyTorch 2 / CUDA 11.7); 1.34 GB when every kernel
    loads at start-up, as measured in the transformers docs ("Model training anatomy", nvidia-smi after a
    1-element tensor is put on the GPU).
    """
    return inp.cuda_context_bytes


def quantized_linear_params(inp: MemoryInputs) -> int:
    """Weights bitsandbytes quantizes: the decoder layers' linear layers (and lm_head where the stack does)."""
    if inp.weight_bits >= 16:
        return 0
    t = inp.text
    head = t.vocab_size * t.hidden_size if inp.quantize_head else 0
    return t.num_layers * t.layer_linear_params() + head - trained_layer_linear(inp)


def trained_layer_linear(inp: MemoryInputs) -> int:
    """Linear weights of decoder layers that train fully (they cannot stay quantized)."""
    return trained_lm_layers(inp) * inp.text.layer_linear_params()


def trained_lm_layers(inp: MemoryInputs) -> int:
    if not inp.train_language_model or inp.method in ("lora", "qlora", "adapter", "prompt", "prefix", "ptuning"):
        return 0
    return inp.text.num_layers if inp.trained_layers is None else min(inp.trained_layers, inp.text.num_layers)


def quantized_bytes_per_param(inp: MemoryInputs) -> float:
    """Packed storage per quantized weight: 0.5 byte (4-bit NF4/FP4) or 1 byte (LLM.int8)."""
    return 0.5 if inp.weight_bits == 4 else 1.0


def quant_constants_per_param(inp: MemoryInputs) -> float:
    """Quantization constants per weight.

    4-bit (Dettmers et al. 2023, QLoRA, section 3): one fp32 absmax per 64-weight block = 32/64 bits; with double
    quantization the absmax values are stored in 8 bits per block plus one fp32 constant per 256 blocks
    = 8/64 + 32/(64*256) bits. 8-bit LLM.int8 (Dettmers et al. 2022): one fp32 scale per output row = 4/in bytes.
    """
    if inp.weight_bits == 4:
        if inp.double_quant:
            return 1 / NF4_BLOCK + 4 / (NF4_BLOCK * DQ_BLOCK)
        return 4 / NF4_BLOCK
    if inp.weight_bits == 8:
        return 4 / inp.text.hidden_size
    return 0.0


def language_weights(inp: MemoryInputs) -> float:
    """Frozen language-model weights: quantized linears at their packed width, the rest at ``weight_bytes``.

    Parameter count from the config (embeddings V*h, per layer the q/k/v/o and MLP matrices and norms, the head
    unless tied); parts that train are counted under trainable parameters instead.
    """
    t = inp.text
    quantized = quantized_linear_params(inp)
    frozen = t.total_params() - quantized - trained_language_params(inp)
    return quantized * quantized_bytes_per_param(inp) + frozen * inp.weight_bytes


def quant_constants(inp: MemoryInputs) -> float:
    """Bytes of quantization constants (see ``quant_constants_per_param``) over every quantized weight."""
    return quantized_linear_params(inp) * quant_constants_per_param(inp)


def vision_weights(inp: MemoryInputs) -> float:
    """Frozen vision-tower weights (kept unquantized: the studio skips the tower when quantizing)."""
    if not inp.vision or inp.train_vision_tower:
        return 0.0
    return inp.vision.total_params() * inp.weight_bytes


def projector_weights(inp: MemoryInputs) -> float:
    """Frozen projector weights (LLaVA's two-layer MLP, in -> out -> out, with biases). When LoRA trains the projector
    too, peft's ``modules_to_save`` keeps the original beside the trained copy."""
    if not inp.vision or (inp.train_projector and inp.method not in ("lora", "qlora")):
        return 0.0
    return inp.vision.projector_params() * inp.weight_bytes


def trainable_blocks(inp: MemoryInputs) -> list[ParamBlock]:
    """Every trained tensor, by shape (the optimizer terms need shapes: Adafactor factors matrices, bitsandbytes
    keeps 32-bit state for small tensors)."""
    t, b = inp.text, inp.trainable_bytes
    blocks: list[ParamBlock] = []
    if inp.method in ("lora", "qlora"):
        shapes = t.linear_shapes()
        for m in inp.lora_modules:
            n_in, n_out = shapes.get(m, (0, 0))
            blocks += [ParamBlock(f"lora_A.{m}", inp.lora_r, n_in, t.num_layers, b),
                       ParamBlock(f"lora_B.{m}", n_out, inp.lora_r, t.num_layers, b)]
            if inp.use_dora:
                blocks.append(ParamBlock(f"dora_magnitude.{m}", n_out, 1, t.num_layers, b))
    elif inp.method == "adapter":  # Houlsby et al. 2019: two bottlenecks per layer, down h->m and up m->h
        m = inp.adapter_size
        blocks += [ParamBlock("adapter_down", m, t.hidden_size, 2 * t.num_layers, b),
                   ParamBlock("adapter_up", t.hidden_size, m, 2 * t.num_layers, b),
                   ParamBlock("adapter_bias", m + t.hidden_size, 1, 2 * t.num_layers, b)]
    elif inp.method == "prompt":
        blocks.append(ParamBlock("prompt_embeddings", inp.prompt_tokens, t.hidden_size, 1, b))
    elif inp.method == "ptuning":  # peft PromptEncoder: embeddings plus a 3-layer MLP of width h
        blocks += [ParamBlock("prompt_embeddings", inp.prompt_tokens, t.hidden_size, 1, b),
                   ParamBlock("prompt_mlp", t.hidden_size, t.hidden_size, 3, b)]
    elif inp.method == "prefix":  # peft PrefixEncoder without projection: keys and values per layer
        blocks.append(ParamBlock("prefix", inp.prompt_tokens, 2 * t.kv_width * t.num_layers, 1, b))
    layers = trained_lm_layers(inp)
    if layers:
        for name, (n_in, n_out) in t.linear_shapes().items():
            blocks.append(ParamBlock(f"layers.{name}", n_out, n_in, layers, b))
        blocks.append(ParamBlock("layers.norms", t.layer_other_params(), 1, layers, b))
    if inp.train_embeddings:
        blocks.append(ParamBlock("embed_tokens", t.vocab_size, t.hidden_size, 1, b))
    if inp.train_head:
        blocks.append(ParamBlock("final_norm", t.hidden_size, 1, 1, b))
        if t.head_params():
            blocks.append(ParamBlock("lm_head", t.vocab_size, t.hidden_size, 1, b))
    if inp.vision and inp.train_projector:
        v = inp.vision
        blocks += [ParamBlock("projector.linear_1", v.projector_out, v.projector_in, 1, b),
                   ParamBlock("projector.linear_2", v.projector_out, v.projector_out, 1, b),
                   ParamBlock("projector.biases", 2 * v.projector_out, 1, 1, b)]
    if inp.vision and inp.train_vision_tower:
        v = inp.vision
        blocks += [ParamBlock("vision.linear", v.hidden_size, v.hidden_size, 4 * v.num_layers, b),
                   ParamBlock("vision.mlp", v.hidden_size, v.intermediate_size, 2 * v.num_layers, b),
                   ParamBlock("vision.other", v.total_params() - v.linear_params(), 1, 1, b)]
    return blocks


def trained_language_params(inp: MemoryInputs) -> int:
    """Language-model base parameters that train (and so are not counted as frozen weights)."""
    t = inp.text
    n = trained_lm_layers(inp) * (t.layer_linear_params() + t.layer_other_params())
    n += t.embedding_params() if inp.train_embeddings else 0
    n += (t.head_params() + t.hidden_size) if inp.train_head else 0
    return n


def trainable_params(inp: MemoryInputs) -> float:
    """Bytes of trained parameters: adapters or trained parts, at ``trainable_bytes`` each (fp32 unless pure bf16)."""
    return float(sum(b.numel * b.bytes_per for b in trainable_blocks(inp)))


def gradients(inp: MemoryInputs) -> float:
    """One gradient per trained parameter, in the parameter's dtype. They exist from the backward pass to the
    optimizer step, and across micro-batches under gradient accumulation."""
    return trainable_params(inp)


def optimizer_states(inp: MemoryInputs) -> float:
    """Optimizer state that stays on the GPU, per trained tensor.

    AdamW (torch): two moments in the parameter's dtype (2 x 4 bytes for fp32). 8-bit AdamW (Dettmers et al. 2022,
    "8-bit Optimizers via Block-wise Quantization"): 2 bytes plus one fp32 absmax per 256 values per moment, 32-bit
    state for tensors under 4096 values. Paged optimizers keep the state in CUDA unified memory, which is evicted
    to CPU RAM under pressure: nothing stays on the GPU (see ``paged_states``). Adafactor (Shazeer & Stern 2018),
    no momentum: fp32 row and column statistics, rows + cols values per matrix, one per value for vectors.
    """
    if inp.mode != "train" or inp.optimizer.startswith("paged_"):
        return 0.0
    total = 0.0
    for b in trainable_blocks(inp):
        if inp.optimizer == "adamw_8bit" and b.rows * b.cols >= ADAM8_MIN_SIZE:
            total += b.numel * 2 * (1 + 4 / ADAM8_BLOCK)
        elif inp.optimizer == "adamw_8bit":
            total += b.numel * 8
        elif inp.optimizer == "adafactor":
            total += b.count * 4 * ((b.rows + b.cols) if b.cols > 1 else b.rows)
        else:
            total += b.numel * 2 * b.bytes_per
    return total


def paged_states(inp: MemoryInputs) -> float:
    """State a paged optimizer keeps in unified memory (evictable to CPU, so not counted in the peak)."""
    if inp.mode != "train" or not inp.optimizer.startswith("paged_"):
        return 0.0
    per = 2 * (1 + 4 / ADAM8_BLOCK) if inp.optimizer == "paged_adamw_8bit" else 8
    return sum(b.numel * per for b in trainable_blocks(inp))


def optimizer_step_scratch(inp: MemoryInputs) -> float:
    """Temporaries of the optimizer step: torch's foreach AdamW builds sqrt(v) for all tensors at once (one copy
    of the state's size); Adafactor builds the full update of one tensor at a time (fp32)."""
    if inp.mode != "train":
        return 0.0
    blocks = trainable_blocks(inp)
    if inp.optimizer == "adamw_torch":
        return float(sum(b.numel * b.bytes_per for b in blocks))
    if inp.optimizer == "adafactor":
        return max((b.rows * b.cols * 4 * 2 for b in blocks), default=0)
    return 0.0
