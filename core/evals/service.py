"""Evaluation jobs for the studio: check, record, start (through the run launcher), stop, list and read back."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.chat import CHAT_STATUSES, RUN_PREFIX, ChatService, parse_run_choice, result_dir
from core.datasets.catalog import DatasetCatalog
from core.evals.config import EvalConfig
from core.evals.items import NO_EVAL_SPLIT, has_eval_split
from core.evals.results import CONFIG_FILE, read_results, read_summary, sample_rows, write_csv
from core.evals.runner import phases
from core.export import default_zip_dir
from core.memory.advisor import MemoryAdvisor
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.files import EVAL_LOG_FILE, log_tail
from core.runs.launcher import Launcher, shell_text
from core.runs.log_noise import quiet_tail
from core.store.registry import ACTIVE, EvalRecord, Registry


@dataclass
class EvalView:
    record: EvalRecord
    summary: dict[str, Any] | None
    results: list[dict[str, Any]]
    log: str
    command: str


def config_for(target: str, **settings: Any) -> tuple[EvalConfig, list[Problem]]:
    """An evaluation config from a target as chat names models ("run:N", "run:N:best", or a base) and the rest
    of the form's values."""
    target = (target or "").strip()
    if target.startswith(RUN_PREFIX):
        try:
            run_id, which = parse_run_choice(target)
        except ValueError:
            return EvalConfig(), [Problem(f"{target!r} is not a run", field="model")]
        values = {"run_id": run_id, "result": which, **settings}
    else:
        values = {"run_id": 0, "model": target, "result": "last", **settings}
    return EvalConfig.parse(values)


def eval_command(config: EvalConfig, data_dir: Path, eval_id: int | None = None) -> list[str]:
    """The argument list of ``python -m jobs.evaluate`` for a config; the launcher adds ``--eval-id``."""
    cmd = [sys.executable, "-m", "jobs.evaluate", *config.command_args(), "--data-dir", str(data_dir)]
    return cmd + (["--eval-id", str(eval_id)] if eval_id is not None else [])


