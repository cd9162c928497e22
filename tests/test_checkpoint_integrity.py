"""A damaged newest checkpoint is skipped for the newest one that passes (and says why); rotation never leaves a
marked folder with files missing, however often it is killed; folders set aside are cleaned after a resume."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from jobs_helpers import fast_config, wait_for

from core.runs.files import COMPLETE_MARK, METRICS_FILE, complete_checkpoints
from core.runs.manifest import MANIFEST_FILE, checkpoint_problem
from core.store.registry import Registry
from jobs.checkpoints import SET_ASIDE_DIR, rotate, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "zero-filled": lambda data: bytes(len(data)),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path) -> Path:
    """A finished headless run with checkpoints at steps 4 and 8 (built once; tests work on copies)."""
    data_dir = tmp_path_factory.mktemp("integrity") / "studio"
    shutil.copytree(tiny_model_cache, data_dir / "models")
    config = data_dir.parent / "config.json"
    fast_config(max_steps=12, save_steps=4, save_total_limit=3).save(config)
    result = subprocess.run([sys.executable, "-m", "jobs.train", "--config", str(config), "--data-dir", str(data_dir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = Registry(data_dir / "studio.db").list_runs()
    run_dir = Path(run.run_dir)
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step-00000004", "step-00000008"]
    return run_dir


def newest_files(run_dir: Path) -> list[str]:
    newest = run_dir / "checkpoints" / "step-00000008"
    return sorted(p.relative_to(newest).as_posix() for p in newest.rglob("*")
                  if p.is_file() and p.name != COMPLETE_MARK)


def test_checkpoints_carry_a_manifest_of_every_file(trained: Path) -> None:
    files = newest_files(trained)
    assert MANIFEST_FILE in files and "training_state.pt" in files and "model/adapter_model.safetensors" in files
    listed = json.loads((trained / "checkpoints" / "step-00000008" / MANIFEST_FILE).read_text())["files"]
    assert sorted(listed) == [f for f in files if f != MANIFEST_FILE]
    assert checkpoint_problem(trained / "checkpoints" / "step-00000008") is None


@pytest.mark.parametrize("damage", DAMAGES)
def test_each_damaged_file_of_the_newest_checkpoint_makes_resume_use_the_previous_one(trained: Path, tmp_path: Path,
                                                                                      damage: str) -> None:
    from jobs.train import prepare_resume

    for name in newest_files(trained):
        run_dir = tmp_path / name.replace("/", "_")
        shutil.copytree(trained, run_dir)
        target = run_dir / "checkpoints" / "step-00000008" / name
        target.write_bytes(DAMAGES[damage](target.read_bytes()))
        chosen = prepare_resume(run_dir)
        assert chosen.name == "step-00000004", (damage, name)
        assert [p.name for p in complete_checkpoints(run_dir)] == ["step-00000004"], (damage, name)
        assert [p.name.split("-bad-")[0] for p in (run_dir / "checkpoints" / SET_ASIDE_DIR).iterdir()] == [
            "step-00000008"]
        steps = [json.loads(line)["step"] for line in (run_dir / METRICS_FILE).read_text().splitlines()]
        assert steps == [1, 2, 3, 4]


def test_resume_says_which_checkpoint_it_used_and_why_then_cleans_up(studio) -> None:
    from test_resume import wait_for_step

    run_id = studio.launcher.start(fast_config(max_steps=40, save_steps=4, save_total_limit=3))
    wait_for_step(studio, run_id, 9)
    assert studio.stop_run(run_id)
    stopped = wait_for(studio.registry, run_id, ("stopped", "completed", "failed", "lost"), timeout=60)
    assert stopped.status == "stopped", stopped.error
    run_dir = Path(stopped.run_dir)
    *_, previous, newest = complete_checkpoints(run_dir)
    adapter = newest / "model" / "adapter_model.safetensors"
    adapter.write_bytes(bytes(adapter.stat().st_size))  # zero-filled: same size, nothing left in it
    (run_dir / "checkpoints" / "step-99999999").mkdir()  # and a half-written one, never marked
    point = studio.resume_run(run_id)
    assert point.name == previous.name and point.step == int(previous.name.split("-")[1])
    assert point.skipped == [(newest.name, "model/adapter_model.safetensors changed since it was saved (its "
                                           "checksum differs)")]
    resumed = wait_for(studio.registry, run_id, ("completed", "failed", "lost"))
    assert resumed.status == "completed" and resumed.attempt == 2, resumed.error
    log = (run_dir / "train.log").read_text()
    assert f"skipping checkpoint {newest.name}: model/adapter_model.safetensors changed" in log
    assert f"resuming from step {point.step} (checkpoint {previous.name})" in log
    assert not (run_dir / "checkpoints" / SET_ASIDE_DIR).exists()  # cleaned once the resume had loaded
    assert [m["step"] for m in studio.run_view(run_id).metrics] == list(range(1, 41))


def fake_checkpoint(run_dir: Path, step: int, files: int = 12, keep: int = 1) -> Path:
    def save_model(folder: Path) -> None:
        folder.mkdir()
        for i in range(files):
            (folder / f"part-{i:03d}.bin").write_bytes(os.urandom(64))

    return save_checkpoint(run_dir, step, save_model, {"weights": {}}, {}, keep=keep)


def marked_but_broken(run_dir: Path) -> list[str]:
    root = run_dir / "checkpoints"
    return [f"{p.name}: {checkpoint_problem(p)}" for p in root.iterdir()
            if p.is_dir() and (p / COMPLETE_MARK).exists() and checkpoint_problem(p)] if root.is_dir() else []


def test_a_crash_at_any_point_of_rotation_leaves_no_marked_folder_with_files_missing(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    real_unlink = os.unlink
    deletions = 0
    for crash_after in range(20):
        run_dir = tmp_path / f"crash-{crash_after}"
        fake_checkpoint(run_dir, 1, keep=5)
        fake_checkpoint(run_dir, 2, keep=5)
        deletions = 0

        def unlink(path, *args, crash_after=crash_after, **kwargs):
            nonlocal deletions
            if deletions == crash_after:
                raise KeyboardInterrupt("killed during rotation")
            deletions += 1
            return real_unlink(path, *args, **kwargs)

        monkeypatch.setattr(os, "unlink", unlink)
        try:
            rotate(run_dir, keep=1)
        except KeyboardInterrupt:
            pass
        finally:
            monkeypatch.setattr(os, "unlink", real_unlink)
        assert marked_but_broken(run_dir) == [], crash_after
        assert [p.name for p in complete_checkpoints(run_dir)][-1] == "step-00000002"
    assert deletions < 20  # the last rounds let rotation finish: every point of it was crashed into


@pytest.fixture
def fast_dir(tmp_path: Path):
    """A folder in memory where the machine has one (saves take milliseconds, so kills land in every phase)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        folder = Path(tempfile.mkdtemp(dir=shm, prefix="studio-test-"))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path


