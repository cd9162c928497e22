"""How evaluations read on screen: a run's in-run eval summary, a one-line headline, the list of evaluation jobs,
their progress bar, the before/after table and the per-sample table."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from core.evals.results import ROLE_LABELS, before_after, shown
from core.store.registry import EvalRecord
from webui.i18n import text
from webui.messages import esc

EVAL_COLUMNS = ["id", "scores", "dataset", "split", "status", "progress", "result", "started"]
BEFORE_AFTER_COLUMNS = ["metric", "base", "fine-tuned", "better by"]
SAMPLE_COLUMNS = ["#", "question", "reference", "base answer", "fine-tuned answer", "base score",
                  "fine-tuned score", "improvement"]
HEADLINE_METRICS = (("exact_match", "EM"), ("rouge_l", "ROUGE-L"), ("loss", "loss"))
STATUS_ICONS = {"queued": "⏳", "running": "🏃", "completed": "✅", "stopped": "⏹️", "failed": "❌",
                "failed_oom": "💥", "lost": "❓"}


def eval_summary_markdown(summary: dict[str, Any]) -> str:
    """A run's in-run evaluation in a sentence or two: best and last eval loss, early stopping, the best result."""
    best, last = summary.get("best_loss"), summary.get("last_loss")
    if best is None:
        return "Eval loss: not measured yet."
    text = (f"Eval loss on {summary.get('rows', '?')} eval rows (every {summary.get('interval', '?')} steps): "
            f"best **{best:.4f}** at step {summary['best_step']}, last {last:.4f} at step {summary['last_step']}.")
    if summary.get("best_step") == 0 and summary.get("evaluations", 0) > 1:
        text += " No evaluation beat the base model (step 0), so there is no best result of its own."
    elif summary.get("best_dir"):
        text += " The best result is kept beside the last; Chat, Export and Evaluate can choose either."
    if summary.get("early_stopped_at") is not None:
        text += (f" Stopped early at step {summary['early_stopped_at']}: no improvement in "
                 f"{summary.get('patience')} evaluations.")
    return text


def _value(metric: str, value: float | None) -> str:
    v = shown(metric, value)
    return "–" if v is None else f"{v:.4g}"


def headline(summary: dict[str, Any] | None) -> str:
    """A few metrics as "base → fine-tuned", or the base's alone."""
    if not summary or not summary.get("base"):
        return ""
    base, tuned = summary["base"], summary.get("tuned")
    parts = []
    for metric, label in HEADLINE_METRICS:
        if tuned:
            parts.append(f"{label} {_value(metric, base.get(metric))} → {_value(metric, tuned.get(metric))}")
        else:
            parts.append(f"{label} {_value(metric, base.get(metric))}")
    return ", ".join(parts)


def target_label(record: EvalRecord) -> str:
    if record.run_id is None:
        return f"base {record.model}"
    return f"run {record.run_id} ({record.result}) vs base"


def progress_text(record: EvalRecord) -> str:
    if not record.total_steps:
        return ""
    return f"{record.step}/{record.total_steps}"


def evaluations_table(records: list[EvalRecord]) -> pd.DataFrame:
    rows = [{
        "id": r.id, "scores": target_label(r), "dataset": r.dataset,
        "split": (r.summary or {}).get("split", r.config.get("split", "")),
        "status": f"{STATUS_ICONS.get(r.status, '')} {r.status}", "progress": progress_text(r),
        "result": headline(r.summary),
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at or r.created_at)),
    } for r in records]
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def progress_html(record: EvalRecord | None) -> str:
    """A progress bar of the samples scored (in every phase), with the status in words."""
    if record is None:
        return ""
    done, total = record.step, record.total_steps
    share = done / total if total else (1.0 if record.status == "completed" else 0.0)
    words = f"{STATUS_ICONS.get(record.status, '')} {esc(record.status)}: {done} of {total or '?'} samples scored"
    return (f'<div class="eval-progress"><progress value="{share:.4f}" max="1" style="width:100%"></progress>'
            f"<div>{words} ({share:.0%})</div></div>")


def before_after_frame(summary: dict[str, Any] | None) -> pd.DataFrame:
    rows = before_after(summary)
    return pd.DataFrame(rows, columns=BEFORE_AFTER_COLUMNS)


def samples_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c) for c in SAMPLE_COLUMNS} for r in rows], columns=SAMPLE_COLUMNS)


def sample_markdown(row: dict[str, Any] | None, metric: str) -> str:
    """One sample in full: question, reference, each answer with its score on ``metric``."""
    if not row:
        return text("ev_click_row")
    lines = [f"**Sample {row['#']}** (`{esc(row['id'])}`)", "", f"**Question:** {esc(row['question'])}", "",
             f"**Reference:** {esc(row['reference'])}"]
    for role, key in (("base", "base"), ("tuned", "fine-tuned")):
        answer = row.get(f"{key} answer")
        if answer is not None:
            lines += ["", f"**{ROLE_LABELS[role].capitalize()} answer** ({esc(metric)} "
                      f"{row.get(f'{key} score')}): {esc(answer) or '*(empty)*'}"]
    if row.get("improvement") is not None:
        lines += ["", f"Improvement: **{row['improvement']:+g}**"]
    return "\n".join(lines)
