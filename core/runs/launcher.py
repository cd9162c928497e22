"""Starts each job (a run's `python -m jobs.train`, an evaluation's `python -m jobs.evaluate`) as its own process
group writing to a log file, stops it, and watches that it is alive."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.datasets.catalog import DatasetCatalog
from core.datasets.split import EVAL_FILE
from core.hardware import resolve_device
from core.memory.advisor import MemoryAdvisor
from core.models.availability import model_problem
from core.models.loading import BUILT_IN_MODELS
from core.paths import DATA_DIR_ENV, StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.files import CONFIG_FILE, EVAL_LOG_FILE, LOG_FILE, log_tail
from core.runs.manifest import ResumePoint, choose_checkpoint, skipped_text
from core.runs.processes import (
    SIGCONT,
    SIGKILL,
    SIGTERM,
    describe_process,
    heartbeat_seconds,
    is_alive,
    process_start_time,
    signal_group,
    wait_for_exit,
)
from core.runs.status_file import read_status
from core.scale import ProcessPlan, accelerate_args, parse_gpus
from core.store.job_queue import QueueStore
from core.store.registry import ACTIVE, JOB_ROWS, TERMINAL, Registry, RunRecord
from core.train_config import TrainConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Stop: SIGKILL once the job has been silent (no heartbeat) this long after the request; a job still saving a
# large checkpoint keeps beating and is given up to STOP_HARD_LIMIT_SECONDS.
STOP_GRACE_SECONDS = 30.0
STOP_HARD_LIMIT_SECONDS = 900.0
# A run row whose process has not been recorded yet is left alone for this long before it counts as lost.
SPAWN_GRACE_SECONDS = 60.0
EXIT_WAIT_SECONDS = 20.0


RESUMABLE = ("stopped", "failed", "failed_oom", "lost")
LOG_FILES = {"run": LOG_FILE, "eval": EVAL_LOG_FILE}  # each kind of job's log, in its folder
STOPPABLE = (*ACTIVE, "lost")  # a lost run may still have a live (silent) process
STILL_ALIVE = ("run {run_id}'s trainer is still alive, though silent: {process}. Resuming now would start a second "
               "trainer on the same run; press Stop to end it (or wait for it to beat again), then Resume.")
NO_CHECKPOINT = ("run {run_id} has no complete checkpoint to resume from; set 'Save every N steps' above 0 for runs "
                 "you may want to resume")
NO_GOOD_CHECKPOINT = "run {run_id} has no checkpoint that passes its checks ({skipped})"


def claim_resume(registry: Registry, run_id: int) -> tuple[RunRecord, ResumePoint]:
    """Take a stopped, failed or lost run for a resume (status queued, next attempt), after checking that its
    recorded process is gone and that a checkpoint passes its checks. Raises ProblemsError naming what is wrong."""
    run = registry.get_run(run_id)
    if run.status not in RESUMABLE:
        raise ProblemsError([Problem(f"run {run_id} is {run.status}; only a stopped, failed or lost run resumes")])
    # A job that reported its own ending may still be exiting (freeing memory, closing files): give it a moment.
    exiting = run.status != "lost" and wait_for_exit(run.pid, run.pid_started_at, EXIT_WAIT_SECONDS)
    if not exiting and is_alive(run.pid, run.pid_started_at):
        raise ProblemsError([Problem(STILL_ALIVE.format(run_id=run_id,
                                                        process=describe_process(run.pid, run.pid_started_at)))])
    point, skipped = choose_checkpoint(Path(run.run_dir))
    if point is None:
        message = NO_GOOD_CHECKPOINT.format(run_id=run_id, skipped=skipped_text(skipped)) if skipped else \
            NO_CHECKPOINT.format(run_id=run_id)
        raise ProblemsError([Problem(message)])
    if not registry.set_status(run_id, "queued", expect=RESUMABLE, attempt=run.attempt + 1, pid=None,
                               pid_started_at=None, heartbeat_at=time.time()):
        raise ProblemsError([Problem(f"run {run_id} changed status meanwhile; try again")])
    return registry.get_run(run_id), point


def headless_command(config_path: Path, data_dir: Path, run_id: int | None = None, resume: bool = False,
                     config: TrainConfig | None = None) -> list[str]:
    """The exact argument list that runs a config without the studio (also what the launcher starts): `python -m
    jobs.train ...`, or for a config of several processes `accelerate launch <its arguments> -m jobs.train ...`."""
    script = ["-m", "jobs.train", "--config", str(config_path), "--data-dir", str(data_dir)]
    if run_id is not None:
        script += ["--run-id", str(run_id)]
    if resume:
        script += ["--resume"]
    plan = process_plan(config)
    if not plan.several:
        return [sys.executable, *script]
    uses_cuda = resolve_device(config.device) == "cuda"
    return [*accelerate_launch(), *accelerate_args(config, plan, uses_cuda), *script]


def process_plan(config: TrainConfig | None) -> ProcessPlan:
    try:
        return parse_gpus(config.gpus) if config is not None else ProcessPlan(1)
    except ValueError:
        return ProcessPlan(1)  # Check refuses it before a run starts


def accelerate_launch() -> list[str]:
    """`accelerate launch` of this interpreter's environment (its console script, else the module)."""
    script = Path(sys.executable).with_name("accelerate")
    return [str(script), "launch"] if script.is_file() else [sys.executable, "-m", "accelerate.commands.launch"]


