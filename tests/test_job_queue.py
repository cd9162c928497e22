"""The job queue: one training job at a time in queue order, cancel, reorder, start now when the estimate says the
runs fit together, a failed job does not block, a new studio on the same data directory resumes the queue, and an
evaluation holds the GPU as a run does."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from jobs_helpers import fast_config, wait_for

from core.problems import ProblemsError
from core.runs.files import CHECKPOINTS_DIR, COMPLETE_MARK
from core.runs.launcher import record_run
from core.runs.manifest import TRAINER_STATE, write_manifest
from core.runs.processes import is_alive
from core.runs.queue import CANCELLED, SPAWN_FAILED, Capacity, plan
from core.store.job_queue import QueueEntry
from core.store.registry import RunRecord
from core.studio import Studio

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


class Sleepers:
    """Stands in for the trainer: each started run gets a real process (its own group) that sleeps, reports
    running and beats while its process lives, as a trainer would; the test ends it with the status a trainer
    would report."""

    BEAT_SECONDS = 0.2

    def __init__(self) -> None:
        self.started: list[int] = []
        self.resumed: list[int] = []
        self.studios: list[Studio] = []
        self.fail_next = False
        self._done = threading.Event()
        self._beater = threading.Thread(target=self._beat, daemon=True)
        self._beater.start()

    def install(self, studio: Studio) -> Studio:
        def start(run_id: int, run_dir: Path, resume: bool = False) -> None:
            if self.fail_next:
                self.fail_next = False
                raise OSError("no such interpreter")
            studio.launcher.spawn("run", run_id, SLEEPER, run_dir)
            studio.registry.set_status(run_id, "running")
            self.started.append(run_id)
            if resume:
                self.resumed.append(run_id)

        studio.launcher.start_recorded = start  # type: ignore[method-assign]
        self.studios.append(studio)
        return studio

    def _beat(self) -> None:
        # A trainer beats until its process ends: a killed sleeper falls silent, a living one never looks lost.
        while not self._done.wait(self.BEAT_SECONDS):
            if not self.studios:
                continue
            registry = self.studios[-1].registry
            for run_id in list(self.started):
                run = registry.get_run(run_id)
                if run.status == "running" and is_alive(run.pid, run.pid_started_at):
                    registry.heartbeat(run_id)

    def finish(self, studio: Studio, run_id: int, status: str = "completed") -> None:
        studio.registry.set_status(run_id, status, error=None if status == "completed" else "it broke")
        kill(studio.registry.get_run(run_id))

    def cleanup(self) -> None:
        self._done.set()
        self._beater.join(timeout=5)
        for studio in self.studios:
            studio.close()
            for run in studio.registry.list_runs():
                kill(run)


def kill(run: RunRecord) -> None:
    if run.pid:
        try:
            os.killpg(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def sleepers():
    found = Sleepers()
    yield found
    found.cleanup()


def configs(*names: str, **overrides: object) -> list:
    return [fast_config(run_name=name, **overrides) for name in names]


def queued_names(studio: Studio) -> list[str]:
    return [v.run.name for v in studio.queue_entries()]


def record(run_id: int, gb: float | None) -> RunRecord:
    run = RunRecord(run_id, f"r{run_id}", "queued", "m", "lora", "d", {}, "", 0.0, None, None, None, None, None,
                    None, None, None, 0, 0, None, None, None, 1)
    run.estimate = None if gb is None else {"total_gb": gb}
    return run


def entry(run_id: int, place: int, start_now: bool = False, kind: str = "run") -> QueueEntry:
    return QueueEntry(kind, run_id, place, float(place), 0.0, start_now, "")


def test_the_ordering_rule_starts_the_first_when_idle_and_start_now_only_when_it_fits() -> None:
    runs = {("run", i): record(i, 2.0) for i in (1, 2, 3)}
    card = Capacity(10.0, "on a test card (10 GB)")
    start, why = plan([entry(1, 1), entry(2, 2), entry(3, 3)], runs, [], card)
    assert start == [("run", 1)]
    assert why == {("run", 2): "next: waiting for run 1 (r1) to finish",
                   ("run", 3): "waiting its turn: third in the queue"}
    busy = [record(9, 6.0)]
    start, why = plan([entry(1, 1), entry(2, 2, start_now=True)], runs, busy, card)
    assert start == [("run", 2)] and list(why) == [("run", 1)]  # 6 + 2 GB fit under 90% of 10 GB; 1 waits its turn
    start, why = plan([entry(1, 1), entry(2, 2, start_now=True)], runs, [record(9, 7.5)], card)
    assert start == [] and "about 9.50 GB" in why[("run", 2)] and "run 9 7.50 GB, this run 2.00 GB" in why[("run", 2)]
    start, why = plan([entry(2, 1, start_now=True)], {("run", 2): record(2, 1.0)}, [record(9, None)], card)
    assert start == [] and "run 9 has no memory estimate" in why[("run", 2)]


def test_one_run_at_a_time_in_queue_order_with_reorder_cancel_and_failures(studio, sleepers) -> None:
    sleepers.install(studio)
    a, b, c, d, e = studio.queue.enqueue(configs("a", "b", "c", "d", "e"))
    assert sleepers.started == [a]
    assert queued_names(studio) == ["b", "c", "d", "e"]
    assert [v.place for v in studio.queue_entries()] == [1, 2, 3, 4]
    assert studio.queue_entries()[0].waiting_reason == f"next: waiting for run {a} (a) to finish"

    assert studio.move_queued(d, -1) and studio.move_queued(d, -1)
    assert queued_names(studio) == ["d", "b", "c", "e"]
    assert not studio.move_queued(d, -1)  # already first
    assert studio.move_queued(b, 1) and queued_names(studio) == ["d", "c", "b", "e"]
    assert studio.cancel_queued(c)
    cancelled = studio.registry.get_run(c)
    assert (cancelled.status, cancelled.error, cancelled.pid) == ("stopped", CANCELLED, None)
    assert queued_names(studio) == ["d", "b", "e"]

    studio.queue.dispatch()
    assert sleepers.started == [a]  # still one at a time
    sleepers.finish(studio, a)
    studio.queue.dispatch()
    assert sleepers.started == [a, d]
    sleepers.finish(studio, d, "failed")  # a failed job does not block the queue
    sleepers.fail_next = True  # nor does one whose process cannot even start
    studio.queue.dispatch()
    assert studio.registry.get_run(b).status == "failed"
    assert studio.registry.get_run(b).error == SPAWN_FAILED.format(error="no such interpreter")
    assert sleepers.started == [a, d, e] and queued_names(studio) == []
    assert studio.stop_run(e)  # stopping a running one still goes through the launcher
    assert not studio.cancel_queued(e)


def test_start_now_runs_beside_the_others_only_when_the_estimate_says_they_fit(studio, sleepers) -> None:
    sleepers.install(studio)
    studio.queue.capacity = lambda: Capacity(0.0001, "on a tiny test card (0.0001 GB)")
    first = studio.start_run(fast_config(run_name="first").to_dict())
    second = studio.start_run(fast_config(run_name="second").to_dict(), start_now=True)
    assert sleepers.started == [first]
    (waiting,) = studio.queue_entries()
    assert waiting.run.id == second and waiting.start_now
    assert "more than fits on a tiny test card" in waiting.waiting_reason
    assert "more than fits" in studio.start_queued_now(second)
    studio.queue.capacity = lambda: Capacity(1000.0, "on a big test card")
    assert studio.start_queued_now(second) == ""
    assert sleepers.started == [first, second]


def test_a_new_studio_on_the_same_data_dir_resumes_the_queue(data_dir: Path, sleepers, monkeypatch) -> None:
    monkeypatch.setenv("STUDIO_HEARTBEAT_SECONDS", "0.5")  # the watchdog's round
    before = sleepers.install(Studio(data_dir))
    first, second, third = before.queue.enqueue(configs("one", "two", "three"))
    for waiting in (second, third):  # waiting far past the spawn grace must still not pass for lost
        before.registry.update_run(waiting, created_at=time.time() - 3600)
    assert before.move_queued(third, -1)
    running = before.registry.get_run(first)
    before.close()  # the studio goes away; its trainer keeps running
    before.registry.dispose()

    after = sleepers.install(Studio(data_dir))
    after.reconcile()
    assert after.registry.get_run(first).status == "running"  # its process lives: it is left alone
    assert queued_names(after) == ["three", "two"]
    assert [after.registry.get_run(i).status for i in (second, third)] == ["queued", "queued"]
    kill(running)  # the trainer dies without reporting while no studio watches the queue
    time.sleep(0.3)
    after.start_watchdog()
    after.start_queue()  # the dispatcher thread, no browser and no poller
    lost = wait_for(after.registry, first, ("lost",), timeout=60)
    assert "ended without reporting" in lost.error
    wait_for(after.registry, third, ("running",), timeout=60)
    assert after.registry.get_run(second).status == "queued"
    assert sleepers.started == [first, third] and queued_names(after) == ["two"]


def checkpointed(studio: Studio, name: str) -> int:
    """A stopped run with one checkpoint (step 3) whose files match its manifest, as a trainer leaves it."""
    config = fast_config(run_name=name)
    run_id, run_dir = record_run(studio.launcher.paths, studio.registry, config)
    studio.memory.store_run_estimate(run_id, config)
    folder = Path(run_dir) / CHECKPOINTS_DIR / "step-3"
    folder.mkdir(parents=True)
    (folder / TRAINER_STATE).write_text('{"step": 3}', encoding="utf-8")
    write_manifest(folder)
    (folder / COMPLETE_MARK).write_text("", encoding="utf-8")
    studio.registry.set_status(run_id, "stopped", error="stopped by the user")
    return run_id


def test_a_resume_starts_at_once_when_it_fits_and_else_waits_its_turn_in_the_queue(studio, sleepers) -> None:
    sleepers.install(studio)
    first = studio.start_run(fast_config(run_name="first").to_dict())
    stopped = checkpointed(studio, "stopped")
    studio.queue.capacity = lambda: Capacity(0.0001, "on a tiny test card (0.0001 GB)")
    point = studio.resume_run(stopped)  # it does not fit beside run 1: claimed now, started when its turn comes
    assert point.step == 3 and point.waiting == f"next: waiting for run {first} (first) to finish"
    resumed = studio.registry.get_run(stopped)
    assert (resumed.status, resumed.attempt) == ("queued", 2) and sleepers.started == [first]
    assert queued_names(studio) == ["stopped"]
    with pytest.raises(ProblemsError, match="is queued; only a stopped, failed or lost run resumes"):
        studio.resume_run(stopped)  # asked twice: it waits once
    sleepers.finish(studio, first)
    studio.queue.dispatch()
    assert sleepers.started == [first, stopped] and sleepers.resumed == [stopped] and queued_names(studio) == []

    sleepers.finish(studio, stopped, "stopped")
    studio.queue.capacity = lambda: Capacity(1000.0, "on a big test card")
    busy = studio.start_run(fast_config(run_name="busy").to_dict())
    resumes = []
    studio.launcher.resume = resumes.append  # type: ignore[method-assign] - past the rule: the launcher resumes
    assert studio.resume_run(stopped) is None and resumes == [stopped] and queued_names(studio) == []
    assert sleepers.started == [first, stopped, busy]


def test_an_evaluation_holds_the_gpu_as_a_run_does_and_waits_in_the_queue_when_it_does_not_fit(
        studio, sleepers) -> None:
    sleepers.install(studio)
    spawn = studio.launcher.spawn
    studio.launcher.spawn = lambda kind, job_id, cmd, folder: spawn(  # type: ignore[method-assign]
        kind, job_id, SLEEPER if kind == "eval" else cmd, folder)
    small = {"dataset": "sample", "max_samples": 4, "max_new_tokens": 8}
    first = studio.start_run(fast_config(run_name="first").to_dict())
    studio.queue.capacity = lambda: Capacity(0.0001, "on a tiny test card (0.0001 GB)")
    _, problems = studio.check_evaluation("tiny-random-llava", small)
    waits = (r"waiting for run 1 \(first\) to finish: together they need .*this evaluation \d\.\d\d GB\), more "
             r"than fits on a tiny test card")
    assert [p.severity for p in problems] == ["warning", "warning"]
    assert re.match(r"^it will not start at once but wait in the job queue, .*: " + waits, problems[1].message)

    eval_id, why = studio.submit_evaluation("tiny-random-llava", small)
    assert re.match(waits, why), why
    evaluation = studio.registry.get_evaluation(eval_id)
    assert evaluation.status == "queued" and evaluation.pid is None and evaluation.estimate["total_gb"] > 0
    second = studio.start_run(fast_config(run_name="second").to_dict())
    assert [(v.kind, v.job.id, v.start_now) for v in studio.queue_entries()] == [("eval", eval_id, True),
                                                                                 ("run", second, False)]
    assert studio.queue_entries()[1].waiting_reason == "waiting its turn: second in the queue"  # behind the eval
    studio.registry.update_job("eval", eval_id, created_at=time.time() - 3600, heartbeat_at=time.time() - 3600)
    studio.launcher.reconcile()  # no process yet, by design: the watchdog leaves a waiting evaluation alone
    assert studio.registry.get_evaluation(eval_id).status == "queued"

    sleepers.finish(studio, first)
    studio.queue.dispatch()
    evaluation = studio.registry.get_evaluation(eval_id)
    assert is_alive(evaluation.pid, evaluation.pid_started_at)  # started through the queue, its own process
    assert sleepers.started == [first]  # nothing trains, but the evaluation holds the GPU
    (waiting,) = studio.queue_entries()
    assert waiting.waiting_reason == f"next: waiting for evaluation {eval_id} (tiny-random-llava on sample) to finish"

    for status in ("running", "completed"):  # as the evaluation job reports them
        studio.registry.set_status(eval_id, status, kind="eval")
    kill(studio.registry.get_evaluation(eval_id))
    studio.queue.dispatch()
    assert sleepers.started == [first, second] and studio.queue_entries() == []

    later, why = studio.submit_evaluation("tiny-random-llava", small)  # beside "second": it waits again
    assert why.startswith("waiting for run 2 (second) to finish") and studio.queue_place(later, "eval").place == 1
    assert studio.stop_evaluation(later) and studio.queue_entries() == []  # a waiting one just leaves the queue
    cancelled = studio.registry.get_evaluation(later)
    assert (cancelled.status, cancelled.error, cancelled.pid) == ("stopped", CANCELLED, None)

    studio.queue.capacity = lambda: Capacity(1000.0, "on a big test card")
    at_once, why = studio.submit_evaluation("tiny-random-llava", small)
    assert why == "" and studio.queue_entries() == []  # it fits beside "second": it starts at once
    assert studio.registry.get_evaluation(at_once).pid is not None
    kill(studio.registry.get_evaluation(at_once))


def test_the_queue_panel_lists_a_waiting_evaluation_and_moves_and_cancels_it(studio, sleepers) -> None:
    from webui import queue_panel

    sleepers.install(studio)
    first = studio.start_run(fast_config(run_name="first").to_dict())
    studio.queue.capacity = lambda: Capacity(0.0001, "on a tiny test card (0.0001 GB)")
    eval_id, _ = studio.submit_evaluation("tiny-random-llava", {"dataset": "sample", "max_samples": 4})
    second = studio.start_run(fast_config(run_name="second").to_dict())
    table, choices, empty = queue_panel.queue_state(studio, None)
    assert list(table["run"]) == [f"evaluation {eval_id}", second] and empty == ""
    assert list(table["method"]) == ["evaluation", "lora"] and list(table["name"]) == ["tiny-random-llava", "second"]
    assert table["waiting because"][0].startswith(f"waiting for run {first} (first) to finish: together they need")
    assert choices["choices"] == [(f"1. evaluation {eval_id}: tiny-random-llava on sample", f"eval:{eval_id}"),
                                  (f"2. run {second}: second", second)]
    chinese, zh_choices, _ = queue_panel.queue_state(studio, None, "zh-CN")
    assert chinese["run"][0] == f"评测 {eval_id}" and chinese["method"][0] == "评测"
    assert zh_choices["choices"][0][0] == f"1. 评测 {eval_id}：sample 上的 tiny-random-llava"

    chosen = f"eval:{eval_id}"
    assert queue_panel.queue_action(studio, chosen, "down") == f"Evaluation {eval_id} moved one place later."
    assert [v.kind for v in studio.queue_entries()] == ["run", "eval"]
    at_end = queue_panel.queue_action(studio, chosen, "down")
    assert at_end == f"Evaluation {eval_id} is already at the end of the queue."
    assert queue_panel.queue_action(studio, chosen, "start now").startswith(f"⏳ Evaluation {eval_id} already starts")
    assert queue_panel.queue_action(studio, chosen, "cancel", "zh-CN").startswith(f"⏹️ 评测 {eval_id} 已移出队列")
    assert studio.registry.get_evaluation(eval_id).status == "stopped"
    assert queue_panel.queue_action(studio, chosen, "cancel") == (
        f"Evaluation {eval_id} is not waiting in the queue (it has started or ended).")
    assert [v.job.id for v in studio.queue_entries()] == [second]
