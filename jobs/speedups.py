"""Speed options applied to the loaded model: Liger kernels and chunked cross-entropy (the logits never exist at
full length)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from core.memory.activations import LOSS_CHUNK  # one definition: the estimate follows it
from core.models.encoding import IGNORE_INDEX


@dataclass
class LossOutput:
    loss: torch.Tensor


def chunked_cross_entropy(hidden: torch.Tensor, labels: torch.Tensor, head: torch.nn.Module,
                          chunk: int = LOSS_CHUNK, softcap: float | None = None) -> torch.Tensor:
    """The causal LM loss (mean over the target tokens, as transformers computes it) from the last hidden states,
    ``chunk`` positions at a time; each chunk's logits are recomputed in the backward pass instead of kept."""
    hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    targets = labels[:, 1:].reshape(-1).to(hidden.device)
    keep = targets != IGNORE_INDEX
    hidden, targets = hidden[keep], targets[keep]
    count = max(int(targets.numel()), 1)

    def part(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = head(h).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return torch.nn.functional.cross_entropy(logits, y, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk):
        total = total + checkpoint(part, hidden[start:start + chunk], targets[start:start + chunk],
                                   use_reentrant=False)
    return total / count


class ChunkedLossModel(torch.nn.Module):
    """A causal (or image-text) LM whose forward returns the chunked loss: the decoder runs as usual, then the head
    and the cross-entropy run chunk by chunk. Wraps a peft or plain model; adapters inside it train as before."""

    def __init__(self, model: torch.nn.Module, chunk: int = LOSS_CHUNK):
        super().__init__()
        self.model = model
        self.chunk = chunk
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.body = base.model  # LlamaModel, LlavaModel, ...: everything below the head
        self.head = base.get_output_embeddings()
        text = getattr(base.config, "text_config", None) or base.config
        self.softcap = getattr(text, "final_logit_softcapping", None)

    def forward(self, labels: torch.Tensor, **inputs: Any) -> LossOutput:
        hidden = self.body(**{**inputs, "use_cache": False}).last_hidden_state
        return LossOutput(chunked_cross_entropy(hidden, labels, self.head, self.chunk, self.softcap))


def apply_liger(model: torch.nn.Module) -> None:
    """Liger's fused kernels patched into the loaded model (CUDA; Check refuses them elsewhere)."""
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model)
