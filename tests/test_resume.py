"""Checkpoints and resume: atomic publication, set-aside of half-written folders, rotation, and SIGKILL at random."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from jobs_helpers import fast_config, wait_for

from core.runs.files import COMPLETE_MARK, METRICS_FILE, complete_checkpoints, latest_complete_checkpoint
from core.runs.processes import is_alive
from jobs.checkpoints import publish, rotate, set_aside_incomplete, truncate_metrics


def make_checkpoint(run_dir: Path, step: int, complete: bool) -> Path:
    folder = run_dir / "checkpoints" / f"step-{step:08d}"
    folder.mkdir(parents=True)
    (folder / "data").write_text(str(step))
    if complete:
        (folder / COMPLETE_MARK).write_text("ok\n")
    return folder


def test_only_marked_checkpoints_count_and_rotation_keeps_the_only_complete_one(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 2, complete=True)
    make_checkpoint(tmp_path, 4, complete=False)  # a kill during its save
    assert [p.name for p in complete_checkpoints(tmp_path)] == ["step-00000002"]
    rotate(tmp_path, keep=1)
    rotate(tmp_path, keep=0)
    assert latest_complete_checkpoint(tmp_path).name == "step-00000002"
    moved = set_aside_incomplete(tmp_path)
    assert len(moved) == 1 and (moved[0] / "data").read_text() == "4"  # set aside, not deleted
    assert latest_complete_checkpoint(tmp_path).name == "step-00000002"


def test_publish_marks_complete_last_and_replaces_whole(tmp_path: Path) -> None:
    def failing(folder: Path) -> None:
        (folder / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish(tmp_path / "final", failing)
    assert not (tmp_path / "final").exists()
    publish(tmp_path / "final", lambda d: (d / "weights").write_text("1"))
    publish(tmp_path / "final", lambda d: (d / "weights").write_text("2"))
    assert (tmp_path / "final" / "weights").read_text() == "2" and (tmp_path / "final" / COMPLETE_MARK).is_file()


def test_truncate_metrics_keeps_steps_up_to_the_checkpoint(tmp_path: Path) -> None:
    lines = [json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(1, 8)]
    (tmp_path / METRICS_FILE).write_text("".join(lines) + '{"step": 8, "lo')
    assert truncate_metrics(tmp_path, 5) == 5
    assert [json.loads(x)["step"] for x in (tmp_path / METRICS_FILE).read_text().splitlines()] == [1, 2, 3, 4, 5]


def wait_for_step(studio, run_id: int, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while studio.registry.get_run(run_id).step < step:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def kill_group(studio, run_id: int) -> None:
    run = studio.registry.get_run(run_id)
    os.killpg(run.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while is_alive(run.pid, run.pid_started_at) and time.monotonic() < deadline:
        studio.launcher.reconcile()
        time.sleep(0.05)
    studio.launcher.reconcile()


def adapter_tensors(run) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(run.artefact_dir) / "adapter_model.safetensors"))


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(studio) -> None:
    config = fast_config(max_steps=16, save_steps=4, save_total_limit=2, lora_dropout=0.1)
    straight = wait_for(studio.registry, studio.launcher.start(config), ("completed", "failed", "lost"))
    assert straight.status == "completed", straight.error

    run_id = studio.launcher.start(config)
    wait_for_step(studio, run_id, 9)
    kill_group(studio, run_id)
    assert studio.registry.get_run(run_id).status == "lost"
    checkpoint = studio.resume_run(run_id)
    assert checkpoint.name == "step-00000008"
    resumed = wait_for(studio.registry, run_id, ("completed", "failed", "lost"))
    assert resumed.status == "completed" and resumed.attempt == 2, resumed.error
    steps = [m["step"] for m in json.loads(json.dumps(studio.run_view(run_id).metrics))]
    assert steps == list(range(1, 17))  # the loss curve continues with no gap and no repeat
    a, b = adapter_tensors(straight), adapter_tensors(resumed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)


def test_sigkill_at_random_moments_always_leaves_a_resumable_run(studio) -> None:
    from peft import PeftModel

    from core.models.loading import load_model
    from jobs.checkpoints import load_checkpoint

    rng = random.Random(11)
    total = 24  # four kills land in the first steps; the rest shows the run goes on to the end
    run_id = studio.launcher.start(fast_config(max_steps=total, save_steps=1, save_total_limit=2))
    model_dir = studio.paths.models_dir / "tiny-random-llava"
    kills = 0
    while kills < 4:
        run = wait_for(studio.registry, run_id, ("running", "completed"))
        if run.status == "completed":
            break
        wait_for_step(studio, run_id, run.step + 1)
        time.sleep(rng.uniform(0.0, 0.4))  # saves happen every step: many kills land inside one
        kill_group(studio, run_id)
        if studio.registry.get_run(run_id).status == "completed":
            break  # it finished before the signal landed
        kills += 1
        run_dir = Path(studio.registry.get_run(run_id).run_dir)
        newest = latest_complete_checkpoint(run_dir)
        assert newest is not None
        step, saved = load_checkpoint(newest)  # every part of the newest complete checkpoint loads
        assert saved["weights"] and step >= 1
        PeftModel.from_pretrained(load_model(str(model_dir)), str(newest / "model"))
        studio.resume_run(run_id)
    final = wait_for(studio.registry, run_id, ("completed", "failed", "lost"), timeout=240)
    assert final.status == "completed", final.error
    assert kills >= 3 and final.attempt == kills + 1 and len(studio.registry.list_runs()) == 1
    assert [m["step"] for m in studio.run_view(run_id).metrics] == list(range(1, total + 1))


def test_metrics_cache_reads_appends_and_starts_over_after_a_resume(tmp_path: Path) -> None:
    from core.runs.files import MetricsCache, read_metrics

    cache, path = MetricsCache(), tmp_path / METRICS_FILE
    assert cache.read(tmp_path) == []
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')
    assert [m["step"] for m in cache.read(tmp_path)] == [1, 2]
    with path.open("a") as f:
        f.write('ep": 3}\n{"step": 4}\n')
    assert [m["step"] for m in cache.read(tmp_path)] == [1, 2, 3, 4]
    truncate_metrics(tmp_path, 2)  # what a resume does: the file is replaced
    with path.open("a") as f:
        f.write('{"step": 3, "resumed": true}\n')
    assert cache.read(tmp_path) == read_metrics(tmp_path) == [{"step": 1}, {"step": 2}, {"step": 3, "resumed": True}]


def test_a_failed_publish_leaves_no_temporary_folder(tmp_path: Path) -> None:
    def failing(folder: Path) -> None:
        (folder / "weights").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        publish(tmp_path / "final", failing)
    assert list(tmp_path.iterdir()) == []
