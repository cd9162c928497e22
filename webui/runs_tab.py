"""The Runs tab: every run from the registry (filtered, a row click opens it), live loss and memory charts, the log
tail, paged raw metrics, Stop, Resume, Evaluate, rename, notes, delete, and the job queue."""

from __future__ import annotations

import json
import time
from typing import Any

import gradio as gr
import pandas as pd

from core.store.registry import EvalRecord, RunRecord
from core.studio import Studio
from webui import queue_panel, run_manage
from webui.eval_views import eval_summary_markdown, headline
from webui.i18n import t
from webui.messages import esc, failure_markdown
from webui.run_manage import ALL, filter_choices, wanted

POLL_SECONDS = 2.0
STATUS_ICONS = {"queued": "⏳", "running": "🏃", "completed": "✅", "stopped": "⏹️", "failed": "❌",
                "failed_oom": "💥", "lost": "❓"}
RUN_COLUMNS = ["id", "name", "status", "method", "model", "dataset", "step", "loss", "best eval loss", "evaluation",
               "started"]
CALIBRATION_COLUMNS = ["run", "config", "device", "estimated peak", "est. allocated", "measured allocated",
                       "allocated error", "est. reserved", "measured reserved", "reserved error"]
CALIBRATION_WIDTHS = ["5%", "23%", "12%", "8%", "8%", "8%", "9%", "8%", "8%", "11%"]
MB_PER_GB = 1e9 / 2**20  # the estimate is in GB of 1e9 bytes, the measured curves in MB of 2**20
RESUMING = "▶️ Resuming run {run_id} from step {step} (checkpoint `{checkpoint}`)."
RESUME_QUEUED = ("⏳ Run {run_id} will resume from step {step} (checkpoint `{checkpoint}`) when its turn comes in the "
                 "queue: {why}.")
SKIPPED = "⚠️ Skipped `{checkpoint}`: {why}."
LIST_FAILED = "⚠️ The run list cannot be read right now: {error}"
RAW_LINES = 50  # lines of metrics.jsonl per page: the view never holds the whole file
RAW_PAGE = "Lines {first}–{last} of {total}."


def banner_markdown(studio: Studio) -> str:
    """A warning above the runs while the database cannot be written (a full disk); empty otherwise."""
    return f"⚠️ **{esc(studio.store_problem)}**" if studio.store_problem else ""


def resume_markdown(run_id: int, point: Any) -> str:
    template = RESUME_QUEUED if point.waiting else RESUMING
    lines = [template.format(run_id=run_id, step=point.step, checkpoint=point.name, why=esc(point.waiting))]
    lines += [SKIPPED.format(checkpoint=name, why=esc(why)) for name, why in point.skipped]
    return "\n\n".join(lines)


def runs_table(runs: list[RunRecord], evaluations: dict[int, EvalRecord] | None = None) -> pd.DataFrame:
    rows = []
    evaluations = evaluations or {}
    for r in runs:
        best = (r.eval_summary or {}).get("best_loss")
        rows.append({
            "id": r.id, "name": r.name, "status": f"{STATUS_ICONS.get(r.status, '')} {r.status}",
            "method": r.method, "model": r.model, "dataset": r.dataset,
            "step": f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step),
            "loss": round(r.last_loss, 4) if r.last_loss is not None else None,
            "best eval loss": round(best, 4) if best is not None else None,
            "evaluation": headline(evaluations[r.id].summary) if r.id in evaluations else "",
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started_at or r.created_at)),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def run_choices(runs: list[RunRecord]) -> list[tuple[str, int]]:
    return [(f"{r.id}: {r.name} ({r.status})", r.id) for r in runs]


def details_markdown(view: Any) -> str:
    r = view.run
    lines = [f"**Run {r.id} — {r.name}**: {STATUS_ICONS.get(r.status, '')} `{r.status}`",
             f"step {r.step} of {r.total_steps or '?'}; method {r.method}; model `{r.model}`; dataset `{r.dataset}`"]
    if r.error:
        lines.append(f"\n**Error:**\n```\n{r.error}\n```")
    if r.params:
        parts = ", ".join(f"{part} {c['trainable']:,}/{c['total']:,}" for part, c in r.params.items()
                          if part != "all")
        total = r.params.get("all", {})
        lines.append(f"\nTrainable parameters: **{total.get('trainable', 0):,}** of {total.get('total', 0):,} "
                     f"({parts})")
    if r.estimate:
        e = r.estimate
        lines.append(f"\nEstimated peak GPU memory when it started: **{e['total_gb']:.2f} GB** (PyTorch allocated "
                     f"{e['allocated_gb']:.2f} GB, reserved {e['reserved_gb']:.2f} GB, plus the CUDA context)")
    if r.eval_summary:
        lines.append("\n" + eval_summary_markdown(r.eval_summary))
    if r.artefact_dir:
        lines.append(f"\nResult: `{r.artefact_dir}`")
    lines.append(f"\nHeadless command:\n```\n{view.command}\n```")
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


