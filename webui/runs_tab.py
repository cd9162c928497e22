"""The Runs tab: every run from the registry (filtered, a row click opens it), live loss and memory charts, the log
tail, paged raw metrics, Stop, Resume, Evaluate, rename, notes, delete, and the job queue."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from core.store.registry import RunRecord
from core.studio import Studio
from webui import queue_panel, run_manage
from webui.i18n import WITH_LOCALE_JS, say, t
from webui.messages import esc
from webui.run_manage import ALL, filter_choices, wanted
from webui.runs_views import (
    CALIBRATION_WIDTHS,
    MB_PER_GB,
    banner_markdown,
    calibration_table,
    details_markdown,
    loss_frame,
    loss_rows,
    memory_frame,
    metrics_page_text,
    please_fix,
    resume_markdown,
    run_choices,
    runs_table,
    stop_markdown,
)

# What tests and the app import from here; the views live in webui/runs_views.py.
__all__ = ["MB_PER_GB", "banner_markdown", "build", "calibration_table", "keep_or_newest", "memory_frame",
           "raw_page", "resume_markdown", "run_choices", "runs_table", "selected_id"]
POLL_SECONDS = 2.0
RAW_LINES = 50  # lines of metrics.jsonl per page: the view never holds the whole file


def plot_update(frame: pd.DataFrame, colour: str) -> gr.LinePlot:
    """New data for a coloured plot, naming its series: the plot otherwise keeps the series it first saw."""
    return gr.LinePlot(value=frame, colors_in_legend=list(dict.fromkeys(frame[colour])))


def memory_update(frame: pd.DataFrame, cpu_estimate: bool = False) -> gr.LinePlot:
    """The memory plot's new data with its series named (see ``plot_update``) and a title saying what is drawn."""
    return gr.LinePlot(value=frame, colors_in_legend=list(dict.fromkeys(frame["series"])),
                       title=t("runs_memory_cpu_title") if cpu_estimate else t("runs_memory_title"))


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


def raw_page(studio: Studio, run_id: int | None, older: int, locale: str | None = "en"
             ) -> tuple[str, str, int, Any, Any]:
    """A page of the chosen run's metrics (``older`` pages back from the newest), the pager's state and buttons."""
    if run_id is None:
        return "", "", 0, gr.update(interactive=False), gr.update(interactive=False)
    try:
        page = studio.metrics_page(int(run_id), older, RAW_LINES)
    except KeyError:
        return "", "", 0, gr.update(interactive=False), gr.update(interactive=False)
    text, where = metrics_page_text(page, locale)
    return (text, where, page["older"], gr.update(interactive=page["has_older"]),
            gr.update(interactive=page["has_newer"]))


