"""'Fit to my card': the smallest set of TrainConfig changes that brings the estimate under a card's memory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from core.config_fields import check_field
from core.memory.architecture import read_architecture
from core.memory.estimate import TIGHT_MARGIN, estimate
from core.memory.inputs import inputs_from_train_config

MIN_LENGTH = 256  # shorter samples are rarely useful; never propose cutting below this (or the image tokens)
MAX_STEPS = 16
MIN_SAVING_GB = 0.01  # a change that saves less than this (shown as 0.00 GB) is not worth proposing


@dataclass(frozen=True)
class Proposal:
    """One change to a TrainConfig: the fields and values, a sentence for the user, and what it saves."""

    changes: dict[str, Any]
    sentence: str
    saving_gb: float
    cost: float = 1.0  # how much it costs in speed or quality, for ordering; not shown


@dataclass(frozen=True)
class _Candidate:
    key: str  # proposals with the same key are merged (two micro-batch halvings are one proposal)
    changes: dict[str, Any]
    cost: float
    sentence: Callable[[Any, Any], str]  # (original config, final config) -> sentence


def valid_changes(cfg: Any, changes: dict[str, Any]) -> bool:
    """Every field exists on the config class and every value passes that field's choices and range."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    return all(name in fields and not check_field(fields[name], value) for name, value in changes.items())


def _gb(cfg: Any, arch: Any) -> float:
    return estimate(inputs_from_train_config(cfg, arch)).total_gb