def test_sigkill_during_saves_and_rotation_never_leaves_a_marked_folder_broken(fast_dir: Path) -> None:
    rng = random.Random(5)
    run_dir = fast_dir / "run"
    started = time.perf_counter()
    fake_checkpoint(run_dir, 1, files=60)
    save_seconds = time.perf_counter() - started
    step, kills, left_unmarked, seen_unmarked = 1, 0, 0, set()
    # Kill until many kills have landed mid-save and the run has kept advancing (bounded: a loaded machine is slow).
    while kills < 400 and (kills < 40 or step <= 20 or left_unmarked <= 5):
        pid = os.fork()
        if pid == 0:  # the child saves (and rotates) as fast as it can until it is killed
            try:
                for s in range(step + 1, step + 100_000):
                    fake_checkpoint(run_dir, s, files=60)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.3, 3.0) * save_seconds)  # save_seconds grows while kills come too early
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        assert marked_but_broken(run_dir) == []
        unmarked = {p.name for p in (run_dir / "checkpoints").iterdir() if not (p / COMPLETE_MARK).exists()}
        left_unmarked += bool(unmarked - seen_unmarked)
        seen_unmarked |= unmarked
        newest = int(complete_checkpoints(run_dir)[-1].name.split("-")[1])
        save_seconds *= 1.0 if newest > step else 1.3
        step = newest
    assert step > 20 and left_unmarked > 5  # it kept saving between the kills, and many kills landed mid-save
