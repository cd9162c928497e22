"""Managing a run from the Runs tab: rename, notes, and delete with a confirmation naming what goes."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.runs.deletion import DeletionPlan
from core.studio import Studio
from webui.i18n import EN_STRINGS as EN
from webui.i18n import WITH_LOCALE_JS, say, t
from webui.messages import code, esc
from webui.runs_views import please_fix

ALL = "all"  # the filters' "any" value (its label is translated); core's failures stay English
CHOOSE = EN["manage_choose"]


def size_text(count: int, locale: str | None = "en") -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return say("rt_bytes", locale, count=count)


def confirmation_markdown(plan: DeletionPlan, locale: str | None = "en") -> str:
    """The confirmation: the folder and its size, the checkpoints, the evaluations, and what is kept."""
    lines = [say("manage_confirm_title", locale, run_id=plan.run_id, name=esc(plan.name)), ""]
    if plan.folder and plan.folder.deletable:
        lines.append(say("manage_folder", locale, path=code(plan.folder.path),
                         size=size_text(plan.folder.bytes, locale)))
    else:
        lines.append(say("manage_record_only", locale))
    if plan.checkpoints:
        lines.append(say("manage_checkpoints", locale, count=len(plan.checkpoints),
                         names=", ".join(code(c) for c in plan.checkpoints)))
    else:
        lines.append(say("manage_no_checkpoints", locale))
    for eval_id, folder in plan.evaluations:
        if folder and folder.deletable:
            lines.append(say("manage_evaluation_in", locale, eval_id=eval_id, path=code(folder.path),
                             size=size_text(folder.bytes, locale)))
        else:
            lines.append(say("manage_evaluation", locale, eval_id=eval_id))
    if not plan.evaluations:
        lines.append(say("manage_no_evaluations", locale))
    if plan.waiting_in_queue:
        lines.append(say("manage_queue_place", locale))
    lines += ["", say("manage_total", locale, size=size_text(plan.total_bytes, locale))]
    lines += [f"\n⚠️ {esc(note)}" for note in plan.notes]
    return "\n".join(lines)


def filter_choices(studio: Studio) -> dict[str, list[Any]]:
    return {key: [(t("runs_filter_all"), ALL), *values] for key, values in studio.run_filters().items()}


def wanted(value: str | None) -> str | None:
    return None if not value or value == ALL else value


def rename(studio: Studio, run_id: int | None, name: str, locale: str | None = "en") -> str:
    if run_id is None:
        return say("manage_choose", locale)
    try:
        run = studio.rename_run(int(run_id), name)
    except Exception as e:  # noqa: BLE001
        return please_fix(e, locale)
    return say("manage_renamed", locale, run_id=run.id, name=esc(run.name))


def save_notes(studio: Studio, run_id: int | None, notes: str, locale: str | None = "en") -> str:
    if run_id is None:
        return say("manage_choose", locale)
    try:
        studio.set_run_notes(int(run_id), notes)
    except Exception as e:  # noqa: BLE001
        return please_fix(e, locale)
    return say("manage_notes_saved", locale, run_id=int(run_id))


def ask_delete(studio: Studio, run_id: int | None, locale: str | None = "en") -> tuple[str, Any]:
    """The confirmation naming what goes, and the confirm button shown; or why it cannot be deleted."""
    if run_id is None:
        return say("manage_choose", locale), gr.update(visible=False)
    try:
        plan = studio.deletion_plan(int(run_id))
    except Exception as e:  # noqa: BLE001
        return please_fix(e, locale), gr.update(visible=False)
    return confirmation_markdown(plan, locale), gr.update(visible=True)


def confirm_delete(studio: Studio, run_id: int | None, locale: str | None = "en") -> tuple[str, Any]:
    if run_id is None:
        return say("manage_choose", locale), gr.update(visible=False)
    try:
        plan = studio.delete_run(int(run_id))
    except Exception as e:  # noqa: BLE001
        return please_fix(e, locale), gr.update(visible=False)
    return say("manage_deleted", locale, run_id=plan.run_id, name=esc(plan.name),
               size=size_text(plan.total_bytes, locale)), gr.update(visible=False)


def build(studio: Studio, chosen: gr.components.Component, action: gr.components.Component,
          locale: gr.Textbox | None = None) -> dict[str, Any]:
    """Rename, notes and delete for the run chosen in the Runs tab; messages go to ``action``, in the language
    WITH_LOCALE_JS puts in ``locale`` (the app's, else one of its own)."""
    with gr.Accordion(t("manage_title"), open=False):
        with gr.Row():
            name = gr.Textbox(label=t("manage_name"), max_lines=1, scale=3)
            do_rename = gr.Button(t("manage_rename"), size="sm", scale=1)
        notes = gr.Textbox(label=t("manage_notes"), lines=3, placeholder=t("manage_notes_placeholder"))
        with gr.Row():
            do_notes = gr.Button(t("manage_save_notes"), size="sm")
            delete = gr.Button(t("manage_delete"), variant="stop", size="sm")
            confirm = gr.Button(t("manage_confirm"), variant="stop", size="sm", visible=False)
            keep = gr.Button(t("manage_keep"), size="sm", visible=False)
        if locale is None:
            locale = gr.Textbox("en", visible=False)  # filled with the page's language by WITH_LOCALE_JS

    do_rename.click(lambda r, n, lang="en": rename(studio, r, n, lang), [chosen, name, locale], action,
                    api_name="rename_run", js=WITH_LOCALE_JS)
    do_notes.click(lambda r, n, lang="en": save_notes(studio, r, n, lang), [chosen, notes, locale], action,
                   api_name="save_run_notes", js=WITH_LOCALE_JS)

    def asked(run_id: int | None, language: str | None = "en") -> tuple:
        message, shown = ask_delete(studio, run_id, language)
        return message, shown, shown

    def done(run_id: int | None, language: str | None = "en") -> tuple:
        message, hidden = confirm_delete(studio, run_id, language)
        return message, hidden, hidden

    delete.click(asked, [chosen, locale], [action, confirm, keep], api_name="ask_delete_run", js=WITH_LOCALE_JS)
    confirm.click(done, [chosen, locale], [action, confirm, keep], api_name="delete_run", js=WITH_LOCALE_JS)
    keep.click(lambda: ("", gr.update(visible=False), gr.update(visible=False)), None, [action, confirm, keep],
               api_visibility="private")
    return {"name": name, "notes": notes, "confirm": confirm, "keep": keep}
