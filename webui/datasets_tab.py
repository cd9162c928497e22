"""The Datasets tab: inspect, validate and register a dataset; list, rename, delete; statistics and preview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.studio import Studio
from core.train_config import TINY_MODEL, TrainConfig
from webui import dataset_views as views
from webui.dataset_form import (
    AUTO,
    ENCODINGS,
    FORMATS,
    SLOTS,
    SLOTS_OF,
    build_sources,
    request_of,
    with_slot_parameters,
)
from webui.i18n import WITH_LOCALE_JS, say, t, text

THUMBNAIL_PX = 160
ROW_IMAGE_PX = 480
__all__ = ["SLOTS", "build"]
REQUIRED_OF = {f["name"]: f["required"] for f in FORMATS}
DEFAULT_MAX_LENGTH = next(f.default for f in TrainConfig.fields() if f.name == "max_length")
PROGRESS = gr.Progress()  # the default Gradio replaces with a live progress bar per call
COLOURS = {"trained": "#22c55e", "masked": "#e5e7eb", "cut": "#f87171"}


def format_menu(detected: str | None = None) -> list[tuple[str, str]]:
    title = next((f["title"] for f in FORMATS if f["name"] == detected), None)
    auto = f"{text('ds_detect_found')} {title}" if title else t("ds_detect")
    return [(auto, AUTO)] + [(f["title"], f["name"]) for f in FORMATS]


def slot_label(slot: str, required: bool = False) -> str:
    """A column dropdown's label: one translated part, then the slot's name (the browser translates one marker)."""
    return f"{text('ds_required_column_for' if required else 'ds_column_for')} '{slot}'"


def slot_updates(fmt: str | None, keys: list[str], columns: dict[str, str]) -> list[Any]:
    """One update per slot dropdown: the chosen format's slots shown with the file's columns, the others hidden."""
    shown = SLOTS_OF.get(fmt or "", [])
    required = REQUIRED_OF.get(fmt or "", [])
    updates = []
    for slot in SLOTS:
        if slot not in shown:
            updates.append(gr.update(visible=False, value=AUTO))
            continue
        choices = [(t("ds_no_column"), AUTO)] + [(k, k) for k in dict.fromkeys([*keys, columns.get(slot, AUTO)]) if k]
        label = slot_label(slot, slot in required)
        updates.append(gr.update(visible=True, choices=choices, value=columns.get(slot, AUTO), label=label))
    return updates


def names_update(studio: Studio, value: str | None = None) -> Any:
    names = [d.name for d in studio.list_datasets()]
    if value not in names:
        value = names[0] if names else None
    return gr.update(choices=names, value=value)


def _thumbnail(path: Path, size: int = THUMBNAIL_PX) -> Any:
    """A small RGB copy: the data directory itself is never served, so images go out through Gradio's cache."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        return img


