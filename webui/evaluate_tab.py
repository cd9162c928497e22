"""The Evaluate tab: score a base or a run's result (beside its base) on any dataset, follow the job, and see where
fine-tuning helped: the before/after table, the per-sample view sortable by score and improvement, CSV export."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from core.evals.config import EvalConfig
from core.evals.results import SAMPLE_METRICS, SORTS, sample_rows
from core.evals.service import eval_command
from core.runs.launcher import shell_text
from core.studio import Studio
from core.train_config import TINY_MODEL
from webui.datasets_tab import _thumbnail
from webui.eval_views import (
    before_after_frame,
    eval_choices,
    evaluations_table,
    failure_text,
    metric_label,
    problems_text,
    progress_html,
    sample_markdown,
    samples_frame,
)
from webui.form import component_for
from webui.i18n import WITH_LOCALE_JS, say, t
from webui.messages import esc
from webui.queue_reasons import wait_reason

POLL_SECONDS = 2.0
SETTINGS = [f for f in EvalConfig.fields() if f.name not in ("run_id", "result", "model", "dataset")]


def build(studio: Studio, locale: gr.Textbox, switch: gr.Radio | None = None) -> dict[str, Any]:
    """The Evaluate tab; ``locale`` is the app's input that events fill with the page's language (WITH_LOCALE_JS),
    ``switch`` the language switch, after which the list and the evaluation shown are drawn again in its language."""
    gr.Markdown(t("ev_intro"))
    with gr.Row():
        target = gr.Dropdown(label=t("ev_target"), choices=studio.eval_targets(), value=TINY_MODEL, scale=3,
                             allow_custom_value=True, info=t("ev_target_info"))
        dataset = gr.Dropdown(label=t("ev_dataset"), choices=[d.name for d in studio.list_datasets()], value="sample",
                              scale=2, allow_custom_value=True)
        refresh_lists = gr.Button(t("ev_refresh"), scale=1)
    with gr.Row(equal_height=False):
        settings = [component_for(f, "eval") for f in SETTINGS]
    with gr.Row():
        check = gr.Button(t("ev_check"))
        start = gr.Button(t("ev_start"), variant="primary")
    notice = gr.Markdown()
    command = gr.Textbox(label=t("ev_command"), interactive=False, lines=2)

    gr.Markdown(t("ev_heading"))
    table = gr.Dataframe(evaluations_table(studio.list_evaluations()), interactive=False, wrap=True)
    with gr.Row():
        chosen = gr.Dropdown(label=t("ev_evaluation"), choices=eval_choices(studio.list_evaluations()), value=None,
                             scale=3,
                             allow_custom_value=True)
        stop = gr.Button(t("ev_stop"), variant="stop", scale=1)
    progress = gr.HTML()
    details = gr.Markdown(t("ev_pick_first"))
    gr.Markdown(t("ev_before_after"))
    before_after = gr.Dataframe(before_after_frame(None), interactive=False, label=t("ev_per_metric"))
    gr.Markdown(t("ev_per_sample"))
    with gr.Row():
        metric = gr.Dropdown(label=t("ev_score"), choices=[(t(f"et_metric_{m}"), m) for m in SAMPLE_METRICS],
                             value="rouge_l")
        order = gr.Dropdown(label=t("ev_sort"), choices=[(t(f"ev_sort_{i}"), s) for i, s in enumerate(SORTS)],
                            value=SORTS[0])
        with gr.Column():
            export = gr.Button(t("ev_export"))
            export_notice = gr.Markdown()
        csv_file = gr.File(label="CSV", interactive=False, visible=False)
    samples = gr.Dataframe(samples_frame([]), interactive=False, wrap=True, max_height=420,
                           label=t("ev_samples"))
    with gr.Row(equal_height=False):
        image = gr.Image(label=t("ev_image"), type="pil", interactive=False, height=220, scale=1)
        sample = gr.Markdown(t("ev_click_row"))
    shown_rows = gr.State([])
    seen = gr.State(None)  # (id, status, step) last drawn, so polling redraws only what changed

    def form_settings(values: tuple) -> dict[str, Any]:
        return {f.name: v for f, v in zip(SETTINGS, values, strict=True)}

    # Every event that draws a message ends its inputs with the locale box (its value comes last in *values), which
    # WITH_LOCALE_JS fills with the page's language; through the API it is an optional last parameter (English).
    def do_check(tgt: str, ds: str, *values: Any) -> tuple[str, str]:
        *values, language = values
        config, problems = studio.check_evaluation(tgt, {"dataset": ds, **form_settings(tuple(values))})
        text = problems_text(problems, language) if problems else say("et_ready", language)
        return text, shell_text(eval_command(config, studio.paths.root))

    def do_start(tgt: str, ds: str, *values: Any) -> tuple[str, str, Any]:
        *values, language = values
        try:
            eval_id, waits = studio.submit_evaluation(tgt, {"dataset": ds, **form_settings(tuple(values))})
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_text(e, language), "", gr.update()
        view = studio.evaluation_view(eval_id)
        said = say("et_queued", language, eval_id=eval_id, reason=esc(wait_reason(waits, language))) if waits \
            else say("et_started", language, eval_id=eval_id)
        return (said, view.command,
                gr.update(choices=eval_choices(studio.list_evaluations(), language), value=eval_id))

    def draw(eval_id: int | None, score: str, sort: str, language: str | None = "en") -> tuple:
        if eval_id is None:
            return ("", say("ev_pick_first", language), before_after_frame(None), samples_frame([]), [], None)
        try:
            view = studio.evaluation_view(int(eval_id))
        except Exception as e:  # noqa: BLE001
            return "", failure_text(e, language), before_after_frame(None), samples_frame([]), [], None
        rows = sample_rows(view.results, score, sort)
        r = view.record
        text = f"{say('et_headless', language)}\n```\n{view.command}\n```"
        if r.error:  # the job's own words, as it wrote them
            text = f"{say('et_error', language)}\n```\n{r.error}\n```\n\n" + text
        if view.summary and not view.summary.get("complete", True):
            text = say("et_partial", language) + "\n\n" + text
        return (progress_html(r, language), text, before_after_frame(view.summary, language), samples_frame(rows),
                rows, (r.id, r.status, r.step))

    def poll(eval_id: int | None, score: str, sort: str, last: Any, language: str | None = "en") -> tuple:
        records = studio.list_evaluations()
        choices = eval_choices(records, language)
        current = next((e for e in records if eval_id is not None and e.id == int(eval_id)), None)
        state = (current.id, current.status, current.step) if current else None
        if state is not None and last is not None and tuple(last) == state:
            return (evaluations_table(records, language), gr.update(choices=choices),
                    progress_html(current, language), *(gr.skip(),) * 5)
        return (evaluations_table(records, language), gr.update(choices=choices),
                *draw(eval_id, score, sort, language))

    def redraw(eval_id: int | None, score: str, sort: str, language: str | None) -> tuple:
        """After a language switch: the list and the evaluation shown, in the language chosen."""
        return poll(eval_id, score, sort, None, language)

    def do_stop(eval_id: int | None, language: str | None = "en") -> str:
        if eval_id is None:
            return say("et_choose_first", language)
        try:
            asked = studio.stop_evaluation(int(eval_id))
        except Exception as e:  # noqa: BLE001
            return failure_text(e, language)
        return say("et_stop_asked" if asked else "et_not_running", language)

    def pick(rows: list[dict], score: str, language: str | None, evt: gr.SelectData) -> tuple:
        index = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not rows or index is None or index >= len(rows):
            return None, sample_markdown(None, "", language)
        row = rows[index]
        picture = next((studio.dataset_image(p) for p in row.get("images", []) if studio.dataset_image(p)), None)
        return ((_thumbnail(picture, 320) if picture else None),
                sample_markdown(row, metric_label(score, language), language))

    def do_export(eval_id: int | None, score: str, sort: str, language: str | None = "en") -> tuple[Any, str]:
        if eval_id is None:
            return gr.update(visible=False), say("et_choose_first", language)
        try:
            path = studio.evals.export_csv(int(eval_id), score, sort)
        except Exception as e:  # noqa: BLE001
            return gr.update(visible=False), failure_text(e, language)
        return gr.update(value=str(path), visible=True), say("et_exported", language, name=path.name)

    def results_json(eval_id: int) -> str:
        view = studio.evaluation_view(int(eval_id))
        return json.dumps({"status": view.record.status, "step": view.record.step,
                           "total_steps": view.record.total_steps, "error": view.record.error,
                           "summary": view.summary, "command": view.command})

    def list_json() -> str:
        return json.dumps([{"id": e.id, "run_id": e.run_id, "status": e.status, "step": e.step,
                            "total_steps": e.total_steps, "error": e.error} for e in studio.list_evaluations()])

    page = {"js": WITH_LOCALE_JS}
    inputs = [target, dataset, *settings, locale]
    shown_by = [chosen, metric, order, locale]
    views = [progress, details, before_after, samples, shown_rows, seen]
    check.click(do_check, inputs, [notice, command], api_name="check_evaluation", **page)
    start.click(do_start, inputs, [notice, command, chosen], api_name="start_evaluation", **page)
    stop.click(do_stop, [chosen, locale], notice, api_name="stop_evaluation", **page)
    chosen.change(draw, shown_by, views, api_name="evaluation_results", **page)
    metric.change(draw, shown_by, views, api_visibility="private", **page)
    order.change(draw, shown_by, views, api_visibility="private", **page)
    gr.Timer(POLL_SECONDS).tick(poll, [chosen, metric, order, seen, locale], [table, chosen, *views],
                                api_visibility="private", show_progress="hidden", **page)
    samples.select(pick, [shown_rows, metric, locale], [image, sample], api_visibility="private", **page)
    export.click(do_export, shown_by, [csv_file, export_notice], api_name="export_evaluation_csv", **page)
    if switch is not None:  # its value is the language chosen, so it stands in for the page's locale
        switch.change(redraw, [chosen, metric, order, switch], [table, chosen, *views], api_visibility="private",
                      show_progress="hidden")
    refresh_lists.click(lambda: (gr.update(choices=studio.eval_targets()),
                                 gr.update(choices=[d.name for d in studio.list_datasets()])),
                        None, [target, dataset], api_name="evaluation_targets")
    hidden = gr.Button(visible=False)
    listing, picked, result = gr.Textbox(visible=False), gr.Number(visible=False), gr.Textbox(visible=False)
    hidden.click(list_json, None, listing, api_name="list_evaluations")
    picked.change(results_json, picked, result, api_name="evaluation_json")
    return {"target": target, "dataset": dataset}
