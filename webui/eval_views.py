"""How evaluations read on screen: a run's in-run eval summary, a one-line headline, the list of evaluation jobs,
their progress bar, the before/after table and the per-sample table, in the page's language (English by default)."""

from __future__ import annotations

import re
import time
from typing import Any

import pandas as pd

from core.evals.metrics import METRIC_LABELS
from core.evals.results import before_after, shown
from core.problems import Problem, ProblemsError
from core.store.registry import EvalRecord
from webui.i18n import EN_STRINGS, catalogues, problem_text, resolve, say, status_word
from webui.messages import esc, failure_markdown
from webui.queue_reasons import wait_reason

# The tables' column headers stay English in every language: API clients and tests read the columns by name.
EVAL_COLUMNS = ["id", "scores", "dataset", "split", "status", "progress", "result", "started"]
BEFORE_AFTER_COLUMNS = ["metric", "base", "fine-tuned", "better by"]
SAMPLE_COLUMNS = ["#", "question", "reference", "base answer", "fine-tuned answer", "base score",
                  "fine-tuned score", "improvement"]
HEADLINE_METRICS = (("exact_match", "EM"), ("rouge_l", "ROUGE-L"), ("loss", None))  # None: et_headline_loss
SAMPLES_SCORED = "Samples scored"  # the before/after table's last row, as core/evals/results.py names it
STATUS_ICONS = {"queued": "⏳", "running": "🏃", "completed": "✅", "stopped": "⏹️", "failed": "❌",
                "failed_oom": "💥", "lost": "❓"}


def metric_label(metric: str, locale: str | None = "en") -> str:
    """A metric's name as the tables show it (core's METRIC_LABELS in English)."""
    return say(f"et_metric_{metric}", locale)


# Core's fixed sentences about evaluations (core/evals, core/runs/queue.py), matched by their English template in
# evaluate.en.json with each {value} kept (a waiting reason translated as the queue panel shows it); any other
# message stays English.
MESSAGE_KEYS = ("et_msg_will_wait", "et_msg_split_choose", "et_msg_split_register",
                "et_msg_train_rows", "et_msg_choose_target", "et_msg_best_needs_run", "et_msg_no_run",
                "et_msg_run_unfinished", "et_msg_no_best_kept", "et_msg_no_result", "et_msg_not_a_run",
                "et_msg_no_scored", "et_msg_no_answers", "et_msg_no_dataset", "et_msg_unknown_setting")


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # text, name, text, name, ..., text
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts)))


MESSAGES = [(_pattern(EN_STRINGS[key]), key) for key in MESSAGE_KEYS]


def message_text(message: str, locale: str | None = "en") -> str:
    """A problem's message in ``locale``, escaped for Markdown: core's evaluation sentences and Check's shared
    templates are translated with their values as they are; English, and anything unknown, as core says it."""
    if (locale or "en") == "en":
        return esc(message)
    for pattern, key in MESSAGES:
        match = pattern.fullmatch(message)
        if match:
            values = {k: status_word(v, locale) if k == "status" else wait_reason(v, locale) if k == "reason" else v
                      for k, v in match.groupdict().items()}
            return say(key, locale, **{k: esc(v) for k, v in values.items()})
    return resolve(problem_text(message, esc), locale)


def problems_text(problems: list[Problem], locale: str | None = "en") -> str:
    """``problems_markdown`` with the Evaluate form's labels, in ``locale``: each field named by its label."""
    if not problems:
        return ""
    labels = catalogues().get(locale or "en", {})
    lines = [f"**{say('please_fix', locale)}**", ""]
    for p in problems:
        icon = "⚠️" if p.severity == "warning" else "❌"
        label_key = f"evfield_{p.field}"
        if p.field and label_key in catalogues()["en"] and not p.file:
            label = labels.get(label_key, catalogues()["en"][label_key])
            lines.append(say("et_field_problem", locale, icon=icon, label=esc(label),
                             message=message_text(p.message, locale)))
            continue
        where = p.where()
        where_code = "`" + where.replace("`", "'") + "` — " if where else ""
        lines.append(f"- {icon} {where_code}{message_text(p.message, locale)}")
    return "\n".join(lines)


def failure_text(error: BaseException, locale: str | None = "en") -> str:
    """``failure_markdown`` in ``locale``: problems as ``problems_text``; any other exception as its type and
    message, as before."""
    if isinstance(error, ProblemsError):
        return problems_text(error.problems, locale)
    return failure_markdown(error)


def eval_summary_markdown(summary: dict[str, Any], locale: str | None = "en") -> str:
    """A run's in-run evaluation in a sentence or two: best and last eval loss, early stopping, the best result."""
    best, last = summary.get("best_loss"), summary.get("last_loss")
    if best is None:
        return say("et_loss_unmeasured", locale)
    text = say("et_loss_summary", locale, rows=summary.get("rows", "?"), interval=summary.get("interval", "?"),
               best=f"{best:.4f}", best_step=summary["best_step"], last=f"{last:.4f}",
               last_step=summary["last_step"])
    if summary.get("best_step") == 0 and summary.get("evaluations", 0) > 1:
        text += say("et_loss_no_best", locale)
    elif summary.get("best_dir"):
        text += say("et_loss_best_kept", locale)
    if summary.get("early_stopped_at") is not None:
        text += say("et_loss_stopped_early", locale, step=summary["early_stopped_at"],
                    patience=summary.get("patience"))
    return text