def _candidates(cfg: Any, arch: Any) -> Iterator[_Candidate]:
    """Changes that can lower the estimate from this config, cheapest in speed and quality first."""
    if not cfg.gradient_checkpointing:
        yield _Candidate("ckpt", {"gradient_checkpointing": True}, 1.0, lambda a, b: (
            "Turn on gradient checkpointing: activations are recomputed in the backward pass (steps about 30% "
            "slower)."))
    if getattr(cfg, "optimizer", "") in ("adamw_torch", "paged_adamw_32bit", "adamw_8bit"):
        for name, cost in (("paged_adamw_8bit", 0.4), ("adamw_8bit", 0.5)):
            if name != cfg.optimizer:
                yield _Candidate("optimizer", {"optimizer": name}, cost, lambda a, b: (
                    f"Use the {b.optimizer.replace('_', ' ')} optimizer: 8-bit Adam state"
                    + (" in paged memory that can spill to CPU RAM." if b.optimizer.startswith("paged") else ".")))
    if getattr(cfg, "precision", "") in ("bf16", "fp32"):
        yield _Candidate("precision", {"precision": "pure_bf16"}, 1.2, lambda a, b: (
            f"Train in pure bf16 instead of {a.precision}: weights and optimizer state in bf16, no fp32 copy."))
    quantization = getattr(cfg, "quantization", None)
    if cfg.method == "lora" and quantization == "none":
        yield _Candidate("quant", {"method": "qlora", "quantization": "4bit", "double_quant": True}, 1.5,
                         lambda a, b: "Switch to QLoRA: the frozen base in 4-bit NF4 with double quantization.")
    elif cfg.method == "qlora" and quantization == "8bit":
        yield _Candidate("quant", {"quantization": "4bit", "double_quant": True}, 1.0,
                         lambda a, b: "Quantize the base to 4-bit NF4 instead of 8-bit.")
    elif quantization == "4bit" and not getattr(cfg, "double_quant", True):
        yield _Candidate("dq", {"double_quant": True}, 0.1,
                         lambda a, b: "Turn on double quantization (about 0.4 bits per weight less).")
    if cfg.batch_size > 1:
        half = cfg.batch_size // 2
        accum = -(-cfg.batch_size * cfg.grad_accum // half)
        yield _Candidate("batch", {"batch_size": half, "grad_accum": accum}, 0.8, lambda a, b: (
            f"Micro-batch {a.batch_size} -> {b.batch_size} with gradient accumulation {a.grad_accum} -> "
            f"{b.grad_accum}: {b.batch_size * b.grad_accum} samples per optimizer step, more, smaller passes."))
    if cfg.method == "lisa" and getattr(cfg, "lisa_layers", 1) > 1:
        yield _Candidate("lisa", {"lisa_layers": cfg.lisa_layers // 2}, 1.5, lambda a, b: (
            f"Train {b.lisa_layers} LISA layer(s) at a time instead of {a.lisa_layers}."))
    vision = read_architecture(arch).vision
    floor = max(MIN_LENGTH, (vision.image_tokens + 64) if vision else 0)
    if cfg.max_length // 2 >= floor:
        yield _Candidate("length", {"max_length": cfg.max_length // 2}, 3.0, lambda a, b: (
            f"Cut samples to {b.max_length} tokens instead of {a.max_length} (longer ones are truncated)."))


def _apply(cfg: Any, picked: list[_Candidate]) -> Any:
    changes: dict[str, Any] = {}
    for c in picked:
        changes.update(c.changes)
    return dataclasses.replace(cfg, **changes)


def fit_to_card(cfg: Any, arch: Any, card_gb: float, target_fraction: float = 1 - TIGHT_MARGIN) -> list[Proposal]:
    """Proposals that together bring the estimate to ``target_fraction`` of the card ("fits"; 1.0 for just under).

    Greedy by GB saved per unit of cost, then pruned: a change is dropped when the others reach the target
    without it. Only changes whose fields exist on the config and whose values are valid choices are proposed.
    An empty list means it already fits; if nothing reaches the target, every change that helped is returned
    (apply them and the verdict still says "will not fit"). Apply with ``apply_proposals``.
    """
    arch = read_architecture(arch)
    target = card_gb * target_fraction
    picked: list[_Candidate] = []
    current = cfg
    gb = _gb(current, arch)
    for _ in range(MAX_STEPS):
        if gb <= target:
            break
        best: tuple[float, _Candidate, Any, float] | None = None
        for cand in _candidates(current, arch):
            nxt = dataclasses.replace(current, **cand.changes)
            if not valid_changes(cfg, cand.changes):
                continue
            saving = gb - _gb(nxt, arch)
            if saving >= MIN_SAVING_GB and (best is None or saving / cand.cost > best[0]):
                best = (saving / cand.cost, cand, nxt, gb - saving)
        if best is None:
            break
        picked.append(best[1])
        current, gb = best[2], best[3]
    if gb <= target:  # prune what the rest does not need
        for cand in list(reversed(picked)):
            rest = [c for c in picked if c is not cand]
            if _gb(_apply(cfg, rest), arch) <= target:
                picked = rest
    return _proposals(cfg, arch, picked)


def _proposals(cfg: Any, arch: Any, picked: list[_Candidate]) -> list[Proposal]:
    """One proposal per key (repeated halvings merged), largest saving first, each with the saving it adds after
    the ones above it; a change that would then save less than MIN_SAVING_GB is left out."""
    keys: list[str] = []
    for c in picked:
        if c.key not in keys:
            keys.append(c.key)
    for _ in range(len(keys)):  # order by saving until the order no longer changes the savings' order
        ordered = _in_order(cfg, arch, picked, keys)
        by_saving = [k for k, _ in sorted(zip(keys, ordered, strict=True), key=lambda kp: -kp[1].saving_gb)]
        if by_saving == keys:
            break
        keys = by_saving
    return [p for p in _in_order(cfg, arch, picked, keys) if p.saving_gb >= MIN_SAVING_GB]


def _in_order(cfg: Any, arch: Any, picked: list[_Candidate], keys: list[str]) -> list[Proposal]:
    """The proposals of ``keys``, applied one after another in that order, each with the saving it adds."""
    out: list[Proposal] = []
    before_cfg, before_gb = cfg, _gb(cfg, arch)
    for key in keys:
        group = [c for c in picked if c.key == key]
        after_cfg = _apply(before_cfg, group)
        after_gb = _gb(after_cfg, arch)
        changes = {name: getattr(after_cfg, name) for c in group for name in c.changes}
        out.append(Proposal(changes=changes, sentence=group[-1].sentence(before_cfg, after_cfg),
                            saving_gb=before_gb - after_gb, cost=sum(c.cost for c in group)))
        before_cfg, before_gb = after_cfg, after_gb
    return out


def apply_proposals(cfg: Any, proposals: list[Proposal]) -> Any:
    """The config with every proposal's changes (``dataclasses.replace``)."""
    changes: dict[str, Any] = {}
    for p in proposals:
        changes.update(p.changes)
    return dataclasses.replace(cfg, **changes)
