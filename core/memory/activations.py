"""Memory terms that grow with the batch: saved activations, logits and loss buffers, backward working memory.

Per-layer counts follow Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
(section 4.1: the tensors each block keeps for its backward pass), adapted to what PyTorch autograd really keeps
in a Llama-style block under transformers + peft: a frozen weight's matrix product keeps no input (autograd saves
an operand only when the other needs a gradient), SDPA/flash attention keeps q, k, v, the output and the
log-sum-exp instead of the s x s scores, RMSNorm keeps an fp32 copy of its input, the gated MLP keeps gate, act
and up outputs. ``bench/memory_probe.py`` checks these counts against autograd's saved tensors on CPU.
"""

from __future__ import annotations

from core.memory.inputs import MemoryInputs
from core.memory.weights import trained_lm_layers

# bytes per logit at the loss's peak (see ``logits_and_loss``)
LOSS_BYTES = {"fp32": 12, "chunked_bf16": 6, "chunked": 12, "liger": 12}
LOSS_CHUNK = 1024  # tokens whose logits exist at once under the chunked losses (jobs/speedups.py uses it)


def residual_bytes(inp: MemoryInputs) -> int:
    """Width of the residual stream: the dtype of the unquantized weights (fp32 under autocast over fp32 weights)."""
    return inp.weight_bytes


def norm_saved(inp: MemoryInputs) -> float:
    """Per token, one RMSNorm: transformers upcasts the input to fp32 and keeps it (4h); without upcast, c*h."""
    h = inp.text.hidden_size
    return 4 * h if inp.norm_upcast or residual_bytes(inp) == 4 else inp.compute_bytes * h


def attention_saved(inp: MemoryInputs) -> float:
    """Per token, one attention block with frozen projections.

    SDPA / flash attention: q, k, v and the output (c*(2*q_width + 2*kv_width)) plus the fp32 log-sum-exp per head
    (Dao 2022, FlashAttention). Eager: q, k, v, and the s_k scores per head that softmax keeps in fp32 plus their
    half-precision copy for the product with v (the 5as/h term of Korthikanti et al., per token).
    """
    t, c = inp.text, inp.compute_bytes
    if inp.attention == "eager":
        keys = (inp.tokens if inp.packed else inp.seq_len) + (inp.prompt_tokens if inp.method == "prefix" else 0)
        return c * (t.q_width + 2 * t.kv_width) + t.num_heads * keys * (4 + (c if c < 4 else 0))
    return c * (2 * t.q_width + 2 * t.kv_width) + 4 * t.num_heads


def mlp_saved(inp: MemoryInputs) -> float:
    """Per token, one frozen MLP: gated (SwiGLU) keeps gate, act and up outputs (3*c*i); plain keeps the act input."""
    t = inp.text
    return inp.compute_bytes * t.intermediate_size * (3 if t.gated_mlp else 1)


def frozen_layer_saved(inp: MemoryInputs) -> float:
    """Per token, a decoder layer whose weights are frozen but through which gradients flow."""
    return 2 * norm_saved(inp) + attention_saved(inp) + mlp_saved(inp)


def trained_layer_extra(inp: MemoryInputs) -> float:
    """Per token, what a fully trained layer keeps on top: the inputs its weight gradients need (both norm outputs
    before and after the norm weight, the q/k/v and MLP inputs, the down-projection input; the o-projection input
    too under eager). Autocast over fp32 weights casts the input once per linear layer (q, k and v each keep a
    copy, so do gate and up); otherwise layers that share an input share the saved tensor."""
    t, c = inp.text, inp.compute_bytes
    per_linear = inp.autocast and residual_bytes(inp) == 4
    inputs = (3 if per_linear else 1) + (2 if per_linear and t.gated_mlp else 1)
    extra = 2 * residual_bytes(inp) * t.hidden_size + inputs * c * t.hidden_size + c * t.intermediate_size
    return extra + (c * t.q_width if inp.attention == "eager" else 0)


