"""Evaluation jobs for real (`python -m jobs.evaluate` on the tiny model): their own process group and log, status
transitions in the registry, Stop keeping what was scored, results that reload, and the headless command."""

from __future__ import annotations

import os
import time
from pathlib import Path

import jobs.evaluate
from core.runs.files import EVAL_LOG_FILE
from core.runs.processes import is_alive
from core.store.registry import EvalRecord, Registry
from core.studio import Studio

SMALL = {"dataset": "sample", "max_samples": 4, "max_new_tokens": 8}


def follow(registry: Registry, eval_id: int, until: tuple[str, ...], timeout: float = 180) -> tuple[EvalRecord,
                                                                                                    set[str]]:
    """Poll an evaluation until its status is in ``until``; returns it and every status seen on the way."""
    seen = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = registry.get_evaluation(eval_id)
        seen.add(record.status)
        if record.status in until:
            return record, seen
        time.sleep(0.2)
    raise AssertionError(f"evaluation {eval_id} still {registry.get_evaluation(eval_id).status} after {timeout} s")


def test_a_base_evaluation_is_its_own_job_and_its_results_reload(studio: Studio, data_dir: Path) -> None:
    _, problems = studio.check_evaluation("tiny-random-llava", SMALL)
    assert [p.severity for p in problems] == ["warning"] and "no eval split" in problems[0].message

    eval_id = studio.start_evaluation("tiny-random-llava", SMALL)
    record = studio.registry.get_evaluation(eval_id)
    assert record.status in ("queued", "running") and record.pid and os.getpgid(record.pid) == record.pid
    done, seen = follow(studio.registry, eval_id, ("completed", "failed", "lost"))
    assert done.status == "completed", done.error
    assert "running" in seen and done.exit_code == 0 and (done.step, done.total_steps) == (4, 4)
    assert "scoring 4 train rows of sample" in (Path(done.eval_dir) / EVAL_LOG_FILE).read_text()

    reopened = Studio(data_dir)  # the results live on disk and in the registry, not in this process
    try:
        view = reopened.evaluation_view(eval_id)
    finally:
        reopened.close()
    assert view.summary["split"] == "train" and view.summary["complete"]
    base = view.summary["base"]
    assert base["samples"] == 4 and base["loss"] > 0 and base["perplexity"] > 1 and view.summary.get("tuned") is None
    assert [r["index"] for r in view.results] == [0, 1, 2, 3]
    assert all(r["base"]["answer"] is not None and r["base"]["tokens"] > 0 for r in view.results)
    assert "-m jobs.evaluate --model tiny-random-llava --dataset sample --max-samples 4" in view.command


def test_stop_ends_an_evaluation_as_stopped_keeping_what_it_scored(studio: Studio) -> None:
    eval_id = studio.start_evaluation("tiny-random-llava", {"dataset": "sample", "max_samples": 0,
                                                            "max_new_tokens": 4000, "batch_size": 1})
    record, _ = follow(studio.registry, eval_id, ("running",))
    log = Path(record.eval_dir) / EVAL_LOG_FILE
    deadline = time.monotonic() + 120
    while "loading tiny-random-llava" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # into the first answer's 4000 tokens
    assert studio.stop_evaluation(eval_id)
    stopped, _ = follow(studio.registry, eval_id, ("stopped", "completed", "failed", "lost"), timeout=60)
    assert stopped.status == "stopped" and stopped.exit_code == 0 and stopped.step < stopped.total_steps == 24
    view = studio.evaluation_view(eval_id)
    assert view.summary["complete"] is False and len(view.results) == 24
    assert sum("base" in r for r in view.results) == stopped.step  # a batch cut short is not counted
    deadline = time.monotonic() + 30
    while is_alive(stopped.pid, stopped.pid_started_at) and time.monotonic() < deadline:
        studio.launcher.reconcile()  # reaps the child
        time.sleep(0.1)
    assert not is_alive(stopped.pid, stopped.pid_started_at)
    assert not studio.stop_evaluation(eval_id)  # nothing left to stop


def test_a_headless_evaluation_with_problems_is_refused_before_anything_runs(data_dir: Path, capsys) -> None:
    code = jobs.evaluate.main(["--run", "7", "--dataset", "no-such-data", "--data-dir", str(data_dir)])
    assert code == jobs.evaluate.EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert "there is no run 7" in err and "no-such-data" in err
    assert Registry(data_dir / "studio.db").list_evaluations() == []
