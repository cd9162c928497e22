"""The Export tab: download a finished run's result as a zip, or merge a LoRA/QLoRA adapter into its base."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.datasets.limits import human_size
from core.export import MERGE_DTYPES, merge_refusal
from core.studio import Studio
from webui.i18n import t, text
from webui.messages import code, esc, failure_markdown

PROGRESS = gr.Progress()  # the default Gradio replaces with a live progress bar per call


def build(studio: Studio) -> dict[str, Any]:
    service = studio.exports
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

    def describe(run_id: str | None) -> str:
        if not run_id:
            return text("ex_pick_first")
        try:
            run = service.finished_run(run_id)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_markdown(e)
        why = merge_refusal(run.method)
        merge_line = "It can be merged into its base." if why is None else f"Merging: not offered — {esc(why)}."
        return (f"Run {run.id} **{esc(run.name)}**: {esc(run.method)} on {code(run.model)}, {esc(run.status)}. "
                f"{merge_line}")

    def zip_run(run_id: str | None) -> tuple[str | None, str]:
        try:
            result = service.zip_result(run_id)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return None, failure_markdown(e)
        return str(result.path), (f"✅ {code(result.path.name)}: {len(result.files)} files, "
                                  f"{human_size(result.size)}. Click the file above to download it.")

    def merge_run(run_id: str | None, chosen_dtype: str, progress: gr.Progress = PROGRESS) -> str:
        progress(0, desc="Loading the base in full precision and merging…")
        try:
            result = service.merge(run_id, chosen_dtype)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_markdown(e)
        return (f"✅ Merged model saved ({esc(result.dtype)}, {human_size(result.size)}):\n\n"
                f"{code(result.folder)}\n\nIt loads on its own with `from_pretrained`, processor included, and "
                "the Chat tab offers it. **Download the merged model as a zip** takes it away.")

    def zip_merged_run(run_id: str | None) -> tuple[str | None, str]:
        try:
            result = service.zip_merged(run_id)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return None, failure_markdown(e)
        return str(result.path), (f"✅ {code(result.path.name)}: {len(result.files)} files, "
                                  f"{human_size(result.size)}. Click the file above to download it.")

    chosen.change(describe, chosen, about, api_visibility="private")
    make_zip.click(zip_run, chosen, [download, zip_notice], api_name="export_zip")
    merge.click(merge_run, [chosen, dtype], merge_notice, api_name="export_merge")
    zip_merged.click(zip_merged_run, chosen, [merged_download, merged_notice], api_name="export_merged_zip")
    refresh.click(lambda: gr.update(choices=service.choices()), None, chosen, api_name="export_runs")
    return {"chosen": chosen, "choices": service.choices}
