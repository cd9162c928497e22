"""The Datasets tab: upload and register a dataset, list registered ones, preview rows with thumbnails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from core.studio import Studio
from webui.messages import failure_markdown, problems_markdown

THUMBNAIL_PX = 160


def dataset_table(studio: Studio) -> pd.DataFrame:
    rows = [{"name": d.name, "format": d.format, "rows": d.rows, "images": d.images,
             "excluded": d.summary.get("rows_excluded", 0), "source": Path(d.source).name}
            for d in studio.list_datasets()]
    return pd.DataFrame(rows, columns=["name", "format", "rows", "images", "excluded", "source"])


def report_markdown(name: str, summary: dict) -> str:
    lines = [
        f"✅ Registered **{name}**: {summary['rows_kept']} rows, {summary['images']} images "
        f"(format: {summary['format']} — {summary['format_reason']}).",
        f"Images were resolved against `{summary['image_root']}`." if summary.get("image_root") else "",
    ]
    if summary.get("rows_excluded"):
        lines.append(f"\n⚠️ {summary['rows_excluded']} of {summary['rows_total']} rows were excluded:")
    from core.problems import Problem

    problems = [Problem(**p) for p in summary.get("problems", [])]
    if problems:
        lines.append(problems_markdown(problems, title=f"{summary.get('problem_count', len(problems))} problems"))
    return "\n".join(line for line in lines if line)


def build(studio: Studio) -> dict[str, Any]:
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown("### Add a dataset\nA LLaVA-format JSON with its images: a zip, or the JSON and the image "
                        "files together.")
            files = gr.File(label="Dataset files", file_count="multiple")
            name = gr.Textbox(label="Name", placeholder="my-dataset")
            register = gr.Button("Validate and register", variant="primary")
            report = gr.Markdown()
        with gr.Column(scale=2):
            gr.Markdown("### Registered datasets")
            table = gr.Dataframe(value=lambda: dataset_table(studio), interactive=False)
            chosen = gr.Dropdown(label="Preview", choices=[d.name for d in studio.list_datasets()],
                                 value="sample", allow_custom_value=True)
            gallery = gr.Gallery(label="Rows", columns=4, height="auto", object_fit="contain")
            rows = gr.Dataframe(label="Conversations", interactive=False, wrap=True,
                                headers=["id", "images", "conversation"])

    def do_register(paths: list[str] | None, dataset_name: str) -> tuple[str, pd.DataFrame, Any]:
        try:
            record, summary = studio.register_upload([Path(p) for p in paths or []], dataset_name or "")
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_markdown(e), dataset_table(studio), gr.update()
        names = [d.name for d in studio.list_datasets()]
        return report_markdown(record.name, summary), dataset_table(studio), gr.update(choices=names,
                                                                                      value=record.name)

    def do_preview(dataset_name: str) -> tuple[list, pd.DataFrame]:
        if not dataset_name:
            return [], pd.DataFrame()
        try:
            folder, samples = studio.dataset_rows(dataset_name)
        except Exception as e:  # noqa: BLE001
            raise gr.Error(failure_markdown(e)) from e
        pictures, table_rows = [], []
        for s in samples:
            dialogue = "\n".join(f"{m.role}: {m.content}" for m in s.messages)
            for image in s.images[:1]:
                pictures.append((_thumbnail(folder / image), f"{s.id}: {s.messages[-1].content[:60]}"))
            table_rows.append({"id": s.id, "images": len(s.images), "conversation": dialogue})
        return pictures, pd.DataFrame(table_rows)

    register.click(do_register, [files, name], [report, table, chosen], api_name="register_dataset")
    chosen.change(do_preview, chosen, [gallery, rows], api_name="preview_dataset")
    return {"chosen": chosen, "table": table, "preview": (do_preview, [chosen], [gallery, rows])}


def _thumbnail(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        return img
