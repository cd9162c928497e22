"""The Export tab: download a finished run's result as a zip, or merge a LoRA/QLoRA adapter into its base."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.datasets.limits import human_size
from core.export import MERGE_DTYPES, merge_refusal
from core.studio import Studio
from webui import chat_views as views
from webui.i18n import WITH_LOCALE_JS, say, t
from webui.messages import code, esc

PROGRESS = gr.Progress()  # the default Gradio replaces with a live progress bar per call


def about_markdown(run: Any, locale: str | None = "en") -> str:
    """The chosen run in one line: what it is, and whether its result can be merged into its base (or why not)."""
    why = merge_refusal(run.method)
    merge_line = (say("xt_mergeable", locale) if why is None
                  else say("xt_not_offered", locale, why=esc(views.merge_reason(run.method, why, locale))))
    return say("xt_about", locale, run=run.id, name=esc(run.name), method=esc(run.method), model=code(run.model),
               status=esc(views.status_word(run.status, locale)), merge=merge_line)


def zip_markdown(result: Any, locale: str | None = "en") -> str:
    return say("xt_zip_done", locale, name=code(result.path.name), files=len(result.files),
               size=human_size(result.size))


def merged_markdown(result: Any, locale: str | None = "en") -> str:
    return say("xt_merged", locale, dtype=esc(result.dtype), size=human_size(result.size), folder=code(result.folder))


def build(studio: Studio, locale: gr.Textbox | None = None, switch: gr.Radio | None = None) -> dict[str, Any]:
    """The Export tab; ``locale`` is the app's input that events fill with the page's language (WITH_LOCALE_JS),
    ``switch`` the language switch, after which the chosen run's line is drawn again in its language."""
    service = studio.exports
    if locale is None:
        locale = gr.Textbox("en", visible=False)
    gr.Markdown(t("ex_intro"))
    with gr.Row():
        chosen = gr.Dropdown(label=t("ex_run"), choices=service.choices(), value=None, scale=3,
                             allow_custom_value=True)
        refresh = gr.Button(t("ex_refresh"), scale=1)
    about = gr.Markdown(t("ex_pick_first"))
    with gr.Row():
        with gr.Column():
            gr.Markdown(t("ex_download"))
            make_zip = gr.Button(t("ex_make_zip"), variant="primary")
            download = gr.File(label=t("ex_zip"), interactive=False)
            zip_notice = gr.Markdown()
        with gr.Column():
            gr.Markdown(t("ex_merge"))
            dtype = gr.Radio(list(MERGE_DTYPES), value="fp32", label=t("ex_dtype"))
            merge = gr.Button(t("ex_merge_button"))
            merge_notice = gr.Markdown()
            zip_merged = gr.Button(t("ex_zip_merged"))
            merged_download = gr.File(label=t("ex_merged_zip"), interactive=False)
            merged_notice = gr.Markdown()

    def describe(run_id: str | None, language: str | None = "en") -> str:
        if not run_id:
            return say("ex_pick_first", language)
        try:
            run = service.finished_run(run_id)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return views.failure_text(e, language)
        return about_markdown(run, language)

    def zip_run(run_id: str | None, language: str | None = "en") -> tuple[str | None, str]:
        try:
            result = service.zip_result(run_id)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return None, views.failure_text(e, language)
        return str(result.path), zip_markdown(result, language)

    def merge_run(run_id: str | None, chosen_dtype: str, language: str | None = "en",
                  progress: gr.Progress = PROGRESS) -> str:
        progress(0, desc=say("xt_merging", language))
        try:
            result = service.merge(run_id, chosen_dtype)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return views.failure_text(e, language)
        return merged_markdown(result, language)

    def zip_merged_run(run_id: str | None, language: str | None = "en") -> tuple[str | None, str]:
        try:
            result = service.zip_merged(run_id)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return None, views.failure_text(e, language)
        return str(result.path), zip_markdown(result, language)

    # Every event that writes a message ends its inputs with the locale box (filled by WITH_LOCALE_JS); through the
    # API it is an optional last parameter (English when left out).
    page = {"js": WITH_LOCALE_JS}
    chosen.change(describe, [chosen, locale], about, api_visibility="private", **page)
    make_zip.click(zip_run, [chosen, locale], [download, zip_notice], api_name="export_zip", **page)
    merge.click(merge_run, [chosen, dtype, locale], merge_notice, api_name="export_merge", **page)
    zip_merged.click(zip_merged_run, [chosen, locale], [merged_download, merged_notice], api_name="export_merged_zip",
                     **page)
    if switch is not None:  # its value is the language chosen, so it stands in for the page's locale
        switch.change(describe, [chosen, switch], about, api_visibility="private", show_progress="hidden")
    refresh.click(lambda: gr.update(choices=service.choices()), None, chosen, api_name="export_runs")
    return {"chosen": chosen, "choices": service.choices}
