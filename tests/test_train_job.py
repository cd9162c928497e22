"""`python -m jobs.train` for real on the tiny model: metrics, falling loss, a reloadable adapter, honest statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jobs_helpers import fast_config, fixed_batch_loss

from core.runs.files import COMPLETE_MARK, METRICS_FILE, complete_checkpoints
from core.store.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def run_job(config_path: Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "jobs.train", "--config", str(config_path), "--data-dir",
                           str(data_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_headless_run_trains_and_saves_a_reloadable_adapter(data_dir: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    fast_config(run_name="headless", save_steps=10, save_total_limit=1).save(config_path)
    result = run_job(config_path, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr

    registry = Registry(data_dir / "studio.db")
    (run,) = registry.list_runs()
    assert (run.status, run.exit_code, run.step, run.total_steps) == ("completed", 0, 24, 24)
    assert run.params["adapter"]["trainable"] > 0 and run.params["language"]["trainable"] == 0

    run_dir = Path(run.run_dir)
    metrics = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(1, 25))
    for key in ("epoch", "loss", "learning_rate", "grad_norm", "tokens_per_s", "mem_rss_mb"):
        assert all(key in m for m in metrics), key
    assert sum(m["loss"] for m in metrics[-5:]) < sum(m["loss"] for m in metrics[:5])

    # Checkpoints: published with their completion mark, rotation kept the newest one only.
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step-00000020"]

    adapter = Path(run.artefact_dir)
    assert (adapter / COMPLETE_MARK).is_file() and (adapter / "adapter_config.json").is_file()
    model_dir = data_dir / "models" / "tiny-random-llava"
    dataset_dir = Path(registry.find_dataset("sample").path)
    before = fixed_batch_loss(model_dir, dataset_dir, None)
    after = fixed_batch_loss(model_dir, dataset_dir, adapter)
    assert after < before - 0.5, (before, after)


def test_failure_is_recorded_with_the_error(data_dir: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    fast_config(model=str(tmp_path / "no-such-model-folder"), dataset="sample").save(config_path)
    result = run_job(config_path, data_dir)
    assert result.returncode == 1
    (run,) = Registry(data_dir / "studio.db").list_runs()
    assert run.status == "failed" and run.exit_code == 1
    assert "no-such-model-folder" in run.error


def test_bad_config_file_is_refused_before_anything_runs(data_dir: Path, tmp_path: Path) -> None:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"lora_r": "eight"}))
    result = run_job(config_path, data_dir)
    assert result.returncode == 2
    assert "lora_r" in result.stderr and "whole number" in result.stderr
    assert not (data_dir / "studio.db").exists() or not Registry(data_dir / "studio.db").list_runs()


def test_step_progress_reaches_the_database_in_batches_and_nothing_is_lost(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A write per step would cost a small model as much as the step; counts and losses are held back for up to
    PROGRESS_EVERY_S, while anything else (a parameter count, an eval summary) is written at once."""
    from jobs import reporter as reporting

    monkeypatch.setattr(reporting, "PROGRESS_EVERY_S", 0.5)  # the default (the suite's jobs run with 0)
    registry = Registry(tmp_path / "studio.db")
    run_id = registry.create_run("r", "m", "lora", "d", {})
    reporter = reporting.Reporter(registry, run_id, tmp_path)
    reporter.running(total_steps=200)
    writes: list[dict] = []
    update = registry.update_job
    monkeypatch.setattr(registry, "update_job", lambda kind, rid, **f: (writes.append(f), update(kind, rid, **f)))
    reporter.progress(step=0, params={"all": {"trainable": 3}})
    for step in range(1, 201):
        reporter.progress(step=step, last_loss=1.0 / step)
    assert 1 <= len(writes) <= 5, len(writes)  # 200 steps in well under a second: a handful of writes
    assert registry.get_run(run_id).step < 200  # the newest is still held back...
    reporter.progress(total_steps=300)  # ...until something that is not a step count comes
    run = registry.get_run(run_id)
    assert (run.step, run.total_steps, run.last_loss) == (200, 300, pytest.approx(1 / 200))
    monkeypatch.setattr(reporting, "PROGRESS_EVERY_S", 0.0)  # with no hold-back, every step is written
    before = len(writes)
    reporter.progress(step=201)
    assert len(writes) == before + 1 and registry.get_run(run_id).step == 201
    monkeypatch.setattr(reporting, "PROGRESS_EVERY_S", 60.0)
    reporter.progress(step=202, last_loss=0.5)
    reporter.finish("completed")  # the end sends what is pending
    assert registry.get_run(run_id).step == 202 and registry.get_run(run_id).status == "completed"
