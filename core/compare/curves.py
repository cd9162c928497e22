"""Overlaid curves of the compared runs: training loss (EMA-smoothed on request), eval loss, memory and tokens/s,
against steps, tokens seen or wall-clock time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.compare.facts import RunFacts
from core.problems import Problem, ProblemsError

X_AXES = {"step": "Step", "tokens": "Tokens seen", "time": "Wall-clock time (s)"}
X_KEYS = {"step": "step", "tokens": "tokens_seen", "time": "elapsed_s"}
CHARTS = {
    "loss": "Training loss",
    "eval_loss": "Eval loss",
    "memory": "Memory (MB): GPU peak allocated on CUDA, process RSS on CPU",
    "tokens_per_s": "Tokens/s",
}
Y_LABELS = {"loss": "loss", "eval_loss": "eval loss", "memory": "MB", "tokens_per_s": "tokens/s"}
MAX_SMOOTHING = 0.99


@dataclass
class Curve:
    """One run's points on one chart, in its stable colour."""

    run_id: int
    label: str
    colour: str
    points: list[tuple[float, float]]


def ema(values: list[float], smoothing: float) -> list[float]:
    """Exponential moving average, bias-corrected as TensorBoard does so the start is not pulled towards 0;
    ``smoothing`` 0 returns the values unchanged."""
    if smoothing <= 0:
        return list(values)
    out, running, weight = [], 0.0, 0.0
    for v in values:
        running = smoothing * running + (1 - smoothing) * v
        weight = smoothing * weight + (1 - smoothing)
        out.append(running / weight)
    return out


def _memory(line: dict[str, Any]) -> float | None:
    for key in ("mem_peak_allocated_mb", "mem_rss_mb"):
        if isinstance(line.get(key), int | float):
            return float(line[key])
    return None


def check_axis(x: str, smoothing: float) -> None:
    problems = []
    if x not in X_AXES:
        problems.append(Problem(f"choose one of {', '.join(X_AXES)}; got {x!r}", field="x_axis"))
    if not 0 <= smoothing <= MAX_SMOOTHING:
        problems.append(Problem(f"must be between 0 and {MAX_SMOOTHING}; got {smoothing!r}", field="smoothing"))
    if problems:
        raise ProblemsError(problems)


def curve(facts: RunFacts, chart: str, x: str = "step", smoothing: float = 0.0) -> Curve:
    """The run's points on ``chart`` (one of CHARTS) against ``x`` (one of X_AXES)."""
    check_axis(x, smoothing)
    key = X_KEYS[x]
    if chart == "eval_loss":
        lines = [e for e in facts.evals if isinstance(e.get("eval_loss"), int | float)]
        ys = [float(e["eval_loss"]) for e in lines]
    elif chart == "memory":
        lines = [t for t in facts.train if _memory(t) is not None]
        ys = [_memory(t) for t in lines]
    elif chart in ("loss", "tokens_per_s"):
        lines = [t for t in facts.train if isinstance(t.get(chart), int | float)]
        ys = [float(t[chart]) for t in lines]
        if chart == "loss":
            ys = ema(ys, smoothing)
    else:
        raise ProblemsError([Problem(f"choose one of {', '.join(CHARTS)}; got {chart!r}", field="chart")])
    points = [(float(line[key]), float(y)) for line, y in zip(lines, ys, strict=True)]
    return Curve(facts.id, facts.label, facts.colour, points)


def curves(facts: list[RunFacts], chart: str, x: str = "step", smoothing: float = 0.0) -> list[Curve]:
    return [curve(f, chart, x, smoothing) for f in facts]


def chart_rows(lines: list[Curve], x: str) -> list[dict[str, Any]]:
    """The curves as one long table for a line plot: x, y and the run's label (the colour column)."""
    return [{X_AXES[x]: px, "value": py, "run": c.label} for c in lines for px, py in c.points]