def build(studio: Studio, locale: gr.Textbox, switch: gr.Radio | None = None) -> dict[str, Any]:
    """The Datasets tab; ``locale`` is the app's input that events fill with the page's language (WITH_LOCALE_JS),
    ``switch`` the language switch, after which the table and the row preview are drawn again in its language."""
    gr.Markdown(t("ds_add"))
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            source = build_sources()
            files, server_path = source.files, source.server_path
            name = gr.Textbox("", label=t("ds_name"), placeholder="my-dataset")
            inspect_button = gr.Button(t("ds_inspect"))
        with gr.Column(scale=1):
            inspection = gr.Markdown(t("ds_inspect_hint"))
    detected = gr.State({})
    registered = gr.State(False)  # whether the last Register succeeded (not part of the API's answer)
    with gr.Accordion(t("ds_format_group"), open=True):
        with gr.Row():
            fmt = gr.Dropdown(label=t("ds_format"), choices=format_menu(), value=AUTO,
                              info=t("ds_format_info"))
            data_file = gr.Textbox("", label=t("ds_data_file"),
                                   info=t("ds_data_file_info"))
            image_root = gr.Textbox("", label=t("ds_image_root"), info=t("ds_image_root_info"))
            encoding = gr.Dropdown(ENCODINGS, value="utf-8", label=t("ds_encoding"), allow_custom_value=True,
                                   info=t("ds_encoding_info"))
        with gr.Row():
            slot_boxes = [gr.Dropdown(label=slot_label(slot), choices=[(t("ds_no_column"), AUTO)], value=AUTO,
                                      visible=False, allow_custom_value=True) for slot in SLOTS]
        with gr.Row():
            eval_ratio = gr.Slider(0, 0.5, value=0, step=0.01, label=t("ds_eval_share"),
                                   info=t("ds_eval_share_info"))
            eval_path = gr.Textbox("", label=t("ds_eval_path"), info=t("ds_eval_path_info"))
            eval_file = gr.File(label=t("ds_eval_file"), file_count="single")
    with gr.Row():
        validate = gr.Button(t("ds_validate"))
        register = gr.Button(t("ds_register"), variant="primary")
    report = gr.Markdown()

    gr.Markdown(t("ds_registered"))
    table = gr.Dataframe(views.dataset_table(studio.list_datasets()), interactive=False, wrap=True,
                         column_widths=["12%", "8%", "6%", "5%", "7%", "8%", "26%", "18%", "10%"])
    with gr.Row(equal_height=True):
        names = [d.name for d in studio.list_datasets()]
        chosen = gr.Dropdown(label=t("ds_dataset"), choices=names, value=names[0] if names else None,
                             allow_custom_value=True, scale=2)
        new_name = gr.Textbox(label=t("ds_new_name"), scale=2)
        rename = gr.Button(t("ds_rename"), scale=1)
        delete = gr.Button(t("ds_delete"), variant="stop", scale=1)
        confirm = gr.Button(t("ds_really_delete"), variant="stop", visible=False, scale=1)
    action = gr.Markdown()

    gr.Markdown(t("ds_stats_heading"))
    with gr.Row(equal_height=True):
        model = gr.Dropdown(label=t("ds_model"), choices=[TINY_MODEL], value=TINY_MODEL, allow_custom_value=True,
                            info=t("ds_model_info"))
        max_length = gr.Number(label=t("ds_max_length"), value=DEFAULT_MAX_LENGTH, precision=0)
        compute = gr.Button(t("ds_compute"), variant="primary")
    with gr.Row(equal_height=False):
        stats_text = gr.Markdown(t("ds_stats_hint"))
        lengths = gr.BarPlot(None, x="tokens", y="rows", color="max length",
                             color_map={"fits": "#22c55e", "cut": "#f87171"}, title=t("ds_rows_by_length"),
                             x_title="tokens", height=280, sort=None, x_label_angle=-45)
    gallery = gr.Gallery(label=t("ds_rows"), columns=10, height=260, object_fit="contain", fit_columns=False)
    rows = gr.Dataframe(label=t("ds_conversations"), interactive=False, wrap=True,
                        headers=["row", "id", "images", "conversation"], max_height=300,
                        column_widths=["6%", "16%", "8%", "70%"])
    with gr.Row(equal_height=True):
        row = gr.Number(label=t("ds_row"), value=0, precision=0)
        previous = gr.Button(t("ds_previous"))
        following = gr.Button(t("ds_next"))
    row_text = gr.Markdown()
    with gr.Row(equal_height=False):
        row_images = gr.Gallery(label=t("ds_images"), columns=3, height=200, object_fit="contain", scale=1,
                                fit_columns=False)
        conversation = gr.Dataframe(label=t("ds_conversation"), headers=["role", "text"], interactive=False, wrap=True,
                                    scale=2)
    seen = gr.HighlightedText(label=t("ds_seen"), color_map=COLOURS, show_legend=True,
                              show_inline_category=False)
    legacy = gr.Button(visible=False)

    def listing(language: str | None = "en") -> pd.DataFrame:
        return views.dataset_table(studio.list_datasets(), language)

    def not_registered(e: BaseException, language: str | None) -> str:
        return f"{views.failure_text(e, language)}\n\n{say('ds_not_registered', language)}"

    hub = source.hub_inputs()
    sources = [files, server_path, data_file, fmt, image_root, eval_ratio, eval_path, eval_file, detected, encoding,
               *hub, *slot_boxes]
    inspect_inputs = [files, server_path, data_file, fmt, image_root, encoding, *hub]

    def do_inspect(paths: list[str] | None, path: str, data: str, chosen_format: str, root: str,
                   text_encoding: str = "utf-8", hub_id: str = "", config: str = "", split: str = "",
                   revision: str = "", row_limit: float = 0, stream: bool = False, kind: str = "",
                   locale: str | None = "en") -> tuple:
        request = request_of(paths, path, data, chosen_format, root, encoding=text_encoding,
                             hub=(hub_id, config, split, revision, row_limit, stream, kind))
        try:
            info = studio.inspect_dataset(request)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return (views.failure_text(e, locale), gr.update(choices=format_menu()), {},
                    *slot_updates(None, [], {}))
        found = info.get("format")
        state = {"format": found, "columns": dict(info.get("columns") or {})} if found else {}
        menu = format_menu(None if chosen_format else found)
        return (views.inspection_markdown(info, locale), gr.update(choices=menu),
                state, *slot_updates(chosen_format or found, info.get("keys") or [], info.get("columns") or {}))

    @with_slot_parameters
    def do_validate(paths: list[str] | None, path: str, data: str, chosen_format: str, root: str, ratio: float,
                    eval_text: str, eval_upload: str | None, found: dict, text_encoding: str = "utf-8",
                    hub_id: str = "", config: str = "", split: str = "", revision: str = "", row_limit: float = 0,
                    stream: bool = False, kind: str = "", progress: gr.Progress = PROGRESS, *slots: str,
                    locale: str | None = "en") -> str:
        try:
            request = request_of(paths, path, data, chosen_format, root, ratio, eval_text, eval_upload, found, slots,
                                 hub=(hub_id, config, split, revision, row_limit, stream, kind),
                                 encoding=text_encoding)
            summary = studio.validate_dataset(request, lambda f, m: progress(f, desc=m))
        except Exception as e:  # noqa: BLE001
            return views.failure_text(e, locale)
        return views.report_markdown(summary, locale=locale)

    @with_slot_parameters
    def do_import(paths: list[str] | None, path: str, data: str, dataset_name: str, chosen_format: str, root: str,
                  ratio: float, eval_text: str, eval_upload: str | None, found: dict, text_encoding: str = "utf-8",
                  hub_id: str = "", config: str = "", split: str = "", revision: str = "", row_limit: float = 0,
                  stream: bool = False, kind: str = "", progress: gr.Progress = PROGRESS,
                  *slots: str, locale: str | None = "en") -> tuple[str, pd.DataFrame, Any, bool]:
        try:
            request = request_of(paths, path, data, chosen_format, root, ratio, eval_text, eval_upload, found, slots,
                                 hub=(hub_id, config, split, revision, row_limit, stream, kind),
                                 encoding=text_encoding)
            record, summary = studio.register_dataset(request, dataset_name or "",
                                                      lambda f, m: progress(f, desc=m))
        except Exception as e:  # noqa: BLE001
            return not_registered(e, locale), listing(locale), gr.update(), False
        return (views.report_markdown(summary, record.name, locale), listing(locale),
                names_update(studio, record.name), True)

    def do_register(paths: list[str] | None, dataset_name: str,
                    locale: str | None = "en") -> tuple[str, pd.DataFrame, Any, bool]:
        try:
            record, summary = studio.register_upload([Path(p) for p in paths or []], dataset_name or "")
        except Exception as e:  # noqa: BLE001
            return not_registered(e, locale), listing(locale), gr.update(), False
        return (views.report_markdown(summary, record.name, locale), listing(locale),
                names_update(studio, record.name), True)

    def do_rename(current: str, wanted: str, locale: str | None = "en") -> tuple[str, pd.DataFrame, Any, str]:
        try:
            record = studio.rename_dataset(current or "", wanted or "")
        except Exception as e:  # noqa: BLE001
            return views.failure_text(e, locale), listing(locale), gr.update(), wanted
        return (say("ds_renamed", locale, old=views.esc(current), new=views.esc(record.name)), listing(locale),
                names_update(studio, record.name), "")

    def delete_prompt(current: str, locale: str | None = "en") -> tuple[Any, str]:
        """Ask before deleting, naming the runs that trained on the dataset (their results stay; resuming them or
        evaluating them on this dataset will not work any more)."""
        if not current:
            return gr.update(visible=False), say("ds_choose_first", locale)
        users = studio.dataset_users(current)
        parts = [say("ds_delete_ask", locale, name=views.esc(current))]
        if users:
            named = ", ".join(f"{r.id} ({views.esc(r.name)}, {r.status})" for r in users[:8])
            more = say("ds_delete_more", locale, n=len(users) - 8) if len(users) > 8 else ""
            parts.append(views.counted("ds_delete_users", len(users), locale, runs=named, more=more))
        parts.append(say("ds_delete_confirm", locale, button=say("ds_really_delete", locale)))
        return gr.update(visible=True), "\n\n".join(parts)

    def do_delete(current: str, locale: str | None = "en") -> tuple[str, pd.DataFrame, Any, Any]:
        try:
            record = studio.delete_dataset(current or "")
        except Exception as e:  # noqa: BLE001
            return views.failure_text(e, locale), listing(locale), gr.update(), gr.update(visible=False)
        return (say("ds_deleted", locale, name=views.esc(record.name), rows=views.counted("ds_n_row", record.rows,
                                                                                            locale)),
                listing(locale), names_update(studio), gr.update(visible=False))

    def do_stats(dataset_name: str, model_name: str, limit: float | None, progress: gr.Progress = PROGRESS,
                 locale: str | None = "en") -> tuple[str, Any]:
        try:
            stats = studio.dataset_stats(dataset_name or "", model_name or "", int(limit or 0),
                                         lambda f, m: progress(f, desc=m))
        except Exception as e:  # noqa: BLE001
            return views.failure_text(e, locale), None
        # A plain frame, always with both series: Gradio 6 draws nothing after a gr.BarPlot(...) update, or after
        # starting from an empty frame, and keeps the series a coloured plot first saw.
        return views.stats_markdown(stats, locale), views.histogram_frame(stats)

    def do_preview(dataset_name: str) -> tuple[list, pd.DataFrame]:
        if not dataset_name:
            return [], pd.DataFrame(columns=["row", "id", "images", "conversation"])
        try:
            folder, samples = studio.dataset_rows(dataset_name)
        except Exception:  # noqa: BLE001 - no toast: the row preview that follows says why, in the page
            return [], pd.DataFrame(columns=["row", "id", "images", "conversation"])
        pictures, table_rows = [], []
        for index, s in enumerate(samples):
            dialogue = "\n".join(f"{m.role}: {m.content}" for m in s.messages)
            for image in s.images[:1]:
                pictures.append((_thumbnail(folder / image), f"{index} · {s.id}: {s.messages[-1].content[:60]}"))
            table_rows.append({"row": index, "id": s.id, "images": len(s.images), "conversation": dialogue})
        return pictures, pd.DataFrame(table_rows, columns=["row", "id", "images", "conversation"])

    def do_row(dataset_name: str, index: float | None, model_name: str, limit: float | None,
               locale: str | None = "en") -> tuple:
        empty = ([], views.conversation_frame(None), [], "")
        if not dataset_name:
            return empty
        try:
            preview = studio.preview_row(dataset_name, int(index or 0), model_name or "", int(limit or 0))
        except Exception as e:  # noqa: BLE001
            return [], views.conversation_frame(None), [], views.failure_text(e, locale)
        pictures = [(_thumbnail(p, ROW_IMAGE_PX), p.name) for p in preview.images if p.is_file()]
        return (pictures, views.conversation_frame(preview), views.highlighted(preview),
                views.preview_info(preview, locale=locale))

    def on_load(_current: str | None, language: str | None = "en") -> tuple:
        update = names_update(studio)  # the newest dataset: the one just added, most likely
        return (update, listing(language), *do_preview(update["value"]),
                *do_row(update["value"], 0, TINY_MODEL, DEFAULT_MAX_LENGTH, language))

    def redraw(dataset_name: str, index: float | None, model_name: str, limit: float | None,
               language: str | None) -> tuple:
        """After a language switch: the table and the row preview in the language chosen."""
        return listing(language), *do_row(dataset_name, index, model_name, limit, language)

    def clear_uploads(done: bool) -> tuple[Any, Any]:
        """Once registered, the upload boxes empty, so the next Inspect reads the next files, not these."""
        return (gr.update(value=None), gr.update(value=None)) if done else (gr.update(), gr.update())

    def pick_row(event: gr.SelectData) -> int:
        return int(event.index[0]) if isinstance(event.index, (list, tuple)) else int(event.index)

    # Every event that draws a message ends its inputs with the locale box, which WITH_LOCALE_JS fills with the page's
    # language; through the API it is an optional last parameter (English when left out).
    page = {"js": WITH_LOCALE_JS}
    inspect_button.click(do_inspect, [*inspect_inputs, locale], [inspection, fmt, detected, *slot_boxes],
                         api_name="inspect_dataset", **page)
    fmt.input(do_inspect, [*inspect_inputs, locale], [inspection, fmt, detected, *slot_boxes],
              api_visibility="private", **page)
    validate.click(do_validate, [*sources, locale], [report], api_name="validate_dataset", **page)
    register.click(do_import, [files, server_path, data_file, name, fmt, image_root, eval_ratio, eval_path, eval_file,
                               detected, encoding, *hub, *slot_boxes, locale], [report, table, chosen, registered],
                   api_name="import_dataset", **page).then(clear_uploads, registered, [files, eval_file],
                                                           api_visibility="private")
    legacy.click(do_register, [files, name, locale], [report, table, chosen, registered], api_name="register_dataset",
                 **page).then(clear_uploads, registered, [files, eval_file], api_visibility="private")
    rename.click(do_rename, [chosen, new_name, locale], [action, table, chosen, new_name], api_name="rename_dataset",
                 **page)
    delete.click(delete_prompt, [chosen, locale], [confirm, action], api_name="delete_dataset_prompt", **page)
    confirm.click(do_delete, [chosen, locale], [action, table, chosen, confirm], api_name="delete_dataset", **page)
    compute.click(do_stats, [chosen, model, max_length, locale], [stats_text, lengths], api_name="dataset_stats",
                  **page)
    row_outputs = [row_images, conversation, seen, row_text]
    row_inputs = [chosen, row, model, max_length, locale]
    chosen.change(do_preview, chosen, [gallery, rows], api_name="preview_dataset").then(
        lambda: (0, text("ds_stats_hint"), None), None, [row, stats_text, lengths], api_visibility="private").then(
        do_row, row_inputs, row_outputs, api_visibility="private", **page)
    gr.on([row.submit, max_length.submit, model.input], do_row, row_inputs, row_outputs, api_name="preview_row",
          **page)
    previous.click(lambda i: max(int(i or 0) - 1, 0), row, row, api_visibility="private").then(
        do_row, row_inputs, row_outputs, api_visibility="private", **page)
    following.click(lambda i: int(i or 0) + 1, row, row, api_visibility="private").then(
        do_row, row_inputs, row_outputs, api_visibility="private", **page)
    rows.select(pick_row, None, row, api_visibility="private").then(
        do_row, row_inputs, row_outputs, api_visibility="private", **page)
    if switch is not None:  # its value is the language chosen, so it stands in for the page's locale
        switch.change(redraw, [chosen, row, model, max_length, switch], [table, *row_outputs],
                      api_visibility="private", show_progress="hidden")
    # The app loads it with WITH_LOCALE_JS, so the last input is the page's language.
    on_page_load = (on_load, [chosen, locale], [chosen, table, gallery, rows, *row_outputs])
    return {"chosen": chosen, "table": table, "preview": on_page_load}