class EvalService:
    def __init__(self, paths: StudioPaths, registry: Registry, catalog: DatasetCatalog, launcher: Launcher,
                 memory: MemoryAdvisor):
        self.paths, self.registry, self.catalog, self.launcher = paths, registry, catalog, launcher
        self.memory = memory

    def targets(self) -> list[tuple[str, str]]:
        """What can be evaluated: base models, and every finished run's last and best results."""
        return ChatService(self.paths, self.registry).choices()

    def check(self, config: EvalConfig) -> list[Problem]:
        """Every problem that would stop this evaluation, the run, its result and the dataset's rows included."""
        problems = config.validate()
        if config.run_id:
            try:
                run = self.registry.get_run(config.run_id)
            except KeyError:
                problems.append(Problem(f"there is no run {config.run_id}", field="run_id"))
            else:
                if run.status not in CHAT_STATUSES:
                    problems.append(Problem(f"run {run.id} is {run.status}; only a completed or stopped run has a "
                                            "result to evaluate", field="run_id"))
                elif result_dir(run, config.result) is None:
                    problems.append(Problem(f"run {run.id} has no complete {config.result} result"
                                            + (" (it kept none: no eval split, or no evaluation beat its base)"
                                               if config.result == "best" else ""), field="result"))
        if not any(p.field == "dataset" for p in problems):
            try:
                folder = self.catalog.resolve_dir(config.dataset)
            except ProblemsError as e:
                problems.extend(e.problems)
            else:
                if config.split == "eval" and not has_eval_split(folder):
                    problems.append(Problem("this dataset has no eval split; choose auto or train",
                                            field="split"))
                elif config.split == "auto" and not has_eval_split(folder):
                    problems.append(Problem(NO_EVAL_SPLIT, field="split", severity="warning"))
        return problems

    def estimate_gb(self, config: EvalConfig) -> float | None:
        """The evaluation's memory peak (GB): the base and the run's result load one after the other, as chat
        loads them, and ``batch_size`` samples of up to ``max_length`` tokens are scored together; None when a
        model's config cannot be read. Never raises: a missing estimate only makes the queue cautious."""
        chat = ChatService(self.paths, self.registry)
        try:
            plan, _ = phases(config, self.registry)
            return self.memory.eval_estimate([chat.weights_of(choice, "auto") for _, choice in plan],
                                             config.max_length, config.batch_size)
        except Exception as e:  # noqa: BLE001
            print(f"memory estimate of the evaluation skipped: {e}", flush=True)
            return None

    def record(self, config: EvalConfig, est_total_gb: float | None = None) -> tuple[int, Path]:
        """The registry row first, then the folder with its config.json; returns the id and the folder."""
        base = self.registry.get_run(config.run_id).model if config.run_id else config.model.strip()
        eval_id = self.registry.create_evaluation(run_id=config.run_id or None,
                                                  result=config.result if config.run_id else "", model=base,
                                                  dataset=config.dataset, config=config.to_dict(),
                                                  est_total_gb=est_total_gb)
        folder = self.paths.eval_dir(eval_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
        self.registry.update_job("eval", eval_id, eval_dir=str(folder))
        return eval_id, folder

    def check_startable(self, config: EvalConfig) -> None:
        """Raise ProblemsError with every error that would stop this evaluation (warnings let it start)."""
        errors = [p for p in self.check(config) if p.severity == "error"]
        if errors:
            raise ProblemsError(errors)

    def start(self, config: EvalConfig, est_total_gb: float | None = None) -> int:
        """Check, record (with its estimate), then start ``python -m jobs.evaluate`` in its own process group;
        returns the id."""
        self.check_startable(config)
        eval_id, _ = self.record(config, est_total_gb)
        self.spawn_recorded(self.registry.get_evaluation(eval_id))
        return eval_id

    def spawn_recorded(self, record: EvalRecord) -> None:
        """Start the process of an evaluation already recorded (one the job queue held until it fitted)."""
        config, problems = EvalConfig.parse(record.config)
        if any(p.severity == "error" for p in problems):
            raise ProblemsError([p for p in problems if p.severity == "error"])
        self.launcher.spawn("eval", record.id, eval_command(config, self.paths.root, record.id),
                            Path(record.eval_dir))

    def stop(self, eval_id: int) -> bool:
        """Ask an evaluation to stop: it keeps what it scored and ends as stopped."""
        return self.launcher.stop(eval_id, kind="eval")

    def command_of(self, record: EvalRecord) -> str:
        config, _ = EvalConfig.parse(record.config)
        return shell_text(eval_command(config, self.paths.root))

    def list(self, run_id: int | None = None) -> list[EvalRecord]:
        return self.registry.list_evaluations(run_id=run_id)

    def view(self, eval_id: int) -> EvalView:
        record = self.registry.get_evaluation(eval_id)
        folder = Path(record.eval_dir)
        summary = record.summary or read_summary(folder)
        return EvalView(record, summary, read_results(folder), quiet_tail(log_tail(folder, 4000, EVAL_LOG_FILE)),
                        self.command_of(record))

    def latest_by_run(self) -> dict[int, EvalRecord]:
        """Each run's newest evaluation that finished with results (completed or stopped)."""
        latest: dict[int, EvalRecord] = {}
        for record in self.registry.list_evaluations(("completed", "stopped")):
            if record.run_id is not None and record.summary and record.run_id not in latest:
                latest[record.run_id] = record
        return latest

    def active(self) -> list[EvalRecord]:
        return self.registry.list_evaluations(ACTIVE)

    def export_csv(self, eval_id: int, metric: str, order: str, dest_dir: Path | None = None) -> Path:
        """The per-sample table (sorted as shown) as a CSV file outside the data directory, for download."""
        record = self.registry.get_evaluation(eval_id)
        rows = sample_rows(read_results(Path(record.eval_dir)), metric, order)
        if not rows:
            raise ProblemsError([Problem(f"evaluation {eval_id} has no scored samples yet", field="evaluation")])
        folder = Path(dest_dir) if dest_dir else default_zip_dir() / uuid.uuid4().hex
        folder.mkdir(parents=True, exist_ok=True)
        return write_csv(rows, folder / f"evaluation-{eval_id:05d}-{metric}.csv", metric)