def loss_rows(metrics: list[dict], label: str) -> list[dict]:
    """A run's training loss and eval loss as two series of the loss chart, with perplexity for the tooltip."""
    rows = []
    for m in metrics:
        if "loss" in m:
            rows.append({"step": m["step"], "loss": m["loss"], "run": f"{label} train",
                         "perplexity": None})
        if "eval_loss" in m:
            rows.append({"step": m["step"], "loss": m["eval_loss"], "run": f"{label} eval",
                         "perplexity": m.get("eval_perplexity")})
    return rows


def loss_frame(rows: list[dict]) -> pd.DataFrame:
    frame = typed_frame(rows, "step", "loss", "run")
    frame["perplexity"] = pd.Series([r["perplexity"] for r in rows], dtype="float64")
    return frame


def plot_update(frame: pd.DataFrame, colour: str) -> gr.LinePlot:
    """New data for a coloured plot, naming its series: the plot otherwise keeps the series it first saw."""
    return gr.LinePlot(value=frame, colors_in_legend=list(dict.fromkeys(frame[colour])))


def memory_update(frame: pd.DataFrame, cpu_estimate: bool = False) -> gr.LinePlot:
    """The memory plot's new data with its series named (see ``plot_update``) and a title saying what is drawn."""
    return gr.LinePlot(value=frame, colors_in_legend=list(dict.fromkeys(frame["series"])),
                       title=t("runs_memory_cpu_title") if cpu_estimate else t("runs_memory_title"))


