"""The job queue panel of the Runs tab: the waiting runs in the order they start, and cancel, move, start now."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from core.runs.queue_calls import QueueView
from core.studio import Studio
from webui.i18n import EN_STRINGS as EN
from webui.i18n import WITH_LOCALE_JS, say, t, text
from webui.messages import esc, failure_markdown

# The table's columns, the waiting reasons (from core) and failures stay English; the rest follows the page.
QUEUE_COLUMNS = ["place", "run", "name", "method", "dataset", "waiting because"]
CHOOSE = EN["queue_choose"]
NOT_WAITING = EN["queue_not_waiting"]


def queue_table(views: list[QueueView]) -> pd.DataFrame:
    rows = [{"place": v.place, "run": v.run.id, "name": v.run.name, "method": v.run.method,
             "dataset": v.run.dataset, "waiting because": v.waiting_reason + (" (start now asked)" if v.start_now
                                                                                else "")}
            for v in views]
    return pd.DataFrame(rows, columns=QUEUE_COLUMNS)


def queue_choices(views: list[QueueView]) -> list[tuple[str, int]]:
    return [(f"{v.place}. run {v.run.id}: {v.run.name}", v.run.id) for v in views]


def queue_action(studio: Studio, run_id: int | None, action: str, locale: str | None = "en") -> str:
    """One of "cancel", "up", "down", "start now" on a waiting run; the sentence saying what happened."""
    if run_id is None:
        return say("queue_choose", locale)
    run_id = int(run_id)
    not_waiting = say("queue_not_waiting", locale, run_id=run_id)
    try:
        if action == "cancel":
            return say("queue_cancelled", locale, run_id=run_id) if studio.cancel_queued(run_id) \
                else not_waiting
        if action in ("up", "down"):
            offset = -1 if action == "up" else 1
            if studio.move_queued(run_id, offset):
                return say("queue_moved_up" if offset < 0 else "queue_moved_down", locale, run_id=run_id)
            return say("queue_at_front" if offset < 0 else "queue_at_end", locale, run_id=run_id)
        if action == "start now":
            reason = studio.start_queued_now(run_id)
            if reason:
                return say("queue_still_waits", locale, run_id=run_id, reason=esc(reason))
            return say("queue_started_now", locale, run_id=run_id)
    except KeyError:
        return not_waiting
    except Exception as e:  # noqa: BLE001 - shown to the person, not raised
        return failure_markdown(e)
    raise ValueError(f"unknown queue action {action!r}")


def queue_state(studio: Studio, chosen: int | None) -> tuple[pd.DataFrame, Any, str]:
    """The table, the waiting-run list (keeping the choice while it still waits) and the empty note."""
    views = studio.queue_entries()
    ids = [v.run.id for v in views]
    value = chosen if chosen in ids else (ids[0] if ids else None)
    empty = "" if views else text("queue_empty")
    return queue_table(views), gr.update(choices=queue_choices(views), value=value), empty


def build(studio: Studio) -> dict[str, Any]:
    with gr.Accordion(t("queue_title"), open=True):
        gr.Markdown(t("queue_help"))
        table = gr.Dataframe(queue_table([]), interactive=False, wrap=True, label=t("queue_table"))
        empty = gr.Markdown(t("queue_empty"))
        with gr.Row():
            chosen = gr.Dropdown(label=t("queue_chosen"), choices=[], value=None, allow_custom_value=True)
            cancel = gr.Button(t("queue_cancel"), variant="stop", size="sm")
            up = gr.Button(t("queue_up"), size="sm")
            down = gr.Button(t("queue_down"), size="sm")
            now = gr.Button(t("queue_start_now"), size="sm")
        said = gr.Markdown()
        locale = gr.Textbox("en", visible=False)  # filled with the page's language by WITH_LOCALE_JS

    def act(action: str) -> Any:
        def handler(run_id: int | None, language: str | None = "en") -> tuple:
            message = queue_action(studio, run_id, action, language)
            return (message, *queue_state(studio, run_id))
        return handler

    outputs = [said, table, chosen, empty]
    for button, action, name in ((cancel, "cancel", "cancel_queued"), (up, "up", "move_queued_up"),
                                 (down, "down", "move_queued_down"), (now, "start now", "start_queued_now")):
        button.click(act(action), [chosen, locale], outputs, api_name=name, js=WITH_LOCALE_JS)
    return {"table": table, "chosen": chosen, "empty": empty, "said": said}
