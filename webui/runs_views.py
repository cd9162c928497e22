"""What the Runs tab draws, in the page's language: the run list, its details, resume and stop messages, chart data."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pandas as pd

from core.store.registry import EvalRecord, RunRecord
from webui.eval_views import eval_summary_markdown, headline
from webui.i18n import say, status_word
from webui.messages import esc, failure_markdown
from webui.queue_reasons import wait_reason

STATUS_ICONS = {"queued": "⏳", "running": "🏃", "completed": "✅", "stopped": "⏹️", "failed": "❌",
                "failed_oom": "💥", "lost": "❓"}
# The tables' column names stay English: code and API clients read the columns by name.
RUN_COLUMNS = ["id", "name", "status", "method", "model", "dataset", "step", "loss", "best eval loss", "evaluation",
               "started"]
CALIBRATION_COLUMNS = ["run", "config", "device", "estimated peak", "est. allocated", "measured allocated",
                       "allocated error", "est. reserved", "measured reserved", "reserved error"]
CALIBRATION_WIDTHS = ["5%", "23%", "12%", "8%", "8%", "8%", "9%", "8%", "8%", "11%"]
MB_PER_GB = 1e9 / 2**20  # the estimate is in GB of 1e9 bytes, the measured curves in MB of 2**20
# The memory chart's series: metrics key (or estimate line) to its catalogue key.
MEMORY_SERIES = {"mem_rss_mb": "rt_series_rss", "mem_allocated_mb": "rt_series_allocated",
                 "mem_reserved_mb": "rt_series_reserved", "mem_peak_allocated_mb": "rt_series_peak_allocated"}
# Core's checkpoint checks (core/runs/manifest.py) as templates: the file names stay as they are.
SKIP_TEMPLATES = [
    (re.compile(r"(.+) is missing"), "rt_skip_missing"),
    (re.compile(r"its (.+) is damaged"), "rt_skip_damaged"),
    (re.compile(r"(.+) is ([\d,]+) bytes, ([\d,]+) when it was saved"), "rt_skip_size"),
    (re.compile(r"(.+) changed since it was saved \(its checksum differs\)"), "rt_skip_checksum"),
]


def please_fix(error: BaseException, locale: str | None = "en") -> str:
    """failure_markdown with its title in ``locale``; core's messages stay as they are."""
    return failure_markdown(error, say("please_fix", locale))


def skip_reason(why: str, locale: str | None = "en") -> str:
    """Why a checkpoint was skipped, translated where core's sentence is one of its fixed checks; escaped."""
    if locale not in (None, "en"):
        for pattern, key in SKIP_TEMPLATES:
            match = pattern.fullmatch(why)
            if match:
                return say(key, locale, **{f"v{i}": esc(v) for i, v in enumerate(match.groups())})
    return esc(why)


def banner_markdown(studio: Any) -> str:
    """A warning above the runs while the database cannot be written (a full disk); empty otherwise."""
    return f"⚠️ **{esc(studio.store_problem)}**" if studio.store_problem else ""


def resume_markdown(run_id: int, point: Any, locale: str | None = "en") -> str:
    key = "rt_resume_queued" if point.waiting else "rt_resuming"
    why = esc(wait_reason(point.waiting, locale))
    lines = [say(key, locale, run_id=run_id, step=point.step, checkpoint=point.name, why=why)]
    lines += [say("rt_skipped", locale, checkpoint=name, why=skip_reason(reason, locale))
              for name, reason in point.skipped]
    return "\n\n".join(lines)


def stop_markdown(asked: bool, locale: str | None = "en") -> str:
    return say("rt_stop_asked" if asked else "rt_not_running", locale)


def runs_table(runs: list[RunRecord], evaluations: dict[int, EvalRecord] | None = None,
               locale: str | None = "en") -> pd.DataFrame:
    rows = []
    evaluations = evaluations or {}
    for r in runs:
        best = (r.eval_summary or {}).get("best_loss")
        rows.append({
            "id": r.id, "name": r.name, "status": f"{STATUS_ICONS.get(r.status, '')} {status_word(r.status, locale)}",
            "method": r.method, "model": r.model, "dataset": r.dataset,
            "step": f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step),
            "loss": round(r.last_loss, 4) if r.last_loss is not None else None,
            "best eval loss": round(best, 4) if best is not None else None,
            "evaluation": headline(evaluations[r.id].summary, locale) if r.id in evaluations else "",
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at or r.created_at)),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def run_choices(runs: list[RunRecord], locale: str | None = "en") -> list[tuple[str, int]]:
    return [(say("rt_run_choice", locale, run_id=r.id, name=r.name, status=status_word(r.status, locale)), r.id)
            for r in runs]


