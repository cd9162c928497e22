"""The Runs tab's behaviours, through its callbacks in process: the newest run opens, a row click selects, messages
clear on a new selection, the log follows its end, raw metrics come a page at a time, rename, notes, filters,
delete with a confirmation naming what goes, and the queue panel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jobs_helpers import fast_config

from core.runs.deletion import folder_bytes
from core.runs.files import CHECKPOINTS_DIR, METRICS_FILE
from core.runs.folders import COMPLETE_MARK
from core.runs.launcher import record_run
from core.studio import Studio
from webui import queue_panel, run_manage, runs_tab
from webui.i18n import resolve


def label_of(block) -> str:
    """A component's label as an English browser shows it (labels are translation markers)."""
    return resolve(str(getattr(block, "label", "") or ""), "en")

def finished_run(studio: Studio, name: str, method: str = "lora", metrics: int = 0, status: str = "completed",
                 dataset: str = "sample") -> int:
    run_id, run_dir = record_run(studio.paths, studio.registry, fast_config(run_name=name, method=method,
                                                                            dataset=dataset))
    studio.registry.set_status(run_id, "running")
    studio.registry.set_status(run_id, status)
    with (run_dir / METRICS_FILE).open("w") as f:
        for step in range(1, metrics + 1):
            f.write(json.dumps({"step": step, "loss": 1.0 / step}) + "\n")
    return run_id


def fn_named(app, name: str):
    return next(f for f in app.fns.values() if getattr(f.fn, "__name__", "") == name)


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_cache):
    """One app over a data directory holding three finished runs (built once: building the app takes seconds)."""
    import shutil

    from webui.app_ui import build_app

    root = tmp_path_factory.mktemp("runs-tab") / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    studio = Studio(root)
    ids = [finished_run(studio, "first"), finished_run(studio, "second", method="lisa", status="failed"),
           finished_run(studio, "third", metrics=120)]
    app = build_app(studio)
    yield app, studio, ids
    studio.close()


def test_the_newest_run_opens_and_a_row_click_selects_its_run(built) -> None:
    app, studio, ids = built
    chosen = next(b for b in app.blocks.values() if label_of(b) == "Run")
    assert chosen.value == ids[-1]  # the newest, before anyone picks
    log = next(b for b in app.blocks.values() if label_of(b).startswith("Log (tail"))
    assert log.autoscroll  # the log tail follows its end
    assert fn_named(app, "open_runs").fn(None).get("value") == ids[-1]
    assert fn_named(app, "open_runs").fn(ids[0]).get("value") == ids[0]  # a choice made earlier stays
    table = runs_tab.runs_table(studio.list_runs())
    row = table.iloc[2].tolist()  # the oldest run's row, as a click delivers it
    assert runs_tab.selected_id(row) == ids[0]
    assert runs_tab.selected_id(None) is None and runs_tab.selected_id(["id"]) is None


def test_a_new_selection_clears_earlier_messages_and_fills_name_and_notes(built) -> None:
    app, studio, ids = built
    studio.set_run_notes(ids[0], "lr too high?")
    out = fn_named(app, "selected").fn(ids[0], [])
    details, _loss, _memory, _log, raw, where, older, *_pager, action, name, notes, confirm, keep = out
    assert f"Run {ids[0]} — first" in details
    assert action == "" and (name, notes) == ("first", "lr too high?")
    assert confirm.get("visible") is False and keep.get("visible") is False
    assert (raw, where, older) == ("", "No metrics yet.", 0)


def test_raw_metrics_come_one_page_at_a_time_newest_first(built) -> None:
    _app, studio, ids = built
    text, where, back, older, newer = runs_tab.raw_page(studio, ids[2], 0)
    lines = [json.loads(line)["step"] for line in text.splitlines()]
    assert lines == list(range(71, 121)) and where == "Lines 71–120 of 120."
    assert (back, older.get("interactive"), newer.get("interactive")) == (0, True, False)
    text, where, back, older, newer = runs_tab.raw_page(studio, ids[2], 9)  # past the oldest: the oldest page
    assert [json.loads(line)["step"] for line in text.splitlines()] == list(range(1, 21))
    assert (where, back, older.get("interactive"), newer.get("interactive")) == ("Lines 1–20 of 120.", 2, False,
                                                                                 True)


