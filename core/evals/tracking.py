"""Which evaluation of a run is the best (lowest eval loss), and when early stopping has run out of patience."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Verdict:
    improved: bool  # this evaluation's loss is the lowest so far
    exhausted: bool  # early stopping: ``patience`` evaluations in a row without improvement


@dataclass
class EvalTracker:
    """Follows a run's eval losses in order. The baseline (step 0) counts: a run that never beats its base has no
    best result of its own. ``patience`` 0 never stops early."""

    patience: int = 0
    best_loss: float | None = None
    best_step: int | None = None
    since_best: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)

    def record(self, step: int, loss: float) -> Verdict:
        self.history.append((step, loss))
        if self.best_loss is None or loss < self.best_loss:
            self.best_loss, self.best_step, self.since_best = loss, step, 0
            return Verdict(improved=True, exhausted=False)
        self.since_best += 1
        return Verdict(improved=False, exhausted=bool(self.patience) and self.since_best >= self.patience)

    @classmethod
    def replay(cls, patience: int, rows: list[dict[str, Any]]) -> EvalTracker:
        """A tracker that has seen the eval lines of ``rows`` (a resumed run's metrics), in order."""
        tracker = cls(patience)
        for row in rows:
            if "eval_loss" in row:
                tracker.record(int(row["step"]), float(row["eval_loss"]))
        return tracker

    def summary(self) -> dict[str, Any]:
        last_step, last_loss = self.history[-1] if self.history else (None, None)
        return {"best_loss": self.best_loss, "best_step": self.best_step, "last_loss": last_loss,
                "last_step": last_step, "evaluations": len(self.history), "patience": self.patience}
