"""Evaluation inside a training run: eval loss on the dataset's eval split at step 0, every N steps and at the end,
the best result kept beside the last, early stopping, and the check that no loss is NaN or infinite."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.records import read_samples
from core.datasets.split import EVAL_FILE
from core.evals.metrics import perplexity
from core.evals.scoring import set_loss
from core.evals.tracking import EvalTracker
from core.models.encoding import EncodedSample, SampleEncoder
from core.problems import Problem, ProblemsError
from core.runs.files import BEST_DIR, BEST_INFO, read_metrics
from core.runs.folders import publish
from core.train_config import TrainConfig
from jobs.reporter import Reporter


class NonFiniteLoss(ProblemsError):
    """A training or eval loss (or the gradients) became NaN or infinite: the run fails at once, offering nothing."""

    def __init__(self, what: str, value: float, step: int, config: TrainConfig):
        causes = [f"the learning rate ({config.learning_rate:g}) is too high for this model and method: lower it "
                  "(or add warmup)"]
        if config.precision == "fp16":
            causes.append("fp16 overflowed (its largest value is 65504): choose bf16 or fp32")
        if config.max_grad_norm == 0:
            causes.append("gradient clipping is off: set max grad norm to 1.0")
        message = (f"The {what} became {value} at step {step}, so the run stopped and saved no result. Likely "
                   f"cause{'s' if len(causes) > 1 else ''}: {'; '.join(causes)}.")
        super().__init__([Problem(message)])


def check_finite(what: str, value: float, step: int, config: TrainConfig) -> None:
    if not math.isfinite(value):
        raise NonFiniteLoss(what, value, step, config)


def encode_eval_split(dataset_dir: Path, encoder: SampleEncoder, max_rows: int = 0) -> list[EncodedSample]:
    """The eval split's rows as the loss sees them (empty when the dataset has none); the first ``max_rows``."""
    path = Path(dataset_dir) / EVAL_FILE
    if not path.is_file():
        return []
    kept = []
    for sample in read_samples(path):
        encoded = encoder.encode(sample, dataset_dir)
        if encoder.is_trainable(encoded):
            kept.append(encoded)
            if max_rows and len(kept) >= max_rows:
                break
    return kept


@dataclass
class EvalStep:
    loss: float
    improved: bool
    stop_early: bool


class InRunEval:
    """Measures eval loss for the training loop and writes it as metrics lines (``eval_loss``,
    ``eval_perplexity``), keeps the best result in best/ and says when early stopping has run out of patience."""

    def __init__(self, config: TrainConfig, samples: list[EncodedSample], run_dir: Path, reporter: Reporter,
                 total_steps: int, collate: Callable[[list[EncodedSample]], dict[str, Any]],
                 prepare: Callable[[dict[str, Any]], dict[str, Any]],
                 autocast: Callable[[], contextlib.AbstractContextManager],
                 save_result: Callable[[Path, Any], None], main: bool = True,
                 gather: Callable[[], Any] = lambda: None):
        self.config = config
        self.main = main  # with several ranks, every rank evaluates (the same verdict) and only rank 0 saves
        self.samples = samples
        self.run_dir = Path(run_dir)
        self.reporter = reporter
        self.total_steps = total_steps
        self.interval = config.eval_interval(total_steps)
        self.collate, self.prepare, self.autocast, self.save_result = collate, prepare, autocast, save_result
        self.gather = gather  # collective: the weights whole on every rank when FSDP shards them, else None
        self.tracker = EvalTracker(config.early_stopping_patience)
        self.last_step: int | None = None
        self.early_stopped_at: int | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.samples)

    def resume_at(self, step: int) -> None:
        """Continue a resumed run: its earlier eval lines (kept up to ``step``) decide the best and the patience
        left; a best result saved after ``step`` belongs to steps that will be run again, and is dropped."""
        rows = [r for r in read_metrics(self.run_dir) if "eval_loss" in r and r["step"] <= step]
        self.tracker = EvalTracker.replay(self.config.early_stopping_patience, rows)
        self.last_step = rows[-1]["step"] if rows else None
        info = self.run_dir / BEST_DIR / BEST_INFO
        if self.main and info.is_file() and json.loads(info.read_text(encoding="utf-8"))["step"] > step:
            shutil.rmtree(self.run_dir / BEST_DIR, ignore_errors=True)

    def due(self, step: int) -> bool:
        """Whether ``step`` (0 before the first) gets an evaluation: the baseline, every N, or the last step."""
        if not self.enabled or step == self.last_step:
            return False
        return step == 0 or step % self.interval == 0 or step >= self.total_steps

    def evaluate(self, model: Any, step: int) -> EvalStep:
        started = time.perf_counter()
        result = set_loss(model, self.samples, self.config.batch_size, self.collate, self.prepare, self.autocast)
        check_finite("eval loss", result.mean, step, self.config)
        verdict = self.tracker.record(step, result.mean)
        self.last_step = step
        if verdict.improved and step > 0 and self.config.save_best:
            whole = self.gather()  # every rank takes part; rank 0 saves
            if self.main:
                self._save_best(step, result.mean, whole)
        stop_early = verdict.exhausted and step < self.total_steps
        if stop_early:
            self.early_stopped_at = step
        self.reporter.metrics({
            "step": step, "eval_loss": result.mean, "eval_perplexity": perplexity(result.mean),
            "eval_rows": result.rows, "eval_tokens": result.tokens, "best": verdict.improved,
            "eval_seconds": round(time.perf_counter() - started, 3), "time": time.time()})
        self.reporter.progress(eval_summary=self.summary())
        if not self.main:
            return EvalStep(result.mean, verdict.improved, stop_early)
        print(f"eval at step {step}: loss {result.mean:.4f} on {result.rows} rows"
              + (" (best so far)" if verdict.improved else f" ({self.tracker.since_best} without improvement)"),
              flush=True)
        if stop_early:
            print(f"early stopping at step {step}: eval loss has not improved for "
                  f"{self.tracker.since_best} evaluations (best {self.tracker.best_loss:.4f} at step "
                  f"{self.tracker.best_step})", flush=True)
        return EvalStep(result.mean, verdict.improved, stop_early)

    def _save_best(self, step: int, loss: float, whole: Any = None) -> None:
        def write(folder: Path) -> None:
            self.save_result(folder, whole)
            (folder / BEST_INFO).write_text(json.dumps({"step": step, "eval_loss": loss}), encoding="utf-8")

        publish(self.run_dir / BEST_DIR, write)

    def summary(self) -> dict[str, Any]:
        best = self.run_dir / BEST_DIR
        return {**self.tracker.summary(), "interval": self.interval, "rows": len(self.samples),
                "best_dir": str(best) if (best / BEST_INFO).is_file() else None,
                "early_stopped_at": self.early_stopped_at}