def lora_extra(inp: MemoryInputs) -> float:
    """Per token, one layer's LoRA adapters (peft): the input each lora_A keeps for its gradient.

    With dropout each adapted module gets its own dropped copy (plus the dropout mask); peft casts the input to the
    adapter's dtype (fp32 adapters: 4 bytes) or autocast casts it to bf16 (2 bytes) per module. Without dropout
    and without a cast, modules that share an input share the saved tensor (q/k/v, gate/up); the o-projection
    input is the attention output already kept. DoRA also keeps the base and LoRA outputs for the magnitude.
    """
    if inp.method not in ("lora", "qlora"):
        return 0.0
    t, c = inp.text, inp.compute_bytes
    shapes = t.linear_shapes()
    saved_width = 2 if inp.autocast else inp.trainable_bytes
    total = 0.0
    groups = {"q": "qkv", "k": "qkv", "v": "qkv", "gate": "mlp_in", "up": "mlp_in"}
    seen: set[str] = set()
    for m in inp.lora_modules:
        n_in, n_out = shapes.get(m, (0, 0))
        total += saved_width * inp.lora_r
        if inp.use_dora:
            total += (c + saved_width) * n_out
        shared = groups.get(m, m)
        if inp.lora_dropout and not (inp.lora_shared_input and shared in seen):
            total += (inp.dropout_mask_bytes + saved_width) * n_in
        elif not inp.lora_dropout and (saved_width != c or inp.autocast):
            total += saved_width * n_in
        elif not inp.lora_dropout and shared not in seen and (m != "o" or inp.attention == "eager"):
            total += c * n_in
        seen.add(shared)
    return total


def quantized_inputs_extra(inp: MemoryInputs) -> float:
    """Per token, inputs kept by quantized layers that save them whatever needs a gradient: bitsandbytes' LLM.int8
    matmul, and its 4-bit matmul before 0.43 (q/k/v input, MLP input, down-projection input)."""
    if not inp.quant_saves_inputs or inp.weight_bits >= 16:
        return 0.0
    t = inp.text
    return inp.compute_bytes * (2 * t.hidden_size + t.intermediate_size)


def adapter_extra(inp: MemoryInputs) -> float:
    """Per token, one layer's two bottleneck adapters: input (c*h), down output and activation (2*c*m) each."""
    if inp.method != "adapter":
        return 0.0
    return 2 * inp.compute_bytes * (inp.text.hidden_size + 2 * inp.adapter_size)


def grad_path_layers(inp: MemoryInputs) -> tuple[int, int]:
    """(frozen layers, trained layers) that gradients pass through and that so keep activations.

    Gradients reach every layer when anything below the first layer trains (adapters in every layer, virtual tokens,
    the projector or vision tower, the embeddings); a freeze run of the last N layers keeps nothing below them.
    """
    n_layers = inp.text.num_layers
    trained = trained_lm_layers(inp)
    from_start = (inp.method in ("lora", "qlora", "adapter", "prompt", "prefix", "ptuning") or inp.train_embeddings
                  or inp.train_projector or inp.train_vision_tower)
    return (n_layers - trained if from_start else 0), trained


def layer_saved(inp: MemoryInputs, trained: bool) -> float:
    """Per token, everything one decoder layer keeps for backward."""
    per = frozen_layer_saved(inp) + lora_extra(inp) + quantized_inputs_extra(inp) + adapter_extra(inp)
    return per + (trained_layer_extra(inp) if trained else 0.0)


def vision_saved(inp: MemoryInputs) -> float:
    """Vision side, whole micro-batch: a trained ViT layer keeps LayerNorm inputs and outputs (4*c*h), q, k, v and
    the output (4*c*h) and the MLP's fc1 output and GELU output (2*c*i) per tower token; a trained projector keeps
    its input, fc1 output and GELU output per image token. A frozen tower keeps nothing (no gradient reaches it)."""
    v = inp.vision
    if not v or inp.mode != "train":
        return 0.0
    c, total = inp.compute_bytes, 0.0
    if inp.train_vision_tower:
        per_layer = 8 * c * v.hidden_size + 2 * c * v.intermediate_size
        layers = 1 if inp.gradient_checkpointing else v.num_layers
        ckpt = v.num_layers * residual_bytes(inp) * v.hidden_size if inp.gradient_checkpointing else 0
        total += inp.images * v.tower_tokens * (per_layer * layers + ckpt)
    if inp.train_projector or inp.train_vision_tower:
        total += inp.images * v.image_tokens * c * (v.projector_in + 2 * v.projector_out)
    return total


