"""Peak GPU memory from MemoryInputs, as a named breakdown, and the fits / tight / will-not-fit verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from core.memory import activations as act
from core.memory import weights as w
from core.memory.inputs import MemoryInputs

GB = 1e9
TIGHT_MARGIN = 0.10  # within 10% of the card is "tight": allocator spikes or another process can tip it over
FITS, TIGHT, WILL_NOT_FIT = "fits", "tight", "will not fit"


@dataclass(frozen=True)
class Term:
    """One line of the breakdown; ``counted`` is False for the phase that does not set the peak."""

    name: str
    label: str
    bytes: float
    counted: bool = True
    note: str = ""

    @property
    def gb(self) -> float:
        return self.bytes / GB


@dataclass(frozen=True)
class Estimate:
    """Predicted peak: ``allocated`` (what torch.cuda.max_memory_allocated reports), ``reserved`` (plus the caching
    allocator's slack) and ``total`` (plus the CUDA context: what the card must hold)."""

    terms: list[Term]
    allocated_bytes: float
    reserved_bytes: float
    total_bytes: float
    paged_bytes: float = 0.0
    inputs: MemoryInputs | None = field(default=None, compare=False, repr=False)

    @property
    def total_gb(self) -> float:
        return self.total_bytes / GB

    @property
    def allocated_gb(self) -> float:
        return self.allocated_bytes / GB

    @property
    def reserved_gb(self) -> float:
        return self.reserved_bytes / GB

    def term(self, name: str) -> Term:
        return next(t for t in self.terms if t.name == name)

    def breakdown_gb(self) -> dict[str, float]:
        """Counted terms, label -> GB, in order; they add up to ``total_gb``."""
        return {t.label: t.gb for t in self.terms if t.counted and t.bytes > 0}

    def to_dict(self) -> dict[str, Any]:
        return {"total_gb": self.total_gb, "allocated_gb": self.allocated_gb, "reserved_gb": self.reserved_gb,
                "paged_gb": self.paged_bytes / GB, "terms": [asdict(t) | {"gb": t.gb} for t in self.terms]}


def verdict(estimate_gb: float, card_gb: float) -> str:
    """"fits" below 90% of the card, "tight" from 90% up to the card's size, "will not fit" above it."""
    if estimate_gb > card_gb:
        return WILL_NOT_FIT
    if estimate_gb > card_gb * (1 - TIGHT_MARGIN):
        return TIGHT
    return FITS


def _doc(fn: Callable[..., Any]) -> str:
    return " ".join((fn.__doc__ or "").split())


def _training_terms(inp: MemoryInputs) -> list[Term]:
    saved = act.saved_activations(inp)
    copies = act.autocast_weight_copies(inp)
    kv = act.training_kv_cache(inp)
    forward_end = act.logits_at_forward_end(inp) + kv
    loss = act.logits_and_loss(inp)
    backward = act.backward_working(inp)
    scratch = act.dequant_scratch(inp)
    grads = w.gradients(inp)
    step = w.optimizer_step_scratch(inp)
    # Phases that compete for the peak, on top of the saved activations: the end of the forward pass (logits, their
    # fp32 copy, the KV cache), the start of backward (loss gradients) or one layer's backward; gradients count
    # there only when earlier micro-batches accumulated them. Then the optimizer step: every gradient and the
    # step's temporaries, once activations are freed.
    working = max(forward_end, loss, backward)
    early_grads = grads if inp.grad_accum > 1 else 0.0
    step_wins = grads + step > early_grads + saved + copies + working + scratch
    on = not step_wins
    at_forward_end = on and forward_end == working and forward_end > loss
    logits = act.logits_at_forward_end(inp) if at_forward_end else loss
    return [
        Term("gradients", "Gradients", grads, step_wins or inp.grad_accum > 1, _doc(w.gradients)),
        Term("activations", "Activations", saved, on, _doc(act.saved_activations)),
        Term("autocast_copies", "Autocast weight copies", copies, on, _doc(act.autocast_weight_copies)),
        Term("logits", "Logits and loss", logits, on and working in (forward_end, loss) and working > backward,
             _doc(act.logits_and_loss)),
        Term("kv_cache", "KV cache (use_cache)", kv, at_forward_end and working > backward,
             _doc(act.training_kv_cache)),
        Term("backward", "Backward working memory", backward, on and backward >= working,
             _doc(act.backward_working)),
        Term("dequant", "Dequantization scratch", scratch, on, _doc(act.dequant_scratch)),
        Term("optimizer_step", "Optimizer step temporaries", step, step_wins, _doc(w.optimizer_step_scratch)),
    ]


def _inference_terms(inp: MemoryInputs) -> list[Term]:
    run = act.kv_cache(inp) + act.inference_working(inp) + act.logits_and_loss(inp)
    load = act.dequant_scratch(inp)  # the loader holds one 16-bit tensor while quantizing it
    return [
        Term("kv_cache", "KV cache", act.kv_cache(inp), run >= load, _doc(act.kv_cache)),
        Term("inference_working", "Forward working memory", act.inference_working(inp), run >= load,
             _doc(act.inference_working)),
        Term("logits", "Logits", act.logits_and_loss(inp), run >= load, _doc(act.logits_and_loss)),
        Term("load", "Quantization at load", load, load > run, "one 16-bit weight while bitsandbytes quantizes it"),
    ]


def estimate(inp: MemoryInputs) -> Estimate:
    """Predicted peak GPU memory of one training step (or of generation, ``mode="inference"``)."""
    terms = [
        Term("language_weights", "Language model weights", w.language_weights(inp), True, _doc(w.language_weights)),
        Term("quant_constants", "Quantization constants", w.quant_constants(inp), True,
             _doc(w.quant_constants_per_param)),
        Term("vision_weights", "Vision tower weights", w.vision_weights(inp), True, _doc(w.vision_weights)),
        Term("projector_weights", "Projector weights", w.projector_weights(inp), True, _doc(w.projector_weights)),
    ]
    if inp.mode == "train":
        terms += [
            Term("trainable", "Trainable parameters", w.trainable_params(inp), True, _doc(w.trainable_params)),
            Term("optimizer", "Optimizer states", w.optimizer_states(inp), True, _doc(w.optimizer_states)),
        ]
        terms += _training_terms(inp)
    else:
        terms += _inference_terms(inp)
    allocated = sum(t.bytes for t in terms if t.counted)
    overhead = allocated * inp.allocator_fraction
    terms += [
        Term("allocator", "Allocator overhead", overhead, True,
             f"reserved but unallocated blocks of PyTorch's caching allocator, {inp.allocator_fraction:.0%} of "
             "allocated (a heuristic that the runs' measured reserved/allocated peaks calibrate)"),
        Term("cuda_context", "CUDA context and kernels", w.cuda_context(inp), True, _doc(w.cuda_context)),
    ]
    return Estimate(terms=terms, allocated_bytes=allocated, reserved_bytes=allocated + overhead,
                    total_bytes=allocated + overhead + w.cuda_context(inp), paged_bytes=w.paged_states(inp),
                    inputs=inp)
