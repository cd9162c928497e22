"""Managing a run from the Runs tab: rename, notes, and delete with a confirmation naming what goes."""

from __future__ import annotations

from typing import Any

import gradio as gr

from core.runs.deletion import DeletionPlan
from core.studio import Studio
from webui.messages import code, esc, failure_markdown

ALL = "all"
CHOOSE = "Choose a run first."
RENAMED = "✏️ Run {run_id} is now called **{name}**."
NOTES_SAVED = "📝 Notes of run {run_id} saved."
DELETED = "🗑️ Run {run_id} ({name}) is deleted, with {size} of files."
CONFIRM_TITLE = "**Delete run {run_id} ({name})?** This removes, for good:"
KEPT = "Merged models exported from it stay in the exports folder; they stand on their own."


def size_text(count: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def confirmation_markdown(plan: DeletionPlan) -> str:
    """The confirmation: the folder and its size, the checkpoints, the evaluations, and what is kept."""
    lines = [CONFIRM_TITLE.format(run_id=plan.run_id, name=esc(plan.name)), ""]
    if plan.folder and plan.folder.deletable:
        lines.append(f"- its folder {code(plan.folder.path)} ({size_text(plan.folder.bytes)})")
    else:
        lines.append("- its record (it has no folder of its own left)")
    if plan.checkpoints:
        lines.append(f"- {len(plan.checkpoints)} checkpoint(s): {', '.join(code(c) for c in plan.checkpoints)}")
    else:
        lines.append("- no checkpoints")
    for eval_id, folder in plan.evaluations:
        where = f" in {code(folder.path)} ({size_text(folder.bytes)})" if folder and folder.deletable else ""
        lines.append(f"- evaluation {eval_id}{where}")
    if not plan.evaluations:
        lines.append("- no evaluations")
    if plan.waiting_in_queue:
        lines.append("- its place in the job queue (it has not started)")
    lines += ["", f"In all {size_text(plan.total_bytes)}. {KEPT}"]
    lines += [f"\n⚠️ {esc(note)}" for note in plan.notes]
    return "\n".join(lines)


def filter_choices(studio: Studio) -> dict[str, list[str]]:
    return {key: [ALL, *values] for key, values in studio.run_filters().items()}


def wanted(value: str | None) -> str | None:
    return None if not value or value == ALL else value


def rename(studio: Studio, run_id: int | None, name: str) -> str:
    if run_id is None:
        return CHOOSE
    try:
        run = studio.rename_run(int(run_id), name)
    except Exception as e:  # noqa: BLE001
        return failure_markdown(e)
    return RENAMED.format(run_id=run.id, name=esc(run.name))


def save_notes(studio: Studio, run_id: int | None, notes: str) -> str:
    if run_id is None:
        return CHOOSE
    try:
        studio.set_run_notes(int(run_id), notes)
    except Exception as e:  # noqa: BLE001
        return failure_markdown(e)
    return NOTES_SAVED.format(run_id=int(run_id))


def ask_delete(studio: Studio, run_id: int | None) -> tuple[str, Any]:
    """The confirmation naming what goes, and the confirm button shown; or why it cannot be deleted."""
    if run_id is None:
        return CHOOSE, gr.update(visible=False)
    try:
        plan = studio.deletion_plan(int(run_id))
    except Exception as e:  # noqa: BLE001
        return failure_markdown(e), gr.update(visible=False)
    return confirmation_markdown(plan), gr.update(visible=True)


def confirm_delete(studio: Studio, run_id: int | None) -> tuple[str, Any]:
    if run_id is None:
        return CHOOSE, gr.update(visible=False)
    try:
        plan = studio.delete_run(int(run_id))
    except Exception as e:  # noqa: BLE001
        return failure_markdown(e), gr.update(visible=False)
    return DELETED.format(run_id=plan.run_id, name=esc(plan.name), size=size_text(plan.total_bytes)), \
        gr.update(visible=False)


def build(studio: Studio, chosen: gr.components.Component, action: gr.components.Component) -> dict[str, Any]:
    """Rename, notes and delete for the run chosen in the Runs tab; messages go to ``action``."""
    with gr.Accordion("Name, notes, delete", open=False):
        with gr.Row():
            name = gr.Textbox(label="Name", max_lines=1, scale=3)
            do_rename = gr.Button("Rename", size="sm", scale=1)
        notes = gr.Textbox(label="Notes", lines=3, placeholder="What you tried, what you saw…")
        with gr.Row():
            do_notes = gr.Button("Save notes", size="sm")
            delete = gr.Button("Delete run…", variant="stop", size="sm")
            confirm = gr.Button("Yes, delete it and its files", variant="stop", size="sm", visible=False)
            keep = gr.Button("Keep it", size="sm", visible=False)

    do_rename.click(lambda r, n: rename(studio, r, n), [chosen, name], action, api_name="rename_run")
    do_notes.click(lambda r, n: save_notes(studio, r, n), [chosen, notes], action, api_name="save_run_notes")

    def asked(run_id: int | None) -> tuple:
        text, shown = ask_delete(studio, run_id)
        return text, shown, shown

    def done(run_id: int | None) -> tuple:
        text, hidden = confirm_delete(studio, run_id)
        return text, hidden, hidden

    delete.click(asked, chosen, [action, confirm, keep], api_name="ask_delete_run")
    confirm.click(done, chosen, [action, confirm, keep], api_name="delete_run")
    keep.click(lambda: ("", gr.update(visible=False), gr.update(visible=False)), None, [action, confirm, keep],
               api_visibility="private")
    return {"name": name, "notes": notes, "confirm": confirm, "keep": keep}
