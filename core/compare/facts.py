"""What a comparison knows about one run: its record, its metrics lines with cumulative tokens and elapsed time
derived, its latest evaluation and the size of its result on disk."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.compare.colours import colour_of
from core.runs.files import CONFIG_FILE
from core.store.records import RunRecord

MIB = 2**20
GB = 1e9


@dataclass
class RunFacts:
    """One run as the comparison sees it; ``train`` and ``evals`` carry ``elapsed_s`` and ``tokens_seen``."""

    run: RunRecord
    train: list[dict[str, Any]]
    evals: list[dict[str, Any]]
    config: dict[str, Any]
    evaluation: dict[str, Any] | None = None  # the newest finished evaluation's summary ({"base", "tuned"})
    result_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.run.id

    @property
    def label(self) -> str:
        """Unique in a comparison (the id leads), short enough for a legend."""
        return f"{self.run.id}: {self.run.name} ({self.run.method})"

    @property
    def colour(self) -> str:
        return colour_of(self.run.id)


def training_start(metrics: list[dict[str, Any]], started_at: float | None) -> float:
    """When the first logging window began. The job logs each window's tokens/s and the time at its end, not
    when training started: that is the end of the step-0 evaluation when there is one, else the first window's
    end less its steps at the pace of the next window (the job's start would count model loading)."""
    timed = [m for m in metrics if isinstance(m.get("time"), int | float) and "step" in m]
    baseline = [m["time"] for m in timed if "eval_loss" in m and m["step"] == 0]
    if baseline:
        return float(baseline[0])
    train = [m for m in timed if "loss" in m]
    if len(train) >= 2 and train[1]["step"] > train[0]["step"]:
        pace = (train[1]["time"] - train[0]["time"]) / (train[1]["step"] - train[0]["step"])
        return float(train[0]["time"] - max(0.0, pace) * train[0]["step"])
    if started_at is not None and (not train or started_at <= train[0]["time"]):
        return float(started_at)
    return float(train[0]["time"]) if train else 0.0


def derive_series(metrics: list[dict[str, Any]], started_at: float | None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training lines and the eval lines, each with ``elapsed_s`` (seconds since training began) and
    ``tokens_seen`` (training tokens so far): a window's tokens are its rate times the time since the previous
    line (since the training start for the first)."""
    t0 = training_start(metrics, started_at)
    train, evals = [], []
    previous, tokens = t0, 0.0
    for m in metrics:
        if "loss" in m and "step" in m:
            now = float(m.get("time", previous))
            tokens += float(m.get("tokens_per_s") or 0.0) * max(0.0, now - previous)
            previous = max(previous, now)
            train.append({**m, "elapsed_s": now - t0, "tokens_seen": tokens})
    for m in metrics:
        if "eval_loss" in m and "step" in m:
            before = [t for t in train if t["step"] <= m["step"]]
            evals.append({**m, "elapsed_s": max(0.0, float(m.get("time", t0)) - t0),
                          "tokens_seen": before[-1]["tokens_seen"] if before else 0.0})
    return train, evals


def folder_bytes(folder: str | None) -> int | None:
    """Bytes of the files under a result folder, links not followed; None without a folder."""
    if not folder or not Path(folder).is_dir():
        return None
    return sum(p.lstat().st_size for p in Path(folder).rglob("*") if p.is_file() and not p.is_symlink())


def read_config(run: RunRecord) -> dict[str, Any]:
    """The run's config.json as written in its folder; the registry's copy when the file is missing or damaged."""
    path = Path(run.run_dir) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return dict(run.config)
    return data if isinstance(data, dict) else dict(run.config)


def gather(run: RunRecord, metrics: list[dict[str, Any]], evaluation: dict[str, Any] | None) -> RunFacts:
    train, evals = derive_series(metrics, run.started_at)
    return RunFacts(run, train, evals, read_config(run), evaluation, folder_bytes(run.artefact_dir))
