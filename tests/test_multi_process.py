"""Several processes through accelerate (2 CPU ranks, gloo): the same losses as one process with the same global
batch, one set of files and statuses, a rank killed with SIGKILL failing the run with that rank named, and Stop
reaching every rank with Resume continuing on two."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from jobs_helpers import fast_config, wait_for

import jobs.train
from core.runs.files import FINAL_DIR, LOG_FILE, METRICS_FILE, read_metrics

# No dropout: each rank has its own random stream, so dropout masks would differ from one process's.
SAME = {"max_steps": 4, "batch_size": 2, "lora_dropout": 0.0, "logging_steps": 1, "learning_rate": 1e-2}


def test_two_ranks_train_like_one_process_and_report_once(studio, tmp_path: Path) -> None:
    run_id = studio.launcher.start(fast_config(run_name="two", gpus="2", **SAME))
    command = studio.run_view(run_id).command
    assert "accelerate" in command and "--num_processes 2" in command and "-m jobs.train" in command
    one = fast_config(run_name="one", grad_accum=2, **SAME)  # one process, two micro-batches a step
    one_path = tmp_path / "one.json"
    one.save(one_path)
    assert jobs.train.main(["--config", str(one_path), "--data-dir", str(studio.paths.root)]) == 0

    two = wait_for(studio.registry, run_id, ("completed", "failed", "lost"), timeout=120)
    assert two.status == "completed", two.error
    single = next(r for r in studio.registry.list_runs() if r.name == "one")
    two_rows = read_metrics(Path(two.run_dir))
    one_rows = read_metrics(Path(single.run_dir))
    assert [r["step"] for r in two_rows] == [1, 2, 3, 4]  # one line per step, from rank 0 only
    for a, b in zip(two_rows, one_rows, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
    assert two_rows[-1]["loss"] < two_rows[0]["loss"]
    run_dir = Path(two.run_dir)
    assert sorted(p.name for p in run_dir.glob("*.jsonl")) == [METRICS_FILE]
    assert (run_dir / FINAL_DIR / "adapter_config.json").is_file()
    log = (run_dir / LOG_FILE).read_text()
    assert log.count("status: running") == 1 and log.count("status: completed") == 1
    assert log.count("completed after 4 steps") == 1


def test_a_rank_killed_with_sigkill_fails_the_run_naming_it(studio) -> None:
    run_id = studio.launcher.start(fast_config(run_name="kill", gpus="2", max_steps=100_000, logging_steps=1))
    run = wait_for(studio.registry, run_id, ("running",), timeout=60)
    deadline = time.monotonic() + 90
    while not read_metrics(Path(run.run_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    launcher = psutil.Process(run.pid)
    assert "accelerate" in " ".join(launcher.cmdline())
    rank_one = next(p for p in launcher.children() if "jobs.train" in " ".join(p.cmdline())
                    and p.environ().get("RANK") == "1")
    os.kill(rank_one.pid, signal.SIGKILL)
    done = wait_for(studio.registry, run_id, ("failed", "completed", "stopped", "lost"), timeout=60)
    assert done.status == "failed", done.error
    assert f"rank 1 (pid {rank_one.pid}) ended without reporting" in done.error
    deadline = time.monotonic() + 30
    while launcher.is_running() and launcher.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(Path(run.run_dir)) in " ".join(
        p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE]
    assert not leftovers  # every rank and the launcher ended


def test_stop_reaches_every_rank_and_resume_continues_on_two(studio) -> None:
    run_id = studio.launcher.start(fast_config(run_name="stop", gpus="2", max_steps=100_000, logging_steps=1,
                                               lora_dropout=0.0))
    run = wait_for(studio.registry, run_id, ("running",), timeout=60)
    deadline = time.monotonic() + 90
    while len(read_metrics(Path(run.run_dir))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert studio.stop_run(run_id)
    stopped = wait_for(studio.registry, run_id, ("stopped", "failed", "lost", "completed"), timeout=60)
    assert stopped.status == "stopped" and stopped.exit_code == 0, stopped.error
    log = (Path(run.run_dir) / LOG_FILE).read_text()
    assert log.count("status: stopped") == 1
    point = studio.resume_run(run_id)
    assert point.step == stopped.step
    wait_for(studio.registry, run_id, ("running",), timeout=60)
    deadline = time.monotonic() + 90
    while max(r["step"] for r in read_metrics(Path(run.run_dir))) <= stopped.step and time.monotonic() < deadline:
        time.sleep(0.2)
    assert studio.stop_run(run_id)
    again = wait_for(studio.registry, run_id, ("stopped", "failed", "lost", "completed"), timeout=60)
    assert again.status == "stopped" and again.step > stopped.step, again.error
