"""A full disk under the database: the job's last status survives in its run folder and reaches the database once it
can be written again; the Runs tab keeps rendering, with a banner, instead of raising on every poll."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from jobs_helpers import fast_config, wait_for

from core.runs.launcher import record_run
from core.runs.status_file import read_status, reserve, write_status
from core.studio import Studio
from webui.runs_tab import banner_markdown


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 24 MB tmpfs; the test needs it, so a machine that cannot mount one fails here instead of skipping."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True,
                            text=True)
    assert result.returncode == 0, f"mounting a small tmpfs failed (the test runs as root): {result.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system under ``folder``."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_loses_no_status_and_the_runs_tab_keeps_rendering(small_disk: Path, tiny_model_cache: Path,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("STUDIO_HEARTBEAT_SECONDS", "0.5")
    data_dir = small_disk / "studio"
    shutil.copytree(tiny_model_cache, data_dir / "models")
    studio = Studio(data_dir)
    try:
        run_id = studio.launcher.start(fast_config(max_steps=100_000))
        run = wait_for(studio.registry, run_id, ("running",), timeout=120)
        deadline = time.monotonic() + 120
        while studio.registry.get_run(run_id).step < 2:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        filler = fill(small_disk)

        proc = psutil.Process(run.pid)
        proc.wait(timeout=120)  # the job meets the full disk, records how it ended, and exits
        kept = read_status(run.run_dir)
        assert kept and kept["status"] == "failed" and "is full" in kept["error"], kept
        for _ in range(3):  # every poll renders; none raises
            listed = {r.id: r.status for r in studio.list_runs()}
            assert listed[run_id] == "running"  # the database could not take the ending yet
            assert "cannot be written" in banner_markdown(studio) and "Free some space" in banner_markdown(studio)

        filler.unlink()
        listed = {r.id: r for r in studio.list_runs()}
        assert listed[run_id].status == "failed" and "is full" in listed[run_id].error
        assert "Resume" in listed[run_id].error and listed[run_id].exit_code == 1
        assert banner_markdown(studio) == ""
    finally:
        studio.close()


def test_an_ending_kept_in_the_run_folder_is_recorded_by_the_watchdog(studio) -> None:
    run_id, run_dir = record_run(studio.paths, studio.registry, fast_config())
    finished = subprocess.Popen(["true"])
    finished.wait()
    studio.registry.set_status(run_id, "running", pid=finished.pid, heartbeat_at=time.time())
    assert reserve(run_dir)
    assert write_status(run_dir, {"pid": finished.pid, "status": "completed",
                                  "exit_code": 0, "step": 24, "last_loss": 0.5, "artefact_dir": str(run_dir)})
    assert run_id in studio.reconcile()
    run = studio.registry.get_run(run_id)
    assert (run.status, run.step, run.last_loss, run.artefact_dir) == ("completed", 24, 0.5, str(run_dir))

    # A record left by an earlier process of the run (another pid) is never applied to the current one.
    other, other_dir = record_run(studio.paths, studio.registry, fast_config())
    studio.registry.set_status(other, "running", pid=finished.pid + 1_000_000, heartbeat_at=time.time())
    write_status(other_dir, {"pid": finished.pid, "status": "completed"})
    studio.reconcile()
    assert studio.registry.get_run(other).status != "completed"
