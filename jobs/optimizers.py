"""Builds the optimizer (AdamW, 8-bit and paged AdamW, Adafactor) and learning-rate schedule a config asks for."""

from __future__ import annotations

from typing import Any

import torch

from core.train_config import TrainConfig

BNB_OPTIMIZERS = {"adamw_8bit": "AdamW8bit", "paged_adamw_8bit": "PagedAdamW8bit",
                  "paged_adamw_32bit": "PagedAdamW32bit"}


def build_optimizer(config: TrainConfig, params: list[torch.nn.Parameter] | list[dict[str, Any]]
                    ) -> torch.optim.Optimizer:
    """The optimizer over parameters or parameter groups (a group may carry its own lr)."""
    lr, decay = config.learning_rate, config.weight_decay
    if config.optimizer == "adamw_torch":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay)
    if config.optimizer in BNB_OPTIMIZERS:
        import bitsandbytes as bnb

        return getattr(bnb.optim, BNB_OPTIMIZERS[config.optimizer])(params, lr=lr, weight_decay=decay)
    if config.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        # A fixed learning rate under the studio's schedule, not Adafactor's own relative step size.
        return Adafactor(params, lr=lr, weight_decay=decay, scale_parameter=False, relative_step=False,
                         warmup_init=False)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    from transformers import get_scheduler

    warmup = int(round(config.warmup_ratio * total_steps))
    return get_scheduler(config.lr_scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
