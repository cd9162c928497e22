"""Assembles the studio's tabs into one Gradio app around a Studio engine."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.studio import Studio
from webui import chat_tab, compare_tab, datasets_tab, evaluate_tab, export_tab, runs_tab, train_tab
from webui.i18n import WITH_LOCALE_JS, language_switch, locale_probe, relabel_tabs, say, t, text

TITLE = "Fine-tuning Studio"
# CodeMirror sizes its line-number gutter from a line height it measured while the viewer was hidden (14 px), so the
# numbers drift from the lines; a gutter row as tall as a text line keeps them together (viewers here never wrap).
CSS = """
#studio-language { flex: 0 0 auto !important; align-self: center; }
#studio-language .wrap { flex-wrap: nowrap !important; }
.cm-editor .cm-gutterElement:not([style*="visibility: hidden"]) { height: auto !important; line-height: inherit; }
"""


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title=TITLE) as app:
        # One translated marker per string: Gradio's browser side replaces only the first one it finds.
        _probe, locale = locale_probe()
        with gr.Row(equal_height=True):
            gr.Markdown("# " + text("app_title"))
            switch = language_switch(app)
        gr.Markdown(f"{text('app_intro')} `{studio.paths.root}`")
        with gr.Tabs() as tabs:
            with gr.Tab(t("tab_datasets")):
                datasets = datasets_tab.build(studio, locale, switch)
            with gr.Tab(t("tab_train")) as train_page:
                train = train_tab.build(studio, locale, switch)
            with gr.Tab(t("tab_runs")) as runs_page:
                runs = runs_tab.build(studio, locale, switch)
            with gr.Tab(t("tab_compare"), id="compare") as compare_page:
                compare_tab.build(studio, compare_page.select, switch)
            with gr.Tab(t("tab_evaluate"), id="evaluate") as evaluate_page:
                evaluate = evaluate_tab.build(studio, locale, switch)
            with gr.Tab(t("tab_chat")) as chat_page:
                chat = chat_tab.build(studio, locale, switch)
            with gr.Tab(t("tab_export")) as export_page:
                export = export_tab.build(studio, locale, switch)
        relabel_tabs(app, switch)
        preview, preview_in, preview_out = datasets["preview"]
        app.load(preview, preview_in, preview_out, api_visibility="private", js=WITH_LOCALE_JS)
        # Lists that other tabs change are re-read when their tab opens.
        train_page.select(lambda: gr.update(choices=[d.name for d in studio.list_datasets()]), None,
                          train["form"]["dataset"], api_visibility="private")
        def open_runs(chosen: int | None, language: str | None = "en") -> Any:
            """The Runs tab opens on the run chosen before, else the newest."""
            found = studio.list_runs()
            return gr.update(choices=runs_tab.run_choices(found, language),
                             value=runs_tab.keep_or_newest(chosen, found))

        runs_page.select(open_runs, [runs["chosen"], locale], runs["chosen"], api_visibility="private",
                         js=WITH_LOCALE_JS)
        chat_page.select(lambda: gr.update(choices=studio.chat_choices()), None, chat["model"],
                         api_visibility="private")
        export_page.select(lambda: gr.update(choices=export["choices"]()), None, export["chosen"],
                           api_visibility="private")
        evaluate_page.select(lambda: (gr.update(choices=studio.eval_targets()),
                                      gr.update(choices=[d.name for d in studio.list_datasets()])), None,
                             [evaluate["target"], evaluate["dataset"]], api_visibility="private")

        def evaluate_run(run_id: int | None, language: str | None = "en") -> tuple:
            """The Runs tab's Evaluate: open the Evaluate tab with the run's best (else last) result and dataset."""
            if run_id is None:
                return say("manage_choose", language), gr.update(), gr.update(), gr.update()
            targets = studio.eval_targets()
            values = [v for _, v in targets]
            best, last = f"run:{int(run_id)}:best", f"run:{int(run_id)}"
            value = best if best in values else last if last in values else None
            if value is None:
                return say("rt_not_evaluable", language), gr.update(), gr.update(), gr.update()
            dataset = studio.run_view(int(run_id)).run.dataset
            return ("", gr.Tabs(selected="evaluate"), gr.update(choices=targets, value=value),
                    gr.update(value=dataset))

        runs["evaluate"].click(evaluate_run, [runs["chosen"], locale],
                               [runs["action"], tabs, evaluate["target"], evaluate["dataset"]],
                               api_visibility="private", js=WITH_LOCALE_JS)
    return app