def build(studio: Studio, locale: gr.Textbox | None = None, switch: gr.Radio | None = None) -> dict[str, Any]:
    """The Runs tab; ``locale`` is the app's input that events fill with the page's language (WITH_LOCALE_JS),
    ``switch`` the language switch, after which the tab is drawn again in the language chosen."""
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
    if locale is None:
        locale = gr.Textbox("en", visible=False)  # filled with the page's language by WITH_LOCALE_JS
    manage = run_manage.build(studio, chosen, action, locale)
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
    queue = queue_panel.build(studio, locale)
    with gr.Accordion(t("runs_calibration"), open=False) as calibration:
        gr.Markdown(t("runs_calibration_help"))
        points = gr.Dataframe(lambda: calibration_table(studio.memory.calibration_points()), interactive=False,
                              wrap=True, label=t("runs_points"), column_widths=CALIBRATION_WIDTHS)
        refresh_points = gr.Button(t("runs_refresh"), size="sm")
        points_json = gr.JSON(visible=False)
    metrics_json = gr.JSON(visible=False)

    def views(run_id: int | None, others: list[int] | None, language: str | None = "en") -> tuple:
        """Details, both charts and the log of the chosen run (with the others' loss), and its metrics."""
        empty = (plot_update(loss_frame([]), "run"), memory_update(memory_frame([], locale=language)), "", [])
        if run_id is None:
            return ("", *empty)
        try:
            view = studio.run_view(int(run_id))
        except Exception as e:  # noqa: BLE001
            return (please_fix(e, language), *empty)
        rows = loss_rows(view.metrics, f"{view.run.id}: {view.run.name}", language)
        for other in others or []:
            if int(other) == int(run_id):
                continue
            try:
                o = studio.run_view(int(other))
            except KeyError:
                continue
            rows += loss_rows(o.metrics, f"{o.run.id}: {o.run.name}", language)
        training = [m for m in view.metrics if "loss" in m]  # eval lines carry no memory readings
        memory = memory_frame(training, view.run.estimate, view.run.total_steps, language)
        cpu = any("mem_rss_mb" in m for m in training)
        return (details_markdown(view, language), plot_update(loss_frame(rows), "run"),
                memory_update(memory, cpu and view.run.estimate is not None), view.log, view.metrics)

    def show_run(run_id: int | None, others: list[int] | None, language: str | None = "en") -> tuple:
        return views(run_id, others, language)[:-1]

    def selected(run_id: int | None, others: list[int] | None, language: str | None = "en") -> tuple:
        """A new selection: its views, the newest raw metrics, its name and notes; old messages cleared."""
        try:
            run = studio.registry.get_run(int(run_id)) if run_id is not None else None
        except KeyError:
            run = None
        hidden = gr.update(visible=False)
        return (*show_run(run_id, others, language), *raw_page(studio, run_id, 0, language), "",
                run.name if run else "", run.notes if run else "", hidden, hidden)

    def listed(status: str | None, method: str | None, dataset: str | None) -> list[RunRecord]:
        return studio.list_runs(wanted(status), wanted(method), wanted(dataset))

    def refresh(run_id: int | None, others: list[int] | None, status: str | None, method: str | None,
                dataset: str | None, raw_back: int, waiting: int | None, language: str | None = "en") -> tuple:
        try:
            runs = listed(status, method, dataset)  # once per tick: the table and both run lists come from it
        except Exception as e:  # noqa: BLE001 - the tab keeps what it shows and says why it cannot refresh
            skip = gr.skip()
            return (say("rt_list_failed", language, error=esc(e)), skip, skip, skip,
                    *show_run(run_id, others, language), skip, skip, skip, skip, skip)
        choices = run_choices(runs, language)
        # The raw view follows the end only while its newest page is shown; an older page stays put.
        page = raw_page(studio, run_id, 0, language)[:2] if not raw_back else (gr.skip(), gr.skip())
        return (banner_markdown(studio), runs_table(runs, studio.latest_evaluations(), language),
                gr.update(choices=choices), gr.update(choices=choices), *show_run(run_id, others, language), *page,
                *queue_panel.queue_state(studio, waiting, language))

    def pick_row(evt: gr.SelectData) -> Any:
        run_id = selected_id(evt.row_value)
        return gr.update(value=run_id) if run_id is not None else gr.skip()

    def filtered(status: str | None, method: str | None, dataset: str | None, run_id: int | None,
                 language: str | None = "en") -> tuple:
        runs = listed(status, method, dataset)
        choices = filter_choices(studio)
        return (runs_table(runs, studio.latest_evaluations(), language),
                gr.update(choices=run_choices(runs, language)), gr.update(choices=choices["status"]),
                gr.update(choices=choices["method"]), gr.update(choices=choices["dataset"]))

    def do_stop(run_id: int | None, language: str | None = "en") -> str:
        if run_id is None:
            return say("manage_choose", language)
        try:
            asked = studio.stop_run(int(run_id))
        except Exception as e:  # noqa: BLE001
            return please_fix(e, language)
        return stop_markdown(asked, language)

    def do_resume(run_id: int | None, language: str | None = "en") -> str:
        if run_id is None:
            return say("manage_choose", language)
        try:
            point = studio.resume_run(int(run_id))
        except Exception as e:  # noqa: BLE001
            return please_fix(e, language)
        return resume_markdown(int(run_id), point, language)

    def list_runs_json() -> str:
        return json.dumps([{"id": r.id, "name": r.name, "status": r.status, "step": r.step,
                            "total_steps": r.total_steps, "error": r.error, "attempt": r.attempt, "notes": r.notes}
                           for r in studio.list_runs()])

    def list_points() -> tuple[pd.DataFrame, list[dict]]:
        found = studio.memory.calibration_points()
        return calibration_table(found), found

    def page_by(step: int) -> Any:
        def handler(run_id: int | None, back: int, language: str | None = "en") -> tuple:
            return raw_page(studio, run_id, max(0, int(back or 0) + step), language)
        return handler

    shown = [details, loss_plot, memory_plot, log]
    raw_outputs = [raw, raw_where, raw_older, older, newer]
    filters_in = [by_status, by_method, by_dataset]
    queue_outputs = [queue["table"], queue["chosen"], queue["empty"]]
    # Every event that draws text ends its inputs with the locale box, which WITH_LOCALE_JS fills with the page's
    # language (the timer's included); through the API it is an optional last parameter (English when left out).
    page = {"js": WITH_LOCALE_JS}
    refresh_in = [chosen, compare, *filters_in, raw_older, queue["chosen"]]
    refresh_out = [banner, table, chosen, compare, *shown, raw, raw_where, *queue_outputs]
    timer.tick(refresh, [*refresh_in, locale], refresh_out, api_visibility="private", show_progress="hidden", **page)
    if switch is not None:  # its value is the language chosen, so it stands in for the page's locale
        switch.change(refresh, [*refresh_in, switch], refresh_out, api_visibility="private", show_progress="hidden")
    chosen.change(selected, [chosen, compare, locale],
                  [*shown, *raw_outputs, action, manage["name"], manage["notes"], manage["confirm"], manage["keep"]],
                  api_visibility="private", **page)
    compare.change(show_run, [chosen, compare, locale], shown, api_visibility="private", **page)
    table.select(pick_row, None, chosen, api_visibility="private")
    for box in filters_in:
        box.change(filtered, [*filters_in, chosen, locale], [table, chosen, *filters_in], api_visibility="private",
                   **page)
    older.click(page_by(1), [chosen, raw_older, locale], raw_outputs, api_visibility="private", **page)
    newer.click(page_by(-1), [chosen, raw_older, locale], raw_outputs, api_visibility="private", **page)
    stop.click(do_stop, [chosen, locale], action, api_name="stop_run", **page)
    resume.click(do_resume, [chosen, locale], action, api_name="resume_run", **page)
    hidden = gr.Button(visible=False)
    listing = gr.Textbox(visible=False)
    hidden.click(list_runs_json, None, listing, api_name="list_runs")
    # For clients: the views and the whole metrics list of a run (the page itself shows one page of it).
    api_metrics = gr.Button(visible=False)
    api_metrics.click(views, [chosen, compare, locale], [*shown, metrics_json], api_name="run_metrics", **page)
    refresh_points.click(list_points, None, [points, points_json], api_name="calibration_points")
    calibration.expand(list_points, None, [points, points_json], api_visibility="private")
    return {"chosen": chosen, "evaluate": evaluate, "action": action, "queue": queue, "locale": locale}
