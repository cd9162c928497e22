"""Runs whose weights are sharded across ranks (FSDP2: DTensor parameters): gathering what a checkpoint or a result
needs onto every rank, and putting a saved full state back into the shards."""

from __future__ import annotations

from typing import Any

import torch


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether any parameter is a DTensor, i.e. FSDP2 split it among the ranks."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def raw_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's wrapper (torch's state-dict helpers need the real one)."""
    return getattr(optimizer, "optimizer", optimizer)


def full_tensors(model: torch.nn.Module, names: set[str] | None = None) -> dict[str, torch.Tensor]:
    """The named parameters (all, or those in ``names``) whole, on the CPU. Collective: every rank calls it with
    the same names, in the same order, and gets the same tensors."""
    from torch.distributed.tensor import DTensor

    out = {}
    for name, param in model.named_parameters():
        if names is None or name in names:
            whole = param.full_tensor() if isinstance(param, DTensor) else param
            out[name] = whole.detach().cpu().clone()
    return out


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole state dict (buffers too) as full CPU tensors, for a result of full weights. Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_optimizer_state(model: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """The optimizer's state keyed by parameter name, gathered whole (rank 0 holds the values). Collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, raw_optimizer(optimizer),
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Put full tensors (as ``full_tensors`` gathered them) back into the shards; every rank reads the same
    checkpoint and keeps its own part."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, strict=False))


def load_full_optimizer(model: torch.nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
    """The same for an optimizer state gathered by ``full_optimizer_state``."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    # Not strict: a parameter that never had a gradient (a projector on text-only batches) has no state yet.
    set_optimizer_state_dict(model, raw_optimizer(optimizer), state,
                             options=StateDictOptions(full_state_dict=True, strict=False))