def test_rename_notes_and_filters(built) -> None:
    _app, studio, ids = built
    assert run_manage.rename(studio, ids[1], "  lisa try  ") == f"✏️ Run {ids[1]} is now called **lisa try**."
    assert studio.registry.get_run(ids[1]).name == "lisa try"
    assert "`field 'name'`" in run_manage.rename(studio, ids[1], "   ")
    assert run_manage.rename(studio, None, "x") == run_manage.CHOOSE
    assert run_manage.save_notes(studio, ids[1], "diverged at step 3") == f"📝 Notes of run {ids[1]} saved."
    assert studio.registry.get_run(ids[1]).notes == "diverged at step 3"
    assert [r.id for r in studio.list_runs(status="failed")] == [ids[1]]
    assert [r.id for r in studio.list_runs(method="lora")] == [ids[2], ids[0]]
    assert [r.id for r in studio.list_runs(method="lora", status="failed")] == []
    choices = run_manage.filter_choices(studio)
    (label, value), *statuses = choices["status"]
    assert value == "all" and resolve(str(label), "zh-CN") == "全部"  # "all" is shown in the page's language
    assert statuses == ["completed", "failed"] and choices["method"][1:] == ["lisa", "lora"]
    assert run_manage.wanted("all") is None and run_manage.wanted("lisa") == "lisa"


def test_delete_names_what_goes_then_removes_the_folder_and_its_evaluations(studio) -> None:
    run_id = finished_run(studio, "doomed", metrics=3)
    run_dir = Path(studio.registry.get_run(run_id).run_dir)
    checkpoint = run_dir / CHECKPOINTS_DIR / "step-00000004"
    checkpoint.mkdir(parents=True)
    (checkpoint / "weights.bin").write_bytes(b"\0" * 300_000)
    (checkpoint / COMPLETE_MARK).write_text("")
    eval_id = studio.registry.create_evaluation(run_id=run_id, result="last", model="m", dataset="sample",
                                                config={})
    eval_dir = studio.paths.eval_dir(eval_id)
    eval_dir.mkdir(parents=True)
    (eval_dir / "results.json").write_text("{}")
    studio.registry.update_job("eval", eval_id, eval_dir=str(eval_dir))
    studio.registry.set_status(eval_id, "running", kind="eval")
    text, confirm = run_manage.ask_delete(studio, run_id)  # refused while its evaluation runs
    assert f"evaluation {eval_id} of run {run_id} is running" in text and confirm.get("visible") is False
    studio.registry.set_status(eval_id, "completed", kind="eval")

    text, confirm = run_manage.ask_delete(studio, run_id)
    assert confirm.get("visible") is True
    assert f"Delete run {run_id} (doomed)?" in text and str(run_dir) in text
    assert "1 checkpoint(s): `step-00000004`" in text and f"evaluation {eval_id} in `{eval_dir}`" in text
    size = run_manage.size_text(folder_bytes(run_dir))
    assert size.endswith(" KB") and float(size.split()[0]) > 300 and f"`{run_dir}` ({size})" in text
    assert run_dir.is_dir()  # asking deletes nothing

    text, _ = run_manage.confirm_delete(studio, run_id)
    assert text.startswith(f"🗑️ Run {run_id} (doomed) is deleted")
    assert not run_dir.exists() and not eval_dir.exists()
    assert studio.registry.list_runs() == [] and studio.registry.list_evaluations() == []
    assert "no run" in run_manage.ask_delete(studio, run_id)[0]


def test_a_running_run_is_not_deleted(studio) -> None:
    run_id, run_dir = record_run(studio.paths, studio.registry, fast_config(run_name="busy"))
    studio.registry.set_status(run_id, "running")
    text, confirm = run_manage.ask_delete(studio, run_id)
    assert f"run {run_id} is running; stop it first" in text and confirm.get("visible") is False
    assert run_dir.is_dir()


def test_the_queue_panel_shows_places_and_acts_on_a_waiting_run(studio) -> None:
    busy = finished_run(studio, "busy", status="running")  # holds the GPU, so what follows waits
    a, b = studio.queue.enqueue([fast_config(run_name="a"), fast_config(run_name="b")])
    table, choices, empty = queue_panel.queue_state(studio, None)
    assert table["run"].tolist() == [a, b] and table["place"].tolist() == [1, 2] and empty == ""
    assert table["waiting because"].tolist()[0] == f"next: waiting for run {busy} (busy) to finish"
    assert choices.get("value") == a
    assert queue_panel.queue_action(studio, b, "up") == f"Run {b} moved one place earlier."
    assert queue_panel.queue_action(studio, b, "up") == f"Run {b} is already at the front of the queue."
    assert queue_panel.queue_action(studio, a, "cancel").startswith(f"⏹️ Run {a} left the queue")
    assert queue_panel.queue_action(studio, a, "cancel") == queue_panel.NOT_WAITING.format(run_id=a)
    assert queue_panel.queue_action(studio, None, "down") == queue_panel.CHOOSE
    table, _, _ = queue_panel.queue_state(studio, None)
    assert table["run"].tolist() == [b]
