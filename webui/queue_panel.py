"""The job queue panel of the Runs tab: the waiting runs in the order they start, and cancel, move, start now."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from core.studio import QueueView, Studio
from webui.messages import esc, failure_markdown

QUEUE_COLUMNS = ["place", "run", "name", "method", "dataset", "waiting because"]
EMPTY = "The queue is empty: every run has started."
CHOOSE = "Choose a waiting run first."
CANCELLED = "⏹️ Run {run_id} left the queue; it ends as stopped without having started."
NOT_WAITING = "Run {run_id} is not waiting in the queue (it has started or ended)."
MOVED = "Run {run_id} moved {where}."
AT_END = "Run {run_id} is already {end} of the queue."
STARTED_NOW = "🚀 Run {run_id} started beside the running ones: the memory estimate says they fit together."
STILL_WAITS = "⏳ Run {run_id} cannot start now: {reason}. It stays marked and starts as soon as it fits."
QUEUE_HELP = ("Runs wait here and start one at a time, in this order, whether or not the studio is open in a "
              "browser; the queue is kept in the database and resumes after a restart. A failed run does not "
              "hold up the ones after it.")


def queue_table(views: list[QueueView]) -> pd.DataFrame:
    rows = [{"place": v.place, "run": v.run.id, "name": v.run.name, "method": v.run.method,
             "dataset": v.run.dataset, "waiting because": v.waiting_reason + (" (start now asked)" if v.start_now
                                                                                else "")}
            for v in views]
    return pd.DataFrame(rows, columns=QUEUE_COLUMNS)


def queue_choices(views: list[QueueView]) -> list[tuple[str, int]]:
    return [(f"{v.place}. run {v.run.id}: {v.run.name}", v.run.id) for v in views]


def queue_action(studio: Studio, run_id: int | None, action: str) -> str:
    """One of "cancel", "up", "down", "start now" on a waiting run; the sentence saying what happened."""
    if run_id is None:
        return CHOOSE
    run_id = int(run_id)
    try:
        if action == "cancel":
            return CANCELLED.format(run_id=run_id) if studio.cancel_queued(run_id) else \
                NOT_WAITING.format(run_id=run_id)
        if action in ("up", "down"):
            offset = -1 if action == "up" else 1
            if studio.move_queued(run_id, offset):
                return MOVED.format(run_id=run_id, where="one place earlier" if offset < 0 else "one place later")
            return AT_END.format(run_id=run_id, end="at the front" if offset < 0 else "at the end")
        if action == "start now":
            reason = studio.start_queued_now(run_id)
            return STILL_WAITS.format(run_id=run_id, reason=esc(reason)) if reason else \
                STARTED_NOW.format(run_id=run_id)
    except KeyError:
        return NOT_WAITING.format(run_id=run_id)
    except Exception as e:  # noqa: BLE001 - shown to the person, not raised
        return failure_markdown(e)
    raise ValueError(f"unknown queue action {action!r}")


def queue_state(studio: Studio, chosen: int | None) -> tuple[pd.DataFrame, Any, str]:
    """The table, the waiting-run list (keeping the choice while it still waits) and the empty note."""
    views = studio.queue_entries()
    ids = [v.run.id for v in views]
    value = chosen if chosen in ids else (ids[0] if ids else None)
    return queue_table(views), gr.update(choices=queue_choices(views), value=value), "" if views else EMPTY


def build(studio: Studio) -> dict[str, Any]:
    with gr.Accordion("Job queue", open=True):
        gr.Markdown(QUEUE_HELP)
        table = gr.Dataframe(queue_table([]), interactive=False, wrap=True, label="Waiting runs")
        empty = gr.Markdown(EMPTY)
        with gr.Row():
            chosen = gr.Dropdown(label="Waiting run", choices=[], value=None, allow_custom_value=True)
            cancel = gr.Button("Cancel", variant="stop", size="sm")
            up = gr.Button("Move up", size="sm")
            down = gr.Button("Move down", size="sm")
            now = gr.Button("Start now", size="sm")
        said = gr.Markdown()

    def act(action: str) -> Any:
        def handler(run_id: int | None) -> tuple:
            message = queue_action(studio, run_id, action)
            return (message, *queue_state(studio, run_id))
        return handler

    outputs = [said, table, chosen, empty]
    for button, action, name in ((cancel, "cancel", "cancel_queued"), (up, "up", "move_queued_up"),
                                 (down, "down", "move_queued_down"), (now, "start now", "start_queued_now")):
        button.click(act(action), chosen, outputs, api_name=name)
    return {"table": table, "chosen": chosen, "empty": empty, "said": said}
