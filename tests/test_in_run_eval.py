"""Evaluation inside a real training run on the tiny model: eval lines at step 0, every N and at the end, the best
result kept, early stopping at the right evaluation, no change to training, and NaN failing the run at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from jobs_helpers import fast_config

import jobs.in_run_eval
import jobs.train
from core.datasets.catalog import SAMPLE_SOURCE
from core.evals.scoring import SetLoss
from core.export import ExportService
from core.models.loading import resolve_model
from core.runs.files import BEST_DIR, BEST_INFO, COMPLETE_MARK, FINAL_DIR, read_metrics
from core.runs.launcher import record_run
from core.train_config import TrainConfig
from jobs.loop import train
from jobs.reporter import Reporter


@pytest.fixture
def split_studio(studio):
    """A studio with the sample registered as "split": 18 rows to train on, 6 held out for eval."""
    studio.catalog.register(SAMPLE_SOURCE, "split", eval_ratio=0.25, seed=0)
    return studio


def run_training(studio, **overrides: object):
    config = fast_config(dataset="split", **{"max_steps": 12, **overrides})
    run_id, run_dir = record_run(studio.paths, studio.registry, config)
    reporter = Reporter(studio.registry, run_id, run_dir)
    outcome = None
    try:
        outcome = train(config, resolve_model(config.model, studio.paths), studio.catalog.resolve_dir("split"),
                        run_dir, reporter, threading.Event())
    finally:
        reporter.finish("completed" if outcome else "failed", artefact_dir=outcome and str(outcome.artefact_dir))
    return outcome, studio.registry.get_run(run_id), read_metrics(run_dir)


def test_eval_loss_at_step_0_every_n_and_at_the_end_without_changing_training(split_studio) -> None:
    outcome, run, metrics = run_training(split_studio, eval_steps=5)
    evals = [m for m in metrics if "eval_loss" in m]
    assert [m["step"] for m in evals] == [0, 5, 10, 12]
    assert all(m["eval_rows"] == 6 and m["eval_perplexity"] > 1 for m in evals)
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]  # the adapter learned something that generalises
    assert [m["step"] for m in metrics if "loss" in m] == list(range(1, 13))

    # The best result is the one at the lowest eval loss after step 0, published whole beside final/.
    best_eval = min(evals[1:], key=lambda m: m["eval_loss"])
    info = json.loads((Path(run.run_dir) / BEST_DIR / BEST_INFO).read_text())
    assert info["step"] == best_eval["step"] and info["eval_loss"] == pytest.approx(best_eval["eval_loss"])
    assert (Path(run.run_dir) / BEST_DIR / COMPLETE_MARK).is_file()
    assert (Path(run.run_dir) / BEST_DIR / "adapter_config.json").is_file()
    summary = run.eval_summary
    assert (summary["best_step"], summary["last_step"], summary["evaluations"]) == (best_eval["step"], 12, 4)
    assert summary["early_stopped_at"] is None and outcome.steps == 12

    # Chat and Export offer the best result beside the last, and load the one chosen.
    choices = dict((value, label) for label, value in split_studio.chat_choices())
    assert f"step {best_eval['step']}" in choices[f"run:{run.id}:best"] and f"run:{run.id}" in choices
    loaded = split_studio.chat.load(f"run:{run.id}:best")
    assert loaded.key == (f"run:{run.id}:best", "auto")
    exported = ExportService(split_studio.paths, split_studio.registry)
    assert Path(exported.finished_run(f"{run.id}:best").artefact_dir).name == BEST_DIR
    assert Path(exported.finished_run(str(run.id)).artefact_dir).name == FINAL_DIR

    # Evaluating more often changes nothing in training: same losses, same final eval loss.
    _, _, rarely = run_training(split_studio, eval_steps=1000)
    assert [m["step"] for m in rarely if "eval_loss" in m] == [0, 12]
    assert [m["loss"] for m in rarely if "loss" in m] == [m["loss"] for m in metrics if "loss" in m]
    assert rarely[-1]["eval_loss"] == pytest.approx(evals[-1]["eval_loss"])


def test_early_stopping_stops_at_the_evaluation_that_exhausts_patience(split_studio, monkeypatch) -> None:
    scripted = iter([5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0])  # evaluated at steps 0, 2, 4, 6, 8, ...

    def fake_loss(*_args, **_kwargs) -> SetLoss:
        return SetLoss(nll=next(scripted) * 10, tokens=10, rows=6)

    monkeypatch.setattr(jobs.in_run_eval, "set_loss", fake_loss)
    outcome, run, metrics = run_training(split_studio, eval_steps=2, max_steps=20, early_stopping_patience=3)
    # Step 2 is the best; 4, 6 and 8 do not beat it: the third of them ends the run.
    assert (outcome.steps, outcome.early_stopped_at, outcome.stopped) == (8, 8, False)
    assert [m["step"] for m in metrics if "eval_loss" in m] == [0, 2, 4, 6, 8]
    assert max(m["step"] for m in metrics) == 8
    assert json.loads((Path(run.run_dir) / BEST_DIR / BEST_INFO).read_text())["step"] == 2
    assert (Path(run.run_dir) / FINAL_DIR / COMPLETE_MARK).is_file()  # the last result is kept too
    assert run.eval_summary["early_stopped_at"] == 8 and run.eval_summary["best_step"] == 2


def test_a_loss_that_becomes_nan_fails_the_run_with_the_step_and_the_cause(split_studio, monkeypatch,
                                                                          tmp_path: Path) -> None:
    # The form refuses a learning rate above 1.0; adaptive optimizers only overflow fp32 far beyond it.
    checks = TrainConfig.validate
    monkeypatch.setattr(TrainConfig, "validate", lambda self, cuda_available=None: [
        p for p in checks(self, cuda_available) if p.field != "learning_rate"])
    config = fast_config(dataset="split", max_steps=6, eval_steps=3)
    config.learning_rate = 1e30
    config_path = tmp_path / "config.json"
    config.save(config_path)
    assert jobs.train.main(["--config", str(config_path), "--data-dir", str(split_studio.paths.root)]) == 1

    (run,) = split_studio.registry.list_runs()
    assert run.status == "failed" and run.artefact_dir is None
    assert "became nan at step 2" in run.error and "learning rate (1e+30) is too high" in run.error
    assert "Traceback" not in run.error
    assert not (Path(run.run_dir) / FINAL_DIR).exists()  # no NaN result is ever published
    assert not any(value.startswith(f"run:{run.id}") for _, value in split_studio.chat_choices())
    # The baseline and the one step that trained before it; nothing after the NaN.
    assert [m["step"] for m in read_metrics(Path(run.run_dir))] == [0, 1]