def memory_frame(metrics: list[dict], estimate: dict | None = None, total_steps: int = 0) -> pd.DataFrame:
    """Measured memory per logged step and, as flat lines, the estimate the run started with: on CUDA its
    allocated and reserved peaks, on CPU the whole-card GPU peak (the run itself uses RAM: process RSS)."""
    series = {"mem_rss_mb": "process RSS", "mem_allocated_mb": "GPU allocated", "mem_reserved_mb": "GPU reserved",
              "mem_peak_allocated_mb": "GPU peak allocated"}
    rows = [{"step": m["step"], "MB": m[key], "series": label}
            for m in metrics for key, label in series.items() if key in m]
    if estimate:
        steps = sorted({0, *(m["step"] for m in metrics)}) if metrics else [0, max(1, total_steps)]
        if any("mem_allocated_mb" in m for m in metrics):
            lines = {"estimated peak allocated": estimate["allocated_gb"],
                     "estimated peak reserved": estimate["reserved_gb"]}
        else:  # what the card would have to hold, context included; the run itself measures RAM
            lines = {"estimated GPU peak": estimate["total_gb"]}
        rows += [{"step": step, "MB": gb * MB_PER_GB, "series": label} for label, gb in lines.items()
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


def newest_id(runs: list[RunRecord]) -> int | None:
    return max((r.id for r in runs), default=None)


def selected_id(row_value: list | None) -> int | None:
    """The run id of a clicked table row (its first cell), or None for a header or an empty row."""
    try:
        return int(row_value[0]) if row_value else None
    except (TypeError, ValueError):
        return None


def keep_or_newest(chosen: int | None, runs: list[RunRecord]) -> int | None:
    """The run to show: the one chosen while it still exists, else the newest."""
    ids = {r.id for r in runs}
    return int(chosen) if chosen is not None and int(chosen) in ids else newest_id(runs)


def metrics_page_text(page: dict) -> tuple[str, str]:
    """The page's lines as JSON lines, and the line saying which lines they are."""
    text = "\n".join(json.dumps(m) for m in page["lines"])
    if not page["total"]:
        return "", "No metrics yet."
    return text, RAW_PAGE.format(first=page["first"], last=page["last"], total=page["total"])


def raw_page(studio: Studio, run_id: int | None, older: int) -> tuple[str, str, int, Any, Any]:
    """A page of the chosen run's metrics (``older`` pages back from the newest), the pager's state and buttons."""
    if run_id is None:
        return "", "", 0, gr.update(interactive=False), gr.update(interactive=False)
    try:
        page = studio.metrics_page(int(run_id), older, RAW_LINES)
    except KeyError:
        return "", "", 0, gr.update(interactive=False), gr.update(interactive=False)
    text, where = metrics_page_text(page)
    return (text, where, page["older"], gr.update(interactive=page["has_older"]),
            gr.update(interactive=page["has_newer"]))


def build(studio: Studio) -> dict[str, Any]:
    timer = gr.Timer(POLL_SECONDS)
    banner = gr.Markdown()
    first = studio.list_runs()
    filters = filter_choices(studio)
    with gr.Row():
        by_status = gr.Dropdown(label=t("runs_by_status"),
                                 choices=filters["status"], value=ALL, allow_custom_value=True)
        by_method = gr.Dropdown(label=t("runs_by_method"),
                                 choices=filters["method"], value=ALL, allow_custom_value=True)
        by_dataset = gr.Dropdown(label=t("runs_by_dataset"),
                                 choices=filters["dataset"], value=ALL, allow_custom_value=True)
    table = gr.Dataframe(value=runs_table(first, studio.latest_evaluations()), interactive=False,
                         label=t("runs_table"))
    with gr.Row():
        initial = run_choices(first)
        chosen = gr.Dropdown(label=t("runs_run"), choices=initial, value=newest_id(first), allow_custom_value=True)
        compare = gr.Dropdown(label=t("runs_compare"), choices=initial, multiselect=True,
                              allow_custom_value=True)
        stop = gr.Button(t("runs_stop"), variant="stop")
        resume = gr.Button(t("runs_resume"))
        evaluate = gr.Button(t("runs_evaluate"))
    action = gr.Markdown()
    details = gr.Markdown()
    manage = run_manage.build(studio, chosen, action)
    with gr.Row():
        loss_plot = gr.LinePlot(loss_frame([]), x="step", y="loss", color="run", title=t("runs_loss_title"), height=300,
                                tooltip=["perplexity"])
        memory_plot = gr.LinePlot(memory_frame([]), x="step", y="MB", color="series", title=t("runs_memory_title"),
                                  height=300)
    log = gr.Textbox(label=t("runs_log"), lines=12, max_lines=12, autoscroll=True,
                     interactive=False)
    with gr.Accordion(t("runs_raw"), open=False):
        raw_where = gr.Markdown()
        raw = gr.Code(label="metrics.jsonl", language="json", interactive=False, max_lines=20)
        with gr.Row():
            older = gr.Button(t("runs_older"), size="sm", interactive=False)
            newer = gr.Button(t("runs_newer"), size="sm", interactive=False)
        raw_older = gr.State(0)
    queue = queue_panel.build(studio)
    with gr.Accordion(t("runs_calibration"), open=False) as calibration:
        gr.Markdown(t("runs_calibration_help"))
        points = gr.Dataframe(lambda: calibration_table(studio.memory.calibration_points()), interactive=False,
                              wrap=True, label=t("runs_points"), column_widths=CALIBRATION_WIDTHS)
        refresh_points = gr.Button(t("runs_refresh"), size="sm")
        points_json = gr.JSON(visible=False)
    metrics_json = gr.JSON(visible=False)

    def views(run_id: int | None, others: list[int] | None) -> tuple:
        """Details, both charts and the log of the chosen run (with the others' loss), and its metrics."""
        if run_id is None:
            return ("", plot_update(loss_frame([]), "run"), memory_update(memory_frame([])), "", [])
        try:
            view = studio.run_view(int(run_id))
        except Exception as e:  # noqa: BLE001
            return (failure_markdown(e), plot_update(loss_frame([]), "run"), memory_update(memory_frame([])), "", [])
        rows = loss_rows(view.metrics, f"{view.run.id}: {view.run.name}")
        for other in others or []:
            if int(other) == int(run_id):
                continue
            try:
                o = studio.run_view(int(other))
            except KeyError:
                continue
            rows += loss_rows(o.metrics, f"{o.run.id}: {o.run.name}")
        training = [m for m in view.metrics if "loss" in m]  # eval lines carry no memory readings
        memory = memory_frame(training, view.run.estimate, view.run.total_steps)
        cpu = any("mem_rss_mb" in m for m in training)
        return (details_markdown(view), plot_update(loss_frame(rows), "run"),
                memory_update(memory, cpu and view.run.estimate is not None), view.log, view.metrics)

    def show_run(run_id: int | None, others: list[int] | None) -> tuple:
        return views(run_id, others)[:-1]

    def selected(run_id: int | None, others: list[int] | None) -> tuple:
        """A new selection: its views, the newest raw metrics, its name and notes; old messages cleared."""
        try:
            run = studio.registry.get_run(int(run_id)) if run_id is not None else None
        except KeyError:
            run = None
        hidden = gr.update(visible=False)
        return (*show_run(run_id, others), *raw_page(studio, run_id, 0), "", run.name if run else "",
                run.notes if run else "", hidden, hidden)

    def listed(status: str | None, method: str | None, dataset: str | None) -> list[RunRecord]:
        return studio.list_runs(wanted(status), wanted(method), wanted(dataset))

    def refresh(run_id: int | None, others: list[int] | None, status: str | None, method: str | None,
                dataset: str | None, raw_back: int, waiting: int | None) -> tuple:
        try:
            runs = listed(status, method, dataset)  # once per tick: the table and both run lists come from it
        except Exception as e:  # noqa: BLE001 - the tab keeps what it shows and says why it cannot refresh
            skip = gr.skip()
            return (LIST_FAILED.format(error=esc(e)), skip, skip, skip, *show_run(run_id, others), skip, skip,
                    skip, skip, skip)
        choices = run_choices(runs)
        # The raw view follows the end only while its newest page is shown; an older page stays put.
        page = raw_page(studio, run_id, 0)[:2] if not raw_back else (gr.skip(), gr.skip())
        return (banner_markdown(studio), runs_table(runs, studio.latest_evaluations()), gr.update(choices=choices),
                gr.update(choices=choices), *show_run(run_id, others), *page, *queue_panel.queue_state(studio, waiting))

    def pick_row(evt: gr.SelectData) -> Any:
        run_id = selected_id(evt.row_value)
        return gr.update(value=run_id) if run_id is not None else gr.skip()

    def filtered(status: str | None, method: str | None, dataset: str | None, run_id: int | None) -> tuple:
        runs = listed(status, method, dataset)
        choices = filter_choices(studio)
        return (runs_table(runs, studio.latest_evaluations()), gr.update(choices=run_choices(runs)),
                gr.update(choices=choices["status"]), gr.update(choices=choices["method"]),
                gr.update(choices=choices["dataset"]))

    def do_stop(run_id: int | None) -> str:
        if run_id is None:
            return "Choose a run first."
        try:
            asked = studio.stop_run(int(run_id))
        except Exception as e:  # noqa: BLE001
            return failure_markdown(e)
        return ("⏹️ Stop requested: the run saves its result and ends." if asked
                else "That run is not running.")

    def do_resume(run_id: int | None) -> str:
        if run_id is None:
            return "Choose a run first."
        try:
            point = studio.resume_run(int(run_id))
        except Exception as e:  # noqa: BLE001
            return failure_markdown(e)
        return resume_markdown(int(run_id), point)

    def list_runs_json() -> str:
        return json.dumps([{"id": r.id, "name": r.name, "status": r.status, "step": r.step,
                            "total_steps": r.total_steps, "error": r.error, "attempt": r.attempt, "notes": r.notes}
                           for r in studio.list_runs()])

    def list_points() -> tuple[pd.DataFrame, list[dict]]:
        found = studio.memory.calibration_points()
        return calibration_table(found), found

    def page_by(step: int) -> Any:
        def handler(run_id: int | None, back: int) -> tuple:
            return raw_page(studio, run_id, max(0, int(back or 0) + step))
        return handler

    shown = [details, loss_plot, memory_plot, log]
    raw_outputs = [raw, raw_where, raw_older, older, newer]
    filters_in = [by_status, by_method, by_dataset]
    queue_outputs = [queue["table"], queue["chosen"], queue["empty"]]
    timer.tick(refresh, [chosen, compare, *filters_in, raw_older, queue["chosen"]],
               [banner, table, chosen, compare, *shown, raw, raw_where, *queue_outputs], api_visibility="private",
               show_progress="hidden")
    chosen.change(selected, [chosen, compare],
                  [*shown, *raw_outputs, action, manage["name"], manage["notes"], manage["confirm"], manage["keep"]],
                  api_visibility="private")
    compare.change(show_run, [chosen, compare], shown, api_visibility="private")
    table.select(pick_row, None, chosen, api_visibility="private")
    for box in filters_in:
        box.change(filtered, [*filters_in, chosen], [table, chosen, *filters_in], api_visibility="private")
    older.click(page_by(1), [chosen, raw_older], raw_outputs, api_visibility="private")
    newer.click(page_by(-1), [chosen, raw_older], raw_outputs, api_visibility="private")
    stop.click(do_stop, chosen, action, api_name="stop_run")
    resume.click(do_resume, chosen, action, api_name="resume_run")
    hidden = gr.Button(visible=False)
    listing = gr.Textbox(visible=False)
    hidden.click(list_runs_json, None, listing, api_name="list_runs")
    # For clients: the views and the whole metrics list of a run (the page itself shows one page of it).
    api_metrics = gr.Button(visible=False)
    api_metrics.click(views, [chosen, compare], [*shown, metrics_json], api_name="run_metrics")
    refresh_points.click(list_points, None, [points, points_json], api_name="calibration_points")
    calibration.expand(list_points, None, [points, points_json], api_visibility="private")
    return {"chosen": chosen, "evaluate": evaluate, "action": action, "queue": queue}
