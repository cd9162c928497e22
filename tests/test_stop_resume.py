"""Stop and Resume: never two trainers on one run, Stop ends a lost one, Stop always leaves something resumable, and
headless `--resume --run-id N` continues stopped, failed and lost runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from jobs_helpers import fast_config, wait_for
from test_resume import wait_for_step

import jobs.train
from core.problems import ProblemsError
from core.runs.files import CHECKPOINTS_DIR, METRICS_FILE, complete_checkpoints
from core.runs.launcher import record_run
from webui.runs_tab import resume_markdown

ROOT = Path(__file__).resolve().parents[1]


def trainers(run_id: int, root: Path) -> list[int]:
    """Every live `jobs.train` process working on this run of the studio at ``root`` (other tests' studios, run
    at the same time by another worker, have runs with the same ids)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        pairs = list(zip(cmd, cmd[1:], strict=False))
        if "jobs.train" in cmd and proc.info["status"] != psutil.STATUS_ZOMBIE and \
                ("--run-id", str(run_id)) in pairs and ("--data-dir", str(root)) in pairs:
            found.append(proc.info["pid"])
    return found


def wait_until_lost(studio, run_id: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while studio.registry.get_run(run_id).status != "lost":
        assert time.monotonic() < deadline, "the silent run was not taken for lost"
        studio.launcher.reconcile()
        time.sleep(0.05)


def test_a_silent_live_trainer_is_never_resumed_into_a_second_one(studio, monkeypatch, capsys) -> None:
    monkeypatch.setenv("STUDIO_HEARTBEAT_SECONDS", "0.5")
    run_id = studio.launcher.start(fast_config(max_steps=100_000, logging_steps=2, save_steps=2))
    wait_for_step(studio, run_id, 3)
    pid = studio.registry.get_run(run_id).pid
    os.kill(pid, signal.SIGSTOP)  # silent, like a process swapped out or stuck on I/O
    try:
        wait_until_lost(studio, run_id)
        with pytest.raises(ProblemsError, match=f"still alive, though silent: pid {pid} "):
            studio.resume_run(run_id)
        assert jobs.train.main(["--resume", "--run-id", str(run_id), "--data-dir", str(studio.paths.root)]) == 2
        assert f"pid {pid}" in capsys.readouterr().err
        assert trainers(run_id, studio.paths.root) == [pid]
    finally:
        os.kill(pid, signal.SIGCONT)
    back = wait_for(studio.registry, run_id, ("running",), timeout=15)
    assert (back.pid, back.attempt, back.error) == (pid, 1, None)  # the same trainer carries on, consistently
    assert trainers(run_id, studio.paths.root) == [pid]

    # Stop ends a trainer the studio believes lost.
    os.kill(pid, signal.SIGSTOP)
    wait_until_lost(studio, run_id)
    assert studio.stop_run(run_id)
    stopped = wait_for(studio.registry, run_id, ("stopped", "failed", "completed"), timeout=60)
    assert stopped.status == "stopped" and stopped.exit_code == 0, stopped.error
    deadline = time.monotonic() + 30
    while trainers(run_id, studio.paths.root) and time.monotonic() < deadline:
        studio.launcher.reconcile()
        time.sleep(0.1)
    assert trainers(run_id, studio.paths.root) == []
    studio.resume_run(run_id)  # now there is nothing alive to double
    again = wait_for(studio.registry, run_id, ("running",), timeout=60)
    assert trainers(run_id, studio.paths.root) == [again.pid] and again.attempt == 2
    studio.stop_run(run_id)
    assert wait_for(studio.registry, run_id, ("stopped",), timeout=60).status == "stopped"


def test_stop_then_resume_works_with_the_default_settings(studio) -> None:
    config = fast_config(max_steps=16)
    assert config.save_steps == 0  # the default: no periodic checkpoints
    run_id = studio.launcher.start(config)
    wait_for_step(studio, run_id, 3)
    assert studio.stop_run(run_id)
    stopped = wait_for(studio.registry, run_id, ("stopped", "completed", "failed", "lost"), timeout=60)
    assert stopped.status == "stopped" and 3 <= stopped.step < 16, stopped.error
    assert [p.name for p in complete_checkpoints(Path(stopped.run_dir))] == [f"step-{stopped.step:08d}"]
    point = studio.resume_run(run_id)
    assert point.step == stopped.step
    assert resume_markdown(run_id, point).startswith(
        f"▶️ Resuming run {run_id} from step {stopped.step} (checkpoint `step-{stopped.step:08d}`).")
    done = wait_for(studio.registry, run_id, ("completed", "failed", "lost"))
    assert done.status == "completed" and done.attempt == 2, done.error
    assert [m["step"] for m in studio.run_view(run_id).metrics] == list(range(1, 17))


def clone_run(studio, source, ending: str) -> int:
    """A copy of a stopped run's folder under a new run that ended as ``ending`` (failed, or lost)."""
    config = fast_config(max_steps=source.config["max_steps"])
    run_id, run_dir = record_run(studio.paths, studio.registry, config)
    shutil.copytree(Path(source.run_dir) / CHECKPOINTS_DIR, run_dir / CHECKPOINTS_DIR)
    shutil.copyfile(Path(source.run_dir) / METRICS_FILE, run_dir / METRICS_FILE)
    studio.registry.set_status(run_id, "running", step=source.step)
    studio.registry.set_status(run_id, ending, error=f"{ending} for the test")
    return run_id


def test_headless_resume_continues_stopped_failed_and_lost_runs(studio, capfd) -> None:
    run_id = studio.launcher.start(fast_config(max_steps=12))
    wait_for_step(studio, run_id, 2)
    studio.stop_run(run_id)
    stopped = wait_for(studio.registry, run_id, ("stopped",), timeout=60)
    deadline = time.monotonic() + 30
    while trainers(run_id, studio.paths.root) and time.monotonic() < deadline:
        time.sleep(0.1)
    runs = {"failed": clone_run(studio, stopped, "failed"), "lost": clone_run(studio, stopped, "lost")}
    # The stopped run through the real command line; the failed and lost copies through the same entry point
    # in this process (no second torch start-up on a two-core machine).
    result = subprocess.run([sys.executable, "-m", "jobs.train", "--resume", "--run-id", str(run_id), "--data-dir",
                             str(studio.paths.root)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    outputs = {"stopped": result.stdout}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for ending, rid in runs.items():
            assert jobs.train.main(["--resume", "--run-id", str(rid), "--data-dir", str(studio.paths.root)]) == 0
            outputs[ending] = capfd.readouterr().out
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    for ending, rid in {"stopped": run_id, **runs}.items():
        assert f"resuming from step {stopped.step} (checkpoint step-{stopped.step:08d})" in outputs[ending], ending
        run = studio.registry.get_run(rid)
        assert (run.status, run.attempt, run.step) == ("completed", 2, 12), (ending, run.error)
        assert [m["step"] for m in studio.run_view(run.id).metrics] == list(range(1, 13)), ending
