"""The steps since the last metrics line: their loss summed on the device where it was computed, and read (reduced
across ranks) once per line, so a micro-step never waits for the GPU."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from core.train_config import TrainConfig
from jobs.in_run_eval import check_finite

NONE = math.inf  # "no non-finite value yet", as a step number that any real step is below


class StepWindow:
    def __init__(self, device: torch.device, world: int):
        self.device = device
        self.world = world
        self.loss = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.bad = torch.full((2,), NONE, device=device)  # first step with a non-finite loss / gradient norm
        self.bad_value = torch.full((2,), math.nan, device=device)  # and what it was
        self.tokens = 0
        self.steps = 0
        self.started = time.perf_counter()

    def add_micro(self, loss: torch.Tensor, step: int, tokens: int) -> None:
        """One micro-batch's loss (already divided by the accumulation) for optimizer step ``step``."""
        loss = loss.detach().float()
        self.loss += loss
        self._mark(0, loss, step)
        self.tokens += tokens

    def add_step(self, grad_norm: torch.Tensor | float | None, step: int, check_grad: bool) -> None:
        self.steps += 1
        if grad_norm is None:
            return
        norm = torch.as_tensor(grad_norm, device=self.device, dtype=torch.float32).detach()
        self.grad_norm = norm
        if check_grad:  # under fp16 the scaler skips a step with infinite gradients and lowers its scale
            self._mark(1, norm, step)

    def _mark(self, which: int, value: torch.Tensor, step: int) -> None:
        first = ~torch.isfinite(value) & (self.bad[which] == NONE)
        self.bad[which] = torch.where(first, float(step), self.bad[which])
        self.bad_value[which] = torch.where(first, value, self.bad_value[which])

    def check(self, config: TrainConfig) -> None:
        """Fail the run at the first step whose loss or gradient norm was NaN or infinite (one host sync)."""
        bad = self._reduce(self.bad.clone(), torch.distributed.ReduceOp.MIN if self.world > 1 else None)
        self._raise(torch.cat([bad, self.bad_value]).tolist(), config)

    def read(self, config: TrainConfig) -> dict[str, Any]:
        """The window's metrics (mean step loss, last gradient norm, tokens/s over every rank), then a fresh
        window; raises on a non-finite value."""
        summed = self._reduce(torch.stack([self.loss.float(), torch.tensor(float(self.tokens),
                                                                            device=self.device)]), "sum")
        bad = self._reduce(self.bad.clone(), torch.distributed.ReduceOp.MIN if self.world > 1 else None)
        values = torch.cat([summed, bad, self.bad_value, self.grad_norm.reshape(1)]).tolist()  # one host sync
        self._raise(values[2:6], config)
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        row = {"loss": values[0] / self.world / max(self.steps, 1), "grad_norm": values[6],
               "tokens_per_s": values[1] / elapsed}
        self.loss.zero_()
        self.tokens, self.steps = 0, 0
        self.started = time.perf_counter()
        return row

    def _reduce(self, tensor: torch.Tensor, op: Any) -> torch.Tensor:
        if self.world <= 1 or op is None:
            return tensor
        op = torch.distributed.ReduceOp.SUM if op == "sum" else op
        torch.distributed.all_reduce(tensor, op=op)
        return tensor

    @staticmethod
    def _raise(bad: list[float], config: TrainConfig) -> None:
        loss_step, grad_step, loss_value, grad_value = bad
        if loss_step < NONE:  # another rank's value, when this one's was finite, is named only by its step
            check_finite("training loss", loss_value if not math.isfinite(loss_value) else math.nan, int(loss_step),
                         config)
        if grad_step < NONE:
            check_finite("gradient norm", grad_value if not math.isfinite(grad_value) else math.nan, int(grad_step),
                         config)
