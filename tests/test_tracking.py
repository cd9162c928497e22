"""Report to TensorBoard: the metrics lines also land as event files in the run folder, and the Runs tab shows the
command that opens them; W&B without its package is refused by Check with what to install."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobs_helpers import fast_config

import jobs.train
from core.runs.files import TENSORBOARD_DIR, read_metrics
from core.runs.launcher import record_run
from core.train_config import TrainConfig


def test_tensorboard_gets_the_same_metrics_and_the_runs_tab_names_the_command(studio, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = fast_config(max_steps=3, report_to="tensorboard")
    path = tmp_path / "config.json"
    config.save(path)
    assert jobs.train.main(["--config", str(path), "--data-dir", str(studio.paths.root)]) == 0
    (run,) = studio.registry.list_runs()
    events = list((Path(run.run_dir) / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    assert events
    board = EventAccumulator(str(events[0]))
    board.Reload()
    losses = [(e.step, e.value) for e in board.Scalars("train/loss")]
    assert losses == [(r["step"], pytest.approx(r["loss"], rel=1e-6)) for r in read_metrics(Path(run.run_dir))]
    assert studio.run_view(run.id).tensorboard == f"tensorboard --logdir {run.run_dir}"


def test_a_run_without_tracking_shows_no_tensorboard_command_and_wandb_needs_its_package(studio) -> None:
    config = TrainConfig(**{**fast_config().to_dict(), "report_to": "wandb"})
    problems = {p.field: p.message for p in config.validate(cuda_available=False)}
    assert "pip install wandb" in problems["report_to"]
    run_id, _ = record_run(studio.paths, studio.registry, fast_config())
    assert studio.run_view(run_id).tensorboard is None
