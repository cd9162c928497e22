"""An evaluation's results on disk (one line per sample, with every model's answer and scores, and a summary), the
before/after table, the per-sample view sorted by score or improvement, and the CSV export."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from core.evals.metrics import LOWER_IS_BETTER, METRIC_LABELS, METRICS

RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.json"
ROLES = ("base", "tuned")
ROLE_LABELS = {"base": "base", "tuned": "fine-tuned"}
PERCENT = ("exact_match", "accuracy", "rouge_l")  # stored as 0..1, shown as %
SORTS = ("improvement, best first", "improvement, worst first", "score, best first", "score, worst first",
         "dataset order")
SAMPLE_METRICS = ("rouge_l", "bleu", "exact_match", "accuracy", "loss")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def write_results(folder: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Every sample's line, then the summary; each file appears whole (written aside, then renamed)."""
    _write_atomic(Path(folder) / RESULTS_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _write_atomic(Path(folder) / SUMMARY_FILE, json.dumps(summary, indent=2, ensure_ascii=False))


def read_results(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / RESULTS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_summary(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def shown(metric: str, value: float | None) -> float | None:
    """A metric as tables show it: percentages for the 0..1 ones, rounded."""
    if value is None:
        return None
    return round(value * 100, 2) if metric in PERCENT else round(value, 4)


def before_after(summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per metric: the base's value, the fine-tuned result's, and the change (positive = better)."""
    if not summary:
        return []
    base, tuned = summary.get("base") or {}, summary.get("tuned") or {}
    rows = []
    for metric in METRICS:
        b, t = shown(metric, base.get(metric)), shown(metric, tuned.get(metric))
        change = None
        if b is not None and t is not None:
            change = round((b - t) if metric in LOWER_IS_BETTER else (t - b), 4)
        rows.append({"metric": METRIC_LABELS[metric], "base": b, "fine-tuned": t if tuned else None,
                     "better by": change})
    rows.append({"metric": "Samples scored", "base": base.get("samples"),
                 "fine-tuned": tuned.get("samples") if tuned else None, "better by": None})
    return rows


def improvement(row: dict[str, Any], metric: str) -> float | None:
    """How much better the fine-tuned answer scores than the base's on ``metric`` (lower loss is better)."""
    base, tuned = (row.get("base") or {}).get(metric), (row.get("tuned") or {}).get(metric)
    if base is None or tuned is None:
        return None
    return (base - tuned) if metric in LOWER_IS_BETTER else (tuned - base)


def sample_rows(results: list[dict[str, Any]], metric: str = "rouge_l", order: str = SORTS[0]
                ) -> list[dict[str, Any]]:
    """The per-sample view: question, reference, both answers, their scores on ``metric`` and the improvement,
    sorted by ``order`` (one of SORTS; a score sorts by the fine-tuned answer's, or the base's when alone;
    samples without the value go last)."""
    rows = []
    for r in results:
        base, tuned = r.get("base") or {}, r.get("tuned") or {}
        own = tuned if tuned else base
        rows.append({"#": r["index"] + 1, "id": r["id"], "question": r["question"], "reference": r["reference"],
                     "base answer": base.get("answer"), "fine-tuned answer": tuned.get("answer"),
                     "base score": shown(metric, base.get(metric)),
                     "fine-tuned score": shown(metric, tuned.get(metric)),
                     "improvement": shown(metric, improvement(r, metric)), "_score": own.get(metric),
                     "images": r.get("images", [])})
    best_first = order.endswith("best first")
    if order.startswith("improvement"):
        rows.sort(key=lambda x: _missing_last(x["improvement"], best_first))
    elif order.startswith("score"):  # the best score is the highest, or the lowest loss
        rows.sort(key=lambda x: _missing_last(x["_score"], best_first != (metric in LOWER_IS_BETTER)))
    return rows


def _missing_last(value: float | None, descending: bool) -> tuple[int, float]:
    if value is None:
        return (1, 0.0)
    return (0, -value if descending else value)


CSV_COLUMNS = ["#", "id", "question", "reference", "base answer", "fine-tuned answer", "base score",
               "fine-tuned score", "improvement"]


def write_csv(rows: list[dict[str, Any]], path: Path, metric: str) -> Path:
    """The per-sample view as CSV (UTF-8 with a byte-order mark, so spreadsheets read accents right)."""
    path = Path(path)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_COLUMNS[:6], *(f"{c} ({metric})" for c in CSV_COLUMNS[6:])])
        for row in rows:
            writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return path


def _cell(value: Any) -> Any:
    """Spreadsheets run a cell that starts with = + - @ as a formula; a quote in front keeps it text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