def details_markdown(view: Any, locale: str | None = "en") -> str:
    r = view.run
    lines = [say("rt_details_title", locale, run_id=r.id, name=r.name, icon=STATUS_ICONS.get(r.status, ""),
                 status=status_word(r.status, locale)),
             say("rt_details_progress", locale, step=r.step, total=r.total_steps or "?", method=r.method,
                 model=r.model, dataset=r.dataset)]
    if r.error:
        lines.append(f"\n**{say('rt_details_error', locale)}**\n```\n{r.error}\n```")
    if r.params:
        parts = ", ".join(f"{part} {c['trainable']:,}/{c['total']:,}" for part, c in r.params.items()
                          if part != "all")
        total = r.params.get("all", {})
        lines.append("\n" + say("rt_details_params", locale, trainable=f"{total.get('trainable', 0):,}",
                                total=f"{total.get('total', 0):,}", parts=parts))
    if r.estimate:
        e = r.estimate
        lines.append("\n" + say("rt_details_estimate", locale, total=f"{e['total_gb']:.2f}",
                                allocated=f"{e['allocated_gb']:.2f}", reserved=f"{e['reserved_gb']:.2f}"))
    if r.eval_summary:
        lines.append("\n" + eval_summary_markdown(r.eval_summary, locale))  # the Evaluate tab's view
    if r.artefact_dir:
        lines.append("\n" + say("rt_details_result", locale, path=r.artefact_dir))
    lines.append(f"\n{say('rt_details_command', locale)}\n```\n{view.command}\n```")
    if view.tensorboard:
        lines.append(f"\nTensorBoard:\n```\n{view.tensorboard}\n```")
    return "\n".join(lines)


def typed_frame(rows: list[dict], x: str, y: str, colour: str) -> pd.DataFrame:
    """A frame whose column types are right even when empty: the plot fixes its axis types from the first value."""
    return pd.DataFrame({
        x: pd.Series([r[x] for r in rows], dtype="int64"),
        y: pd.Series([r[y] for r in rows], dtype="float64"),
        colour: pd.Series([r[colour] for r in rows], dtype="str"),
    })


def loss_rows(metrics: list[dict], label: str, locale: str | None = "en") -> list[dict]:
    """A run's training loss and eval loss as two series of the loss chart, with perplexity for the tooltip."""
    rows = []
    train, evaluation = say("rt_series_train", locale, label=label), say("rt_series_eval", locale, label=label)
    for m in metrics:
        if "loss" in m:
            rows.append({"step": m["step"], "loss": m["loss"], "run": train, "perplexity": None})
        if "eval_loss" in m:
            rows.append({"step": m["step"], "loss": m["eval_loss"], "run": evaluation,
                         "perplexity": m.get("eval_perplexity")})
    return rows


def loss_frame(rows: list[dict]) -> pd.DataFrame:
    frame = typed_frame(rows, "step", "loss", "run")
    frame["perplexity"] = pd.Series([r["perplexity"] for r in rows], dtype="float64")
    return frame


def memory_frame(metrics: list[dict], estimate: dict | None = None, total_steps: int = 0,
                 locale: str | None = "en") -> pd.DataFrame:
    """Measured memory per logged step and, as flat lines, the estimate the run started with: on CUDA its
    allocated and reserved peaks, on CPU the whole-card GPU peak (the run itself uses RAM: process RSS)."""
    series = {key: say(label, locale) for key, label in MEMORY_SERIES.items()}
    rows = [{"step": m["step"], "MB": m[key], "series": label}
            for m in metrics for key, label in series.items() if key in m]
    if estimate:
        steps = sorted({0, *(m["step"] for m in metrics)}) if metrics else [0, max(1, total_steps)]
        if any("mem_allocated_mb" in m for m in metrics):
            lines = {"rt_series_est_allocated": estimate["allocated_gb"],
                     "rt_series_est_reserved": estimate["reserved_gb"]}
        else:  # what the card would have to hold, context included; the run itself measures RAM
            lines = {"rt_series_est_gpu": estimate["total_gb"]}
        rows += [{"step": step, "MB": gb * MB_PER_GB, "series": say(key, locale)} for key, gb in lines.items()
                 for step in steps]
    return typed_frame(rows, "step", "MB", "series")


def calibration_table(points: list[dict]) -> pd.DataFrame:
    def error(gb: float, pct: float | None) -> str:
        return f"{gb:+.2f} GB" + (f" ({pct:+.1f}%)" if pct is not None else "")

    rows = [{
        "run": p["run_id"], "config": p["summary"], "device": p["device"],
        "estimated peak": f"{p['estimated_total_gb']:.2f} GB",
        "est. allocated": f"{p['estimated_allocated_gb']:.2f} GB",
        "measured allocated": f"{p['measured_allocated_gb']:.2f} GB",
        "allocated error": error(p["allocated_error_gb"], p["allocated_error_pct"]),
        "est. reserved": f"{p['estimated_reserved_gb']:.2f} GB",
        "measured reserved": f"{p['measured_reserved_gb']:.2f} GB",
        "reserved error": error(p["reserved_error_gb"], p["reserved_error_pct"]),
    } for p in points]
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def metrics_page_text(page: dict, locale: str | None = "en") -> tuple[str, str]:
    """The page's lines as JSON lines, and the line saying which lines they are."""
    text = "\n".join(json.dumps(m) for m in page["lines"])
    if not page["total"]:
        return "", say("rt_no_metrics", locale)
    return text, say("rt_raw_page", locale, first=page["first"], last=page["last"], total=page["total"])
