"""The Quick start panel at the top of the Train tab: the LLaVA recipe on shapes-qa with starter-vlm in one click,
with the build's progress and each stage's status as it goes."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.studio import Studio
from webui.i18n import t, text
from webui.messages import esc, failure_markdown

PROGRESS = gr.Progress()
STARTED = "🚀 Stage 1 started as run **{run}**. Stage 2 starts by itself when stage 1 completes."
STATUS_ICONS = {"queued": "⏳", "running": "⏳", "completed": "✅", "stopped": "⏹️", "failed": "❌",
                "failed_oom": "❌", "lost": "❌"}
STAGE_LINE = "- Stage {n} ({what}): run **{run}**, {icon} {status}{steps}"
WAITING = "- Stage 2 (LoRA): waits for stage 1 to complete"
NOT_STARTED = "- Stage 2 (LoRA): not started. {reason}"
DONE = ("\n\n**Done.** In **Chat**, choose run {run} and ask about a picture, e.g. *What colour is the "
        "shape?* (answers come in a word or two, like the dataset's).")
POLL_SECONDS = 3.0


def stage_line(n: int, what: str, stage: dict[str, Any]) -> str:
    steps = f", step {stage['step']} of {stage['total_steps']}" if stage["total_steps"] else ""
    line = STAGE_LINE.format(n=n, what=what, run=stage["run"], icon=STATUS_ICONS.get(stage["status"], ""),
                             status=stage["status"], steps=steps)
    if stage.get("error"):
        line += f": {esc(stage['error'].splitlines()[0])}"
    return line


def state_markdown(state: dict[str, Any]) -> str:
    """Each stage's run and status in words, and what to do once both are done."""
    lines = [stage_line(1, "projector", state["stage_1"])]
    if state["stage_2"]:
        lines.append(stage_line(2, "LoRA", state["stage_2"]))
    elif state["follow_up"] == "not_started":
        lines.append(NOT_STARTED.format(reason=esc(state["reason"] or "")))
    else:
        lines.append(WAITING)
    text = "\n".join(lines)
    if state["stage_2"] and state["stage_2"]["status"] == "completed":
        text += DONE.format(run=state["stage_2"]["run"])
    return text


def is_finished(state: dict[str, Any]) -> bool:
    second = state["stage_2"]
    return state["follow_up"] == "not_started" or bool(second and second["status"] not in ("queued", "running"))


def build(studio: Studio) -> dict[str, Any]:
    """The panel: what Quick start does, its button, and the stages' status (polled while they run)."""
    from core.models.starter.recipe import DOWNLOAD_MB

    with gr.Accordion(t("qs_title"), open=True):
        gr.Markdown(text("qs_intro"))
        gr.Markdown(f"{text('qs_download')} {DOWNLOAD_MB}")
        button = gr.Button(t("qs_button"), variant="primary", scale=0)
        status = gr.Markdown()
        stage_1 = gr.Number(visible=False, precision=0)
        timer = gr.Timer(POLL_SECONDS, active=False)

    def start(progress: gr.Progress = PROGRESS) -> tuple[str, Any, Any]:
        try:
            started = studio.quick_starts.start(lambda fraction, message: progress(fraction, desc=message))
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_markdown(e), None, gr.Timer(active=False)
        text = STARTED.format(run=started.stage_1_run) + "\n\n" + state_markdown(
            studio.quick_starts.state(started.stage_1_run))
        return text, started.stage_1_run, gr.Timer(active=True)

    def poll(run: float | None) -> tuple[str, Any]:
        if not run:
            return gr.update(), gr.Timer(active=False)
        state = studio.quick_starts.state(int(run))
        return state_markdown(state), gr.Timer(active=not is_finished(state))

    button.click(start, None, [status, stage_1, timer], api_name="quick_start")
    timer.tick(poll, stage_1, [status, timer], api_visibility="private", show_progress="hidden")
    return {"button": button, "status": status, "stage_1": stage_1, "timer": timer}
