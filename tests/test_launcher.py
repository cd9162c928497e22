"""The launcher: runs start in their own process group with a log file, stop gracefully, and never pass for running."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from jobs_helpers import fast_config, wait_for

from core.runs.files import LOG_FILE, read_metrics
from core.runs.processes import is_alive

SLOW = {"max_steps": 100_000, "logging_steps": 5}


def test_run_starts_in_its_own_group_writing_to_a_log(studio) -> None:
    run_id = studio.launcher.start(fast_config(run_name="x; rm -rf ~ $(id) `id`"))
    run = studio.registry.get_run(run_id)
    assert run.pid and os.getpgid(run.pid) == run.pid  # its own process group
    assert os.getpgid(run.pid) != os.getpgid(os.getpid())
    done = wait_for(studio.registry, run_id, ("completed", "failed", "lost"))
    assert done.status == "completed", done.error
    assert done.name == "x; rm -rf ~ $(id) `id`"  # stored as given, never interpreted
    assert "completed after 24 steps" in (Path(done.run_dir) / LOG_FILE).read_text()
    assert "--config" in studio.launcher.command_for(run_id)


def test_stop_saves_the_result_and_ends_as_stopped(studio) -> None:
    run_id = studio.launcher.start(fast_config(**SLOW))
    wait_for(studio.registry, run_id, ("running",))
    deadline = time.monotonic() + 60
    while not read_metrics(Path(studio.registry.get_run(run_id).run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert studio.stop_run(run_id)
    run = wait_for(studio.registry, run_id, ("stopped", "completed", "failed", "lost"), timeout=60)
    assert run.status == "stopped" and run.exit_code == 0
    assert run.artefact_dir and (Path(run.artefact_dir) / "adapter_config.json").is_file()
    deadline = time.monotonic() + 30
    while is_alive(run.pid, run.pid_started_at) and time.monotonic() < deadline:
        studio.launcher.reconcile()  # reaps the child
        time.sleep(0.1)
    assert not is_alive(run.pid, run.pid_started_at)
    assert f"run:{run_id}" in [value for _, value in studio.chat_choices()]


def test_a_killed_run_is_marked_lost_not_running(studio) -> None:
    run_id = studio.launcher.start(fast_config(**SLOW))
    run = wait_for(studio.registry, run_id, ("running",))
    os.killpg(run.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while is_alive(run.pid, run.pid_started_at) and time.monotonic() < deadline:
        studio.launcher.reconcile()  # reaps the child too
        time.sleep(0.1)
    statuses = {r.id: r.status for r in studio.list_runs()}
    assert statuses[run_id] == "lost"
    assert "without reporting" in studio.registry.get_run(run_id).error


def test_invalid_config_starts_nothing(studio) -> None:
    bad = fast_config()
    bad.dataset = "no-such-dataset"
    try:
        studio.launcher.start(bad)
    except ValueError as e:
        assert "no-such-dataset" in str(e)
    else:
        raise AssertionError("a missing dataset must be refused")
    assert studio.registry.list_runs() == []


def test_a_silent_run_is_lost_within_two_heartbeats_and_recovers(studio, monkeypatch) -> None:
    monkeypatch.setenv("STUDIO_HEARTBEAT_SECONDS", "0.5")
    run_id = studio.launcher.start(fast_config(**SLOW))
    run = wait_for(studio.registry, run_id, ("running",))
    time.sleep(1.0)  # a few beats first
    os.kill(run.pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        while studio.registry.get_run(run_id).status == "running" and time.monotonic() - stopped_at < 10:
            studio.launcher.reconcile()
            time.sleep(0.05)
        lost_after = time.monotonic() - stopped_at
        lost = studio.registry.get_run(run_id)
        assert lost.status == "lost" and "no heartbeat" in lost.error
        # two intervals of silence, measured from the last beat (at most one interval before the stop)
        assert lost_after <= 2 * 0.5 + 0.5 + 0.5, lost_after
    finally:
        os.kill(run.pid, signal.SIGCONT)
    back = wait_for(studio.registry, run_id, ("running",), timeout=10)
    assert back.error is None
    studio.stop_run(run_id)
    assert wait_for(studio.registry, run_id, ("stopped",), timeout=60).status == "stopped"
