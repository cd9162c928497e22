"""What a checkpoint holds to continue exactly, on every rank: trained tensors, optimizer, scheduler, loss scale,
method state and each rank's random state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.methods.base import Method
from jobs import ranks
from jobs.checkpoints import load_checkpoint
from jobs.sharded import full_optimizer_state, full_tensors, is_sharded, load_full_optimizer, load_full_weights


def resumable_state(model: torch.nn.Module, method: Method, trainable: list[torch.nn.Parameter], optimizer: Any,
                    scheduler: Any, scaler: Any) -> dict[str, Any]:
    """Everything a checkpoint needs to continue exactly: every tensor that can train, by name, and the states.
    Collective with several ranks (each rank's random state is gathered; sharded weights and optimizer states are
    gathered whole, keyed by parameter name, so a resume re-shards them)."""
    ids = {id(p) for p in trainable}
    names = {n for n, p in model.named_parameters() if id(p) in ids}
    sharded = is_sharded(model)
    weights = full_tensors(model, names)
    optimizer_state = full_optimizer_state(model, optimizer) if sharded else optimizer.state_dict()
    return {"weights": weights, "optimizer": optimizer_state, "sharded": sharded, "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None, "method": method.training_state(model),
            "rank_rng": ranks.gather(torch.get_rng_state())}


def restore(folder: Path, model: torch.nn.Module, method: Method, optimizer: Any, scheduler: Any,
            scaler: Any) -> int:
    """Load a checkpoint into a freshly prepared model and its optimizer; returns the step it was taken at."""
    step, saved = load_checkpoint(folder)
    params = dict(model.named_parameters())
    missing = [n for n in saved["weights"] if n not in params]
    if missing:
        raise ValueError(f"checkpoint {folder} does not fit this model ({len(missing)} unknown tensors, e.g. "
                         f"{missing[0]}); was the config changed?")
    sharded = saved.get("sharded", False)
    if sharded != is_sharded(model):
        raise ValueError(f"checkpoint {folder} was saved {'with' if sharded else 'without'} sharded weights "
                         "(FSDP); resume it with the strategy it was started with")
    if sharded:
        load_full_weights(model, saved["weights"])
    else:
        with torch.no_grad():
            for name, tensor in saved["weights"].items():
                params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    method.restore_training_state(model, saved["method"], optimizer)
    if sharded:
        load_full_optimizer(model, optimizer, saved["optimizer"])
    else:
        optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if scaler and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    rank_rng = saved.get("rank_rng") or []
    if len(rank_rng) == ranks.world_size():  # the same number of ranks: each continues its own random stream
        torch.set_rng_state(rank_rng[ranks.rank()])
    return step
