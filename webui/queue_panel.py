"""The job queue panel of the Runs tab: the waiting runs and evaluations in the order they start, and cancel, move,
start now."""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from core.runs.queue_calls import QueueView
from core.store.registry import EvalRecord
from core.studio import Studio
from webui.i18n import EN_STRINGS as EN
from webui.i18n import WITH_LOCALE_JS, say, t, text
from webui.messages import esc
from webui.queue_reasons import wait_reason
from webui.runs_views import please_fix

# The table's columns and core's failures stay English; the waiting reasons core words in fixed sentences and the
# rest follow the page.
QUEUE_COLUMNS = ["place", "run", "name", "method", "dataset", "waiting because"]
# Fixed shares let the long waiting reason wrap inside its column instead of widening the table past the page.
QUEUE_WIDTHS = ["5%", "11%", "16%", "10%", "10%", "48%"]
CHOOSE = EN["queue_choose"]
NOT_WAITING = EN["queue_not_waiting"]


def evaluation_target(job: EvalRecord, locale: str | None = "en") -> str:
    """What a waiting evaluation scores: a run's result, or a base model."""
    if job.run_id:
        return say("rt_queue_eval_of_run", locale, run_id=job.run_id, result=job.result)
    return job.model


def queue_table(views: list[QueueView], locale: str | None = "en") -> pd.DataFrame:
    asked = say("rt_start_now_asked", locale)
    rows = []
    for v in views:
        why = wait_reason(v.waiting_reason, locale)
        if v.kind == "eval":  # every waiting evaluation starts as soon as it fits: nothing was asked
            rows.append({"place": v.place, "run": say("rt_queue_eval", locale, eval_id=v.job.id),
                         "name": evaluation_target(v.job, locale), "method": say("rt_queue_eval_method", locale),
                         "dataset": v.job.dataset, "waiting because": why})
            continue
        rows.append({"place": v.place, "run": v.run.id, "name": v.run.name, "method": v.run.method,
                     "dataset": v.run.dataset, "waiting because": why + (asked if v.start_now else "")})
    return pd.DataFrame(rows, columns=QUEUE_COLUMNS)


def choice_value(view: QueueView) -> int | str:
    """A waiting run is chosen by its id, a waiting evaluation by "eval:<id>" (the ids are counted apart)."""
    return f"eval:{view.job.id}" if view.kind == "eval" else view.job.id


def queue_choices(views: list[QueueView], locale: str | None = "en") -> list[tuple[str, int | str]]:
    return [(say("rt_queue_eval_choice", locale, place=v.place, eval_id=v.job.id,
                 target=evaluation_target(v.job, locale), dataset=v.job.dataset) if v.kind == "eval" else
             say("rt_queue_choice", locale, place=v.place, run_id=v.run.id, name=v.run.name), choice_value(v))
            for v in views]


def evaluation_action(studio: Studio, eval_id: int, action: str, locale: str | None) -> str:
    not_waiting = say("rt_queue_eval_not_waiting", locale, eval_id=eval_id)
    if action == "cancel":
        done = studio.cancel_queued(eval_id, kind="eval")
        return say("rt_queue_eval_cancelled", locale, eval_id=eval_id) if done else not_waiting
    if action in ("up", "down"):
        offset = -1 if action == "up" else 1
        if studio.move_queued(eval_id, offset, kind="eval"):
            return say("rt_queue_eval_moved_up" if offset < 0 else "rt_queue_eval_moved_down", locale,
                       eval_id=eval_id)
        return say("rt_queue_eval_at_front" if offset < 0 else "rt_queue_eval_at_end", locale, eval_id=eval_id)
    if action == "start now":
        if studio.queue_place(eval_id, "eval") is None:
            return not_waiting
        return say("rt_queue_eval_starts_when_it_fits", locale, eval_id=eval_id)
    raise ValueError(f"unknown queue action {action!r}")


def queue_action(studio: Studio, run_id: int | str | None, action: str, locale: str | None = "en") -> str:
    """One of "cancel", "up", "down", "start now" on a waiting run (its id) or evaluation ("eval:<id>"); the
    sentence saying what happened."""
    if run_id is None or run_id == "":
        return say("queue_choose", locale)
    if str(run_id).startswith("eval:"):
        try:
            return evaluation_action(studio, int(str(run_id).removeprefix("eval:")), action, locale)
        except KeyError:
            return say("rt_queue_eval_not_waiting", locale, eval_id=str(run_id).removeprefix("eval:"))
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return please_fix(e, locale)
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
                return say("queue_still_waits", locale, run_id=run_id, reason=esc(wait_reason(reason, locale)))
            return say("queue_started_now", locale, run_id=run_id)
    except KeyError:
        return not_waiting
    except Exception as e:  # noqa: BLE001 - shown to the person, not raised
        return please_fix(e, locale)
    raise ValueError(f"unknown queue action {action!r}")


def queue_state(studio: Studio, chosen: int | str | None, locale: str | None = "en"
                ) -> tuple[pd.DataFrame, Any, str]:
    """The table, the waiting-job list (keeping the choice while it still waits) and the empty note."""
    views = studio.queue_entries()
    ids = [choice_value(v) for v in views]
    value = chosen if chosen in ids else (ids[0] if ids else None)
    empty = "" if views else text("queue_empty")
    return queue_table(views, locale), gr.update(choices=queue_choices(views, locale), value=value), empty


def build(studio: Studio, locale: gr.Textbox | None = None) -> dict[str, Any]:
    """The panel; its buttons fill ``locale`` (the app's, else one of its own) with the page's language."""
    with gr.Accordion(t("queue_title"), open=True):
        gr.Markdown(t("queue_help"))
        table = gr.Dataframe(queue_table([]), interactive=False, wrap=True, label=t("queue_table"),
                             column_widths=QUEUE_WIDTHS)
        empty = gr.Markdown(t("queue_empty"))
        with gr.Row():
            chosen = gr.Dropdown(label=t("queue_chosen"), choices=[], value=None, allow_custom_value=True)
            cancel = gr.Button(t("queue_cancel"), variant="stop", size="sm")
            up = gr.Button(t("queue_up"), size="sm")
            down = gr.Button(t("queue_down"), size="sm")
            now = gr.Button(t("queue_start_now"), size="sm")
        said = gr.Markdown()
        if locale is None:
            locale = gr.Textbox("en", visible=False)  # filled with the page's language by WITH_LOCALE_JS

    def act(action: str) -> Any:
        def handler(run_id: int | str | None, language: str | None = "en") -> tuple:
            message = queue_action(studio, run_id, action, language)
            return (message, *queue_state(studio, run_id, language))
        return handler

    outputs = [said, table, chosen, empty]
    for button, action, name in ((cancel, "cancel", "cancel_queued"), (up, "up", "move_queued_up"),
                                 (down, "down", "move_queued_down"), (now, "start now", "start_queued_now")):
        button.click(act(action), [chosen, locale], outputs, api_name=name, js=WITH_LOCALE_JS)
    return {"table": table, "chosen": chosen, "empty": empty, "said": said}