def _value(metric: str, value: float | None) -> str:
    v = shown(metric, value)
    return "–" if v is None else f"{v:.4g}"


def headline(summary: dict[str, Any] | None, locale: str | None = "en") -> str:
    """A few metrics as "base → fine-tuned", or the base's alone."""
    if not summary or not summary.get("base"):
        return ""
    base, tuned = summary["base"], summary.get("tuned")
    parts = []
    for metric, label in HEADLINE_METRICS:
        label = label or say("et_headline_loss", locale)
        if tuned:
            parts.append(f"{label} {_value(metric, base.get(metric))} → {_value(metric, tuned.get(metric))}")
        else:
            parts.append(f"{label} {_value(metric, base.get(metric))}")
    return say("et_headline_sep", locale).join(parts)


def target_label(record: EvalRecord, locale: str | None = "en") -> str:
    if record.run_id is None:
        return say("et_target_base", locale, model=record.model)
    return say("et_target_run", locale, run_id=record.run_id, result=record.result)


def eval_choices(records: list[EvalRecord], locale: str | None = "en") -> list[tuple[str, int]]:
    """The Evaluation list: each evaluation by id, what it scores, the dataset and its status."""
    return [(say("et_choice_run", locale, eval_id=e.id, run_id=e.run_id, dataset=e.dataset,
                 status=status_word(e.status, locale)) if e.run_id else
             say("et_choice_base", locale, eval_id=e.id, model=e.model, dataset=e.dataset,
                 status=status_word(e.status, locale)), e.id) for e in records]


def progress_text(record: EvalRecord) -> str:
    if not record.total_steps:
        return ""
    return f"{record.step}/{record.total_steps}"


def evaluations_table(records: list[EvalRecord], locale: str | None = "en") -> pd.DataFrame:
    rows = [{
        "id": r.id, "scores": target_label(r, locale), "dataset": r.dataset,
        "split": (r.summary or {}).get("split", r.config.get("split", "")),
        "status": f"{STATUS_ICONS.get(r.status, '')} {status_word(r.status, locale)}", "progress": progress_text(r),
        "result": headline(r.summary, locale),
        "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at or r.created_at)),
    } for r in records]
    return pd.DataFrame(rows, columns=EVAL_COLUMNS)


def progress_html(record: EvalRecord | None, locale: str | None = "en") -> str:
    """A progress bar of the samples scored (in every phase), with the status in words."""
    if record is None:
        return ""
    done, total = record.step, record.total_steps
    share = done / total if total else (1.0 if record.status == "completed" else 0.0)
    words = say("et_progress", locale, icon=STATUS_ICONS.get(record.status, ""),
                status=esc(status_word(record.status, locale)), done=done, total=total or "?", share=f"{share:.0%}")
    return (f'<div class="eval-progress"><progress value="{share:.4f}" max="1" style="width:100%"></progress>'
            f"<div>{words}</div></div>")


def before_after_frame(summary: dict[str, Any] | None, locale: str | None = "en") -> pd.DataFrame:
    rows = before_after(summary)
    if (locale or "en") != "en":  # the metric column's words; core names them in English
        names = {label: metric_label(m, locale) for m, label in METRIC_LABELS.items()}
        names[SAMPLES_SCORED] = say("et_samples_scored", locale)
        rows = [{**r, "metric": names.get(r["metric"], r["metric"])} for r in rows]
    return pd.DataFrame(rows, columns=BEFORE_AFTER_COLUMNS)


def samples_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{c: r.get(c) for c in SAMPLE_COLUMNS} for r in rows], columns=SAMPLE_COLUMNS)


def sample_markdown(row: dict[str, Any] | None, metric: str, locale: str | None = "en") -> str:
    """One sample in full: question, reference, each answer with its score on ``metric`` (the metric's label)."""
    if not row:
        return say("ev_click_row", locale)
    lines = [say("et_sample", locale, n=row["#"], id=esc(row["id"])), "",
             say("et_question", locale, text=esc(row["question"])), "",
             say("et_reference", locale, text=esc(row["reference"]))]
    for role, key in (("base", "base"), ("tuned", "fine-tuned")):
        answer = row.get(f"{key} answer")
        if answer is not None:
            lines += ["", say(f"et_answer_{role}", locale, metric=esc(metric), score=row.get(f"{key} score"),
                              answer=esc(answer) or say("et_empty", locale))]
    if row.get("improvement") is not None:
        lines += ["", say("et_improvement", locale, value=f"{row['improvement']:+g}")]
    return "\n".join(lines)
