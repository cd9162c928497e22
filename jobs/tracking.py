"""The "Report to" option: the metrics lines the Runs tab draws, also written for TensorBoard (into the run folder)
or Weights & Biases (offline unless WANDB_MODE says otherwise)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.runs.files import TENSORBOARD_DIR

NOT_SCALARS = ("step", "time", "best")


class Tracker:
    def __init__(self, kind: str, run_dir: Path, run_name: str, config: dict[str, Any]):
        self.kind = kind
        self._writer: Any = None
        self._run: Any = None
        if kind == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))
        elif kind == "wandb":
            import wandb

            os.environ.setdefault("WANDB_MODE", "offline")
            self._run = wandb.init(project="finetune-studio", name=run_name, dir=str(run_dir), config=config,
                                   resume="allow", id=f"run-{Path(run_dir).name}")

    def log(self, row: dict[str, Any]) -> None:
        """One metrics line: training values under train/, evaluation values under eval/."""
        step = int(row.get("step", 0))
        scalars = {(k if k.startswith("eval_") else f"train/{k}").replace("eval_", "eval/"): float(v)
                   for k, v in row.items() if k not in NOT_SCALARS and isinstance(v, (int, float))}
        if self._writer is not None:
            for name, value in scalars.items():
                self._writer.add_scalar(name, value, step)
            self._writer.flush()
        if self._run is not None:
            self._run.log(scalars, step=step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._run is not None:
            self._run.finish()