def first_layer_discount(inp: MemoryInputs) -> float:
    """Per token, what the first layer on the gradient path does not keep when no gradient reaches its input: its
    first norm's input, the dropout masks of LoRA adapters on that norm's output, and for bottleneck adapters
    (placed after attention) the whole attention block."""
    frozen, trained = grad_path_layers(inp)
    if inp.gradient_checkpointing or inp.train_embeddings or inp.train_projector or inp.train_vision_tower:
        return 0.0
    if trained and not frozen:  # freeze: the first trained layer's input needs no gradient
        return norm_saved(inp)
    if trained or inp.method not in ("lora", "qlora", "adapter"):
        return 0.0
    if inp.method == "adapter":
        return norm_saved(inp) + attention_saved(inp)
    masks = sum(1 for m in inp.lora_modules if m in ("q", "k", "v")) if inp.lora_dropout else 0
    return norm_saved(inp) + masks * inp.dropout_mask_bytes * inp.text.hidden_size


def head_saved(inp: MemoryInputs) -> float:
    """Per token, the final norm's fp32 input; when the head trains, also the normed output (for the norm weight)
    and the head's input (for the head weight)."""
    h = inp.text.hidden_size
    return norm_saved(inp) + ((residual_bytes(inp) + inp.compute_bytes) * h if inp.train_head else 0.0)


def saved_activations(inp: MemoryInputs) -> float:
    """Activations kept at the end of the forward pass, whole micro-batch.

    Without checkpointing: every layer on the gradient path (``layer_saved``) plus the final norm and head. With
    transformers' (non-reentrant) gradient checkpointing, only each layer's input hidden state (residual width * h,
    the 2sbh-per-layer of Korthikanti et al.'s full recomputation).
    """
    if inp.mode != "train":
        return 0.0
    frozen, trained = grad_path_layers(inp)
    t = inp.text
    if inp.gradient_checkpointing:
        per_token = (frozen + trained) * residual_bytes(inp) * t.hidden_size
    else:
        per_token = frozen * layer_saved(inp, False) + trained * layer_saved(inp, True) - first_layer_discount(inp)
    return inp.tokens * (per_token + head_saved(inp)) + vision_saved(inp) + packed_mask(inp)


def packed_mask(inp: MemoryInputs) -> float:
    """Packing without FlashAttention: transformers builds one boolean mask over the packed row, tokens x tokens
    (one byte each), that keeps attention inside each sample; FlashAttention's varlen kernel needs none."""
    if not inp.packed or inp.attention == "flash_attention_2":
        return 0.0
    return float(inp.tokens) ** 2


def logits_and_loss(inp: MemoryInputs) -> float:
    """Logits and cross-entropy buffers at their peak, tokens x vocabulary.

    transformers upcasts logits to fp32 for the loss. At the start of backward log-softmax's fp32 output (kept for
    backward, 4 bytes per logit) meets the gradient of that output and of its input (4 + 4): 12 bytes per logit.
    At the end of the forward pass the 16-bit logits, their fp32 copy and the log-softmax output coexist (10), the
    moment ``training_kv_cache`` adds to. LitGPT's chunked bf16 cross-entropy: 2-byte logits, log-softmax output
    and gradient: 6. The studio's chunked loss and Liger's fused one hold the fp32 logits of one chunk (LOSS_CHUNK
    tokens) at a time. Inference (generate) computes the last position's logits only.
    """
    t = inp.text
    if inp.mode != "train":
        return float(inp.micro_batch * t.vocab_size * 4)
    tokens = min(inp.tokens, LOSS_CHUNK) if inp.loss in ("chunked", "liger") else inp.tokens
    return float(tokens * t.vocab_size * LOSS_BYTES.get(inp.loss, 12))


