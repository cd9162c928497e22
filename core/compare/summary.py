"""The comparison's summary table: one row per run, one column per figure, the best value of each column marked."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from core.compare.facts import GB, MIB, RunFacts
from core.evals.metrics import LOWER_IS_BETTER, METRIC_LABELS, METRICS
from core.evals.results import PERCENT


@dataclass(frozen=True)
class Column:
    """``better``: "lower", "higher", or None where no value is better than another (a method, a count)."""

    key: str
    label: str
    better: str | None = None
    unit: str = ""

    @property
    def help(self) -> str:
        return COLUMN_HELP.get(self.key, "")


COLUMNS = (
    Column("method", "Method"), Column("quantization", "Quantization"), Column("precision", "Precision"),
    Column("trainable_params", "Trainable params"), Column("total_params", "Total params"),
    Column("steps", "Steps"), Column("wall_time_s", "Wall time", "lower", "s"),
    Column("seconds_per_step", "s/step", "lower", "s"),
    Column("tokens_per_s", "Tokens/s", "higher"),
    Column("peak_gpu_allocated_gb", "Peak GPU alloc.", "lower", "GB"),
    Column("peak_gpu_reserved_gb", "Peak GPU resv.", "lower", "GB"),
    Column("peak_rss_gb", "Peak RSS", "lower", "GB"),
    Column("estimated_peak_gb", "Estimate at start", None, "GB"),
    Column("final_loss", "Final train loss", "lower"), Column("best_eval_loss", "Best eval loss", "lower"),
)
RESULT_COLUMN = Column("result_bytes", "Result size", "lower", "bytes")
BEST_MARK = "★"
COLUMN_HELP = {
    "wall_time_s": "the whole job, model loading and evaluations included",
    "seconds_per_step": "training time (from the first logging window to the last) per optimizer step",
    "tokens_per_s": "training tokens seen per second of training time",
    "peak_gpu_allocated_gb": "torch.cuda.max_memory_allocated over the run (CUDA runs)",
    "peak_gpu_reserved_gb": "torch.cuda.max_memory_reserved at the end of a finished CUDA run; while it runs, the "
                            "highest memory_reserved logged",
    "peak_rss_gb": "the highest process RSS logged (CPU runs)",
    "estimated_peak_gb": "the GPU peak the memory estimator predicted when the run started",
    "result_bytes": "the final result folder on disk: an adapter, or full weights",
}


@dataclass
class Summary:
    """``rows[i]`` holds run ``run_ids[i]``'s raw values by column key; ``best[key]`` the ids holding the best."""

    columns: list[Column]
    run_ids: list[int]
    labels: list[str]
    colours: list[str]
    rows: list[dict[str, Any]]
    best: dict[str, set[int]]

    def is_best(self, key: str, run_id: int) -> bool:
        return run_id in self.best.get(key, set())


def _last(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if isinstance(r.get(key), int | float)]
    return float(values[-1]) if values else None


def _peak(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if isinstance(r.get(key), int | float)]
    return max(values) * MIB / GB if values else None


def figures(facts: RunFacts) -> dict[str, Any]:
    """Every figure of the table for one run, computed from its metrics lines, config and record."""
    run, train = facts.run, facts.train
    steps = int(train[-1]["step"]) if train else run.step
    trained_s = train[-1]["elapsed_s"] if train else None
    ended = run.finished_at or (train[-1].get("time") if train else None) or run.heartbeat_at
    wall = (ended - run.started_at) if ended and run.started_at else trained_s
    tokens = train[-1]["tokens_seen"] if train else 0.0
    params = (run.params or {}).get("all") or {}
    eval_losses = [float(e["eval_loss"]) for e in facts.evals if isinstance(e.get("eval_loss"), int | float)]
    best_eval = min(eval_losses) if eval_losses else (run.eval_summary or {}).get("best_loss")
    config = facts.config
    measured = facts.extra.get("measured_gb") or {}
    values: dict[str, Any] = {
        "method": run.method, "quantization": str(config.get("quantization", "none")),
        "precision": str(config.get("precision", "")),
        "trainable_params": params.get("trainable"), "total_params": params.get("total"), "steps": steps,
        "wall_time_s": wall, "seconds_per_step": trained_s / steps if trained_s and steps else None,
        "tokens_per_s": tokens / trained_s if trained_s else None,
        "peak_gpu_allocated_gb": measured.get("allocated", _peak(train, "mem_peak_allocated_mb")),
        "peak_gpu_reserved_gb": measured.get("reserved", _peak(train, "mem_reserved_mb")),
        "peak_rss_gb": _peak(train, "mem_rss_mb"),
        "estimated_peak_gb": (run.estimate or {}).get("total_gb"), "final_loss": _last(train, "loss"),
        "best_eval_loss": best_eval, "result_bytes": facts.result_bytes,
    }
    tuned = (facts.evaluation or {}).get("tuned") or {}
    for metric in METRICS:
        if isinstance(tuned.get(metric), int | float):
            values[f"eval_{metric}"] = float(tuned[metric]) * (100 if metric in PERCENT else 1)
    return values


def eval_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """A column per evaluation metric that at least one run has."""
    return [Column(f"eval_{m}", f"Eval: {METRIC_LABELS[m]}", "lower" if m in LOWER_IS_BETTER else "higher")
            for m in METRICS if any(f"eval_{m}" in r for r in rows)]


def best_of(columns: list[Column], run_ids: list[int], rows: list[dict[str, Any]]) -> dict[str, set[int]]:
    """Per judged column, the runs holding its best value (ties share it); only when two runs or more have one."""
    best: dict[str, set[int]] = {}
    for column in columns:
        if column.better is None:
            continue
        known = [(rid, float(row[column.key])) for rid, row in zip(run_ids, rows, strict=True)
                 if isinstance(row.get(column.key), int | float) and math.isfinite(row[column.key])]
        if len(known) < 2:
            continue
        pick = min if column.better == "lower" else max
        target = pick(v for _, v in known)
        best[column.key] = {rid for rid, v in known if math.isclose(v, target, rel_tol=1e-9, abs_tol=1e-12)}
    return best


def summarise(facts: list[RunFacts]) -> Summary:
    rows = [figures(f) for f in facts]
    columns = [c for c in (*COLUMNS, *eval_columns(rows), RESULT_COLUMN)
               if any(r.get(c.key) is not None for r in rows)]  # no GPU columns for CPU runs, and so on
    ids = [f.id for f in facts]
    return Summary(columns, ids, [f.label for f in facts], [f.colour for f in facts], rows,
                   best_of(columns, ids, rows))


def shown(column: Column, value: Any) -> str:
    """A value as the table shows it ("" when unknown)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if column.unit == "bytes":
        return human_bytes(int(value))
    if column.key.endswith("_params") or column.key == "steps":
        return f"{int(value):,}"
    if column.key == "wall_time_s":
        return duration(float(value))
    if column.unit == "GB":
        return f"{value:.3f} GB"
    if column.key == "tokens_per_s":
        return f"{value:.1f}"
    return f"{value:.4f}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"