def shell_text(cmd: list[str]) -> str:
    """The command as a person would paste it into a terminal (display only; never executed through a shell)."""
    return shlex.join(cmd)


def run_config(run_dir: Path) -> TrainConfig | None:
    """A run's config.json as saved (not checked again), or None when it cannot be read."""
    try:
        data = json.loads((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
        return TrainConfig.coerce(data)[0] if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def record_run(paths: StudioPaths, registry: Registry, config: TrainConfig) -> tuple[int, Path]:
    """The registry row first, then the run folder with its config.json; returns the id and the folder."""
    run_id = registry.create_run(config.run_name, config.model, config.method, config.dataset, config.to_dict())
    run_dir = paths.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / CONFIG_FILE)
    registry.update_run(run_id, run_dir=str(run_dir))
    return run_id, run_dir


def _no_eval_split(config: TrainConfig) -> list[Problem]:
    """What a dataset without an eval split means for the run: no eval loss, and early stopping cannot work."""
    if config.early_stopping_patience:
        return [Problem("early stopping needs an eval split; register the dataset with an eval share or file, or "
                        "set the patience to 0", field="early_stopping_patience")]
    return [Problem("this dataset has no eval split, so the run reports training loss only (no eval loss, no "
                    "best result); register it with an eval share or file to see how it generalises",
                    field="dataset", severity="warning")]


class Launcher:
    def __init__(self, paths: StudioPaths, registry: Registry, catalog: DatasetCatalog):
        self.paths = paths
        self.registry = registry
        self.catalog = catalog
        self._children: dict[tuple[str, int], subprocess.Popen] = {}
        self.memory = MemoryAdvisor(paths, registry)  # the studio shares its own (one architecture cache)

    def check(self, config: TrainConfig) -> list[Problem]:
        """Every problem that would stop this config from starting, the dataset's existence included."""
        problems = config.validate()
        if not any(p.field == "model" for p in problems):
            unreadable = model_problem(config.model, BUILT_IN_MODELS)
            if unreadable:
                problems.append(unreadable)
        if not any(p.field == "dataset" for p in problems):
            try:
                folder = self.catalog.resolve_dir(config.dataset)
            except ProblemsError as e:
                problems.extend(e.problems)
            else:
                if not (folder / EVAL_FILE).is_file():
                    problems.extend(_no_eval_split(config))
        return problems

    def start(self, config: TrainConfig) -> int:
        """Record the run, then start its process; returns the run id."""
        errors = [p for p in self.check(config) if p.severity == "error"]
        if errors:
            raise ProblemsError(errors)
        run_id, run_dir = record_run(self.paths, self.registry, config)
        self.memory.store_run_estimate(run_id, config)  # the Runs tab draws it beside the measured curve
        self._spawn(run_id, run_dir)
        return run_id

    def resume(self, run_id: int) -> ResumePoint:
        """Continue a run that did not finish from its newest checkpoint that passes its checks, as the same run;
        returns that checkpoint (with the newer ones skipped and why)."""
        run, point = claim_resume(self.registry, run_id)
        self._spawn(run_id, Path(run.run_dir), resume=True)
        return point

    def start_recorded(self, run_id: int, run_dir: Path, resume: bool = False) -> None:
        """Start the process of a run already recorded (the queue's turn for it); ``resume`` for a run claimed for a
        resume, which continues from its newest good checkpoint."""
        self._spawn(run_id, run_dir, resume=resume)

    def _spawn(self, run_id: int, run_dir: Path, resume: bool = False) -> None:
        self.spawn("run", run_id, headless_command(run_dir / CONFIG_FILE, self.paths.root, run_id, resume=resume,
                                                   config=run_config(run_dir)), run_dir)

    def spawn(self, kind: str, job_id: int, cmd: list[str], folder: Path) -> None:
        """Start a job whose row exists: its own process group, output appended to its log in ``folder``."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{DATA_DIR_ENV: str(self.paths.root)})
        with (Path(folder) / LOG_FILES[kind]).open("ab") as log:
            # Output goes to a file, never a pipe: a pipe nobody drains would block the job once it fills.
            proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self._children[(kind, job_id)] = proc
        self.registry.update_job(kind, job_id, pid=proc.pid, pid_started_at=process_start_time(proc.pid))

    def command_for(self, run_id: int) -> str:
        return self.command_of(self.registry.get_run(run_id))

    def command_of(self, run: RunRecord) -> str:
        """The headless command of a run already read from the registry."""
        return shell_text(headless_command(Path(run.run_dir) / CONFIG_FILE, self.paths.root,
                                           config=run_config(Path(run.run_dir))))

    def tensorboard_command(self, run: RunRecord) -> str | None:
        """`tensorboard --logdir <run folder>` for a run that reports to TensorBoard, else None."""
        config = run_config(Path(run.run_dir))
        if config is None or config.report_to != "tensorboard":
            return None
        return shell_text(["tensorboard", "--logdir", str(run.run_dir)])

    def stop(self, run_id: int, grace: float = STOP_GRACE_SECONDS, kind: str = "run") -> bool:
        """Ask a job (a run by default) to save and stop (SIGTERM to its group, and SIGCONT so a stopped process can
        act on it), then SIGKILL it once it has been silent for ``grace`` seconds. A lost job whose process still
        lives is stopped the same way. Returns False if there was nothing to stop."""
        run = self.registry.get_job(kind, run_id)
        if run.status not in STOPPABLE:
            return False
        alive = bool(run.pid) and is_alive(run.pid, run.pid_started_at)
        if run.status == "lost" and not alive:
            return False
        self.registry.update_job(kind, run_id, stop_requested_at=time.time())
        if alive and signal_group(run.pid, run.pid_started_at, SIGTERM):
            signal_group(run.pid, run.pid_started_at, SIGCONT)
            threading.Thread(target=self._kill_after, args=(kind, run_id, run.pid, run.pid_started_at, grace),
                             daemon=True).start()
        else:
            self.registry.set_status(run_id, "stopped", expect=ACTIVE, kind=kind,
                                     error="stopped before its process ran")
        return True

    def _kill_after(self, kind: str, run_id: int, pid: int, started_at: float | None, grace: float) -> None:
        asked = time.monotonic()
        asked_at = time.time()
        while is_alive(pid, started_at):
            self._reap()
            beat = max(self.registry.get_job(kind, run_id).heartbeat_at or 0.0, asked_at)
            if time.time() - beat > grace or time.monotonic() - asked > STOP_HARD_LIMIT_SECONDS:
                signal_group(pid, started_at, SIGKILL)
                self._reap()
                self.registry.set_status(run_id, "stopped", expect=STOPPABLE, kind=kind,
                                         error=f"did not stop within {grace:.0f} s of the request and was killed")
                return
            time.sleep(0.2)
        self._reap()
        # A lost job's process that ended without reporting is not looked at by the watchdog any more.
        self.registry.set_status(run_id, "stopped", expect=("lost",), kind=kind,
                                 error="stopped; the process ended without reporting")

    def _reap(self) -> None:
        for key, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[key]

    def reconcile(self) -> list[int]:
        """The watchdog: mark active jobs (runs and evaluations) whose process is gone (stopped if a stop was
        asked for, else lost), and running ones silent for two heartbeat intervals (lost, until they beat
        again). Returns the ids of the runs changed (evaluations are reconciled alike)."""
        self._reap()
        changed = {kind: self._reconcile(kind) for kind in JOB_ROWS}
        return changed["run"]

    def _reconcile(self, kind: str) -> list[int]:
        changed = []
        now = time.time()
        silence_limit = 2 * heartbeat_seconds()
        waiting = QueueStore(self.registry).ids(kind)
        for run in self.registry.list_jobs(kind, STOPPABLE):
            if run.id in waiting:  # waiting in the job queue: no process yet, by design
                continue
            if self._apply_kept_status(kind, run):
                changed.append(run.id)
                continue
            if run.status == "lost":
                continue
            # A row whose process is not recorded yet (just created or resumed) gets time to start.
            if run.pid is None and now - (run.heartbeat_at or run.created_at) < SPAWN_GRACE_SECONDS:
                continue
            alive = is_alive(run.pid, run.pid_started_at)
            silent_for = now - run.heartbeat_at if run.heartbeat_at else 0.0
            if alive and not (run.status == "running" and silent_for > silence_limit):
                continue
            fresh = self.registry.get_job(kind, run.id)  # it may have just recorded its own ending, or beaten
            beat_again = alive and fresh.heartbeat_at and now - fresh.heartbeat_at <= silence_limit
            if fresh.status not in ACTIVE or beat_again:
                continue
            tail = log_tail(Path(run.folder), 1500, LOG_FILES[kind]).strip() if run.folder else ""
            if alive:
                status, error = "lost", f"no heartbeat for {silent_for:.0f} s; the process (pid {run.pid}) is silent"
            elif run.stop_requested_at:
                status, error = "stopped", "stopped; the process ended without reporting"
            else:
                status, error = "lost", "the process ended without reporting its result" + (
                    f"; last log lines:\n{tail}" if tail else "")
            if self.registry.set_status(run.id, status, expect=ACTIVE, kind=kind, error=error):
                changed.append(run.id)
        return changed

    def _apply_kept_status(self, kind: str, run: Any) -> bool:
        """Copy the ending a job kept in its run folder into the registry, when the registry missed it (the job
        could not write the database: a full disk). Only the record of the run's current process counts."""
        kept = read_status(run.folder)
        if not kept or kept.get("status") not in TERMINAL or not run.pid or kept.get("pid") != run.pid:
            return False
        if run.pid_started_at and abs((kept.get("pid_started_at") or 0) - run.pid_started_at) > 1.0:
            return False
        fields = {k: kept[k] for k in ("error", "exit_code", "step", "total_steps", "last_loss", "artefact_dir")
                  if k in kept}
        if kind != "run":  # an evaluation's row has no loss or result folder
            fields = {k: v for k, v in fields.items() if k not in ("last_loss", "artefact_dir")}
        return self.registry.set_status(run.id, kept["status"], expect=STOPPABLE, kind=kind, **fields)