def logits_at_forward_end(inp: MemoryInputs) -> float:
    """The forward pass's last moment: 16-bit logits, their fp32 copy and log-softmax's output (2 + 4 + 4 bytes;
    an fp32 run has no copy: 4 + 4)."""
    if inp.mode != "train" or inp.loss != "fp32":
        return 0.0
    per_logit = 8 + (inp.compute_bytes if inp.compute_bytes < 4 else 0)
    return float(inp.tokens * inp.text.vocab_size * per_logit)


def training_kv_cache(inp: MemoryInputs) -> float:
    """Keys and values that transformers caches during a training forward pass when ``use_cache`` is on (it is
    unless gradient checkpointing turns it off), freed with the model's output after the loss: 2 * L * kv_width
    per token, copied by ``torch.cat`` (not shared with attention's saved tensors), in fp32 under autocast over
    fp32 weights (RoPE's fp32 cos/sin promote the keys) and in the compute dtype otherwise."""
    if inp.mode != "train" or not inp.training_kv_cache or inp.gradient_checkpointing:
        return 0.0
    t = inp.text
    width = 4 if inp.autocast and inp.weight_bytes == 4 else inp.compute_bytes
    return float(inp.tokens * 2 * t.num_layers * t.kv_width * width)


def backward_working(inp: MemoryInputs) -> float:
    """Transient memory of one layer's backward pass, whole micro-batch: gradients of the residual stream in and out
    (2*r*h), of the MLP intermediates (2*c*i) and of q, k, v (c*(q+2kv)), with flash attention's fp32 dq
    accumulator (4*q); with checkpointing, plus the recomputed layer's saved activations."""
    if inp.mode != "train":
        return 0.0
    t, c = inp.text, inp.compute_bytes
    per_token = 2 * residual_bytes(inp) * t.hidden_size + 2 * c * t.intermediate_size
    per_token += c * (t.q_width + 2 * t.kv_width) + 4 * t.q_width
    if inp.gradient_checkpointing:
        frozen, trained = grad_path_layers(inp)
        per_token += layer_saved(inp, trained > 0)
    return inp.tokens * per_token


def autocast_weight_copies(inp: MemoryInputs) -> float:
    """Half-precision copies of fp32 weights that autocast makes and autograd keeps for backward.

    Under autocast a frozen fp32 weight is cast to bf16 at every use (only leaves that need a gradient are cached)
    and the matrix product keeps the copy to compute its input's gradient: 2 bytes per linear weight on the
    gradient path, the head included. With checkpointing only the recomputed layer's copies live at once.
    """
    if not inp.autocast or inp.weight_bytes < 4 or inp.mode != "train":
        return 0.0
    t = inp.text
    frozen, trained = grad_path_layers(inp)
    layers = min(1, frozen + trained) if inp.gradient_checkpointing else frozen + trained
    head = t.vocab_size * t.hidden_size
    vision = inp.vision.linear_params() if inp.vision and inp.train_vision_tower else 0
    return 2.0 * (layers * t.layer_linear_params() + head + vision)


def dequant_scratch(inp: MemoryInputs) -> float:
    """bitsandbytes dequantizes a quantized weight to 16 bits for each product, the largest one at a time (and the
    loader holds one 16-bit weight while it quantizes it)."""
    if inp.weight_bits >= 16:
        return 0.0
    t = inp.text
    largest = max(a * b for a, b in t.linear_shapes().values())
    if inp.quantize_head:
        largest = max(largest, t.vocab_size * t.hidden_size)
    return float(largest * 2)


def kv_cache(inp: MemoryInputs) -> float:
    """Inference: keys and values of every layer for the whole sequence, 2 * L * kv_width * c per token."""
    if inp.mode != "inference":
        return 0.0
    t = inp.text
    return float(inp.tokens * 2 * t.num_layers * t.kv_width * inp.compute_bytes)


def inference_working(inp: MemoryInputs) -> float:
    """Inference: one layer's forward temporaries over the prompt (hidden states, q/k/v and the MLP intermediates)."""
    if inp.mode != "inference":
        return 0.0
    t, c = inp.text, inp.compute_bytes
    return float(inp.tokens * c * (3 * t.hidden_size + t.q_width + 2 * t.kv_width + 3 * t.intermediate_size))
