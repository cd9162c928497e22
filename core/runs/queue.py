"""The job queue: training runs wait in SQLite and start one at a time, in queue order; "start now" starts a run
beside the running ones only when the memory estimate says they fit together. A running evaluation holds the GPU
as a run does: waiting runs wait for it, and it starts only where it fits beside what trains. A dispatcher thread in
the studio process starts each run when its turn comes, so the queue keeps going with no browser open and after a
restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.memory.advisor import MemoryAdvisor, card_in_use
from core.memory.estimate import FITS, GB, verdict
from core.problems import Problem, ProblemsError
from core.runs.launcher import Launcher, claim_resume, record_run
from core.runs.manifest import ResumePoint
from core.runs.processes import is_alive
from core.store.job_queue import QueueEntry, QueueStore
from core.store.registry import EvalRecord, Registry, RunRecord
from core.train_config import TrainConfig

QUEUE_POLL_SECONDS = 1.0
WAIT_FOR = "next: waiting for {runs} to finish"
WAIT_BEHIND = "waiting its turn: {place} in the queue"
NO_ESTIMATE = ("waiting for {runs} to finish: {which} no memory estimate, so running them together cannot be shown "
               "to fit")
TOO_BIG = ("waiting for {runs} to finish: together they need about {total:.2f} GB ({parts}), more than fits "
           "{capacity}")
CANCELLED = "cancelled in the queue before it started"
SPAWN_FAILED = "could not start the training process: {error}"
EVAL_WOULD_SHARE = ("not started, so that it does not share the GPU with what is busy now ({reason}); start it once "
                    "they end, or stop them first")
ORDINALS = {1: "first", 2: "second", 3: "third"}
LABELS = {f.name: f.metadata["label"] for f in TrainConfig.fields()}
MAX_ROUNDS = 100  # rounds of one dispatch: each failed start lets the next run try


@dataclass(frozen=True)
class NewJob:
    """A job weighed against the busy ones before it is recorded (an evaluation about to start)."""

    kind: str
    estimate: dict | None  # {"total_gb"}, or None when its model could not be read
    id: int = 0


Job = RunRecord | EvalRecord | NewJob


@dataclass(frozen=True)
class Capacity:
    """What the running jobs share: the CUDA card, or on a machine without one, its RAM (GB of 1e9 bytes)."""

    gb: float
    label: str


def machine_capacity() -> Capacity:
    card = card_in_use()
    if card:
        return Capacity(card["gb"], f"on this machine's {card['name']} ({card['gb']:.1f} GB)")
    import psutil

    ram = psutil.virtual_memory().total / GB
    return Capacity(ram, f"in this machine's RAM ({ram:.1f} GB; it has no CUDA card)")


def run_label(run: RunRecord) -> str:
    return f"run {run.id} ({run.name})"


def job_label(job: Job) -> str:
    """A job as the queue names it: a run by its name, an evaluation by what it scores."""
    if job.kind == "eval":
        return f"evaluation {job.id} ({job.model} on {job.dataset})"
    return run_label(job)


def _short(job: Job, new: Job) -> str:
    noun = "evaluation" if job.kind == "eval" else "run"
    return f"this {noun}" if job is new else f"{noun} {job.id}"


def fits_beside(new: Job, busy: list[Job], capacity: Capacity) -> tuple[bool, str]:
    """Whether ``new`` may start now beside ``busy``, by their estimates at start; else the reason, in words."""
    if not busy:
        return True, ""
    names = ", ".join(job_label(j) for j in busy)
    unknown = [j for j in [*busy, new] if not j.estimate]
    if unknown:
        which = " and ".join(f"{_short(j, new)} has" for j in unknown)
        return False, NO_ESTIMATE.format(runs=names, which=which)
    needs = [(j, float(j.estimate["total_gb"])) for j in [*busy, new]]
    total = sum(gb for _, gb in needs)
    if verdict(total, capacity.gb) == FITS:
        return True, ""
    parts = ", ".join(f"{_short(j, new)} {gb:.2f} GB" for j, gb in needs)
    return False, TOO_BIG.format(runs=names, total=total, parts=parts, capacity=capacity.label)


def plan(entries: list[QueueEntry], runs: dict[int, RunRecord], busy: list[Job], capacity: Capacity
         ) -> tuple[list[int], dict[int, str]]:
    """The ordering rule: which waiting runs start now, and why each other one waits.

    The first entry starts when nothing is training; an entry marked "start now" starts when it fits beside
    everything training (those just started included); every other entry waits its turn."""
    busy = list(busy)
    start: list[int] = []
    reasons: dict[int, str] = {}
    ahead: RunRecord | None = None
    for entry in entries:
        run = runs[entry.run_id]
        if not busy and ahead is None:
            ok, why = True, ""
        elif entry.start_now:
            ok, why = fits_beside(run, busy, capacity)
        elif ahead is None:
            ok, why = False, WAIT_FOR.format(runs=", ".join(job_label(j) for j in busy))
        else:
            ok, why = False, WAIT_BEHIND.format(place=ORDINALS.get(entry.place, f"number {entry.place}"))
        if ok:
            start.append(run.id)
            busy.append(run)
        else:
            reasons[run.id] = why
            ahead = ahead or run
    return start, reasons


class JobQueue:
    """Adds runs to the queue, starts them when their turn comes, cancels and reorders them."""

    def __init__(self, registry: Registry, launcher: Launcher, memory: MemoryAdvisor,
                 capacity: Callable[[], Capacity] = machine_capacity):
        self.registry = registry
        self.launcher = launcher
        self.memory = memory
        self.store = QueueStore(registry)
        self.capacity = capacity
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # --- adding ---------------------------------------------------------------------------------------------
    def check_all(self, configs: list[TrainConfig], warnings: bool = False) -> list[Problem]:
        """Errors (and with ``warnings``, warnings too) of every config, each message naming its run when there
        are several."""
        problems = []
        for config in configs:
            for p in self.launcher.check(config):
                if p.severity != "error" and not warnings:
                    continue
                if len(configs) > 1:
                    where = f"{config.run_name}, {LABELS[p.field]}" if p.field in LABELS else config.run_name
                    p = Problem(f"{where}: {p.message}", field=p.field, severity=p.severity)
                problems.append(p)
        return problems

    def enqueue(self, configs: list[TrainConfig], start_now: bool = False) -> list[int]:
        """Check every config, then record each run (row, folder, estimate) at the end of the queue, and start
        what may start. Nothing is recorded when any config has an error."""
        problems = self.check_all(configs)
        if problems:
            raise ProblemsError(problems)
        ids = []
        for config in configs:
            run_id, _ = record_run(self.launcher.paths, self.registry, config)
            self.memory.store_run_estimate(run_id, config)
            self.store.add(run_id, start_now)
            ids.append(run_id)
        self.dispatch()
        return ids

    def start(self, config: TrainConfig) -> int:
        """One run through the queue, as a launcher would start it (Quick start's stages use this)."""
        return self.enqueue([config])[0]

    def reconcile(self) -> list[int]:
        return self.launcher.reconcile()

    # --- the dispatcher -------------------------------------------------------------------------------------
    def busy(self, waiting: set[int]) -> list[Job]:
        """Jobs that hold the GPU now: runs and evaluations started and not ended (a lost one only while its
        process lives)."""
        statuses = ("queued", "running", "lost")
        runs = [r for r in self.registry.list_runs(statuses) if r.id not in waiting]
        found: list[Job] = [*runs, *self.registry.list_evaluations(statuses)]
        return [j for j in found if j.status != "lost" or is_alive(j.pid, j.pid_started_at)]

    def dispatch(self) -> list[int]:
        """Start the runs whose turn it is (see ``plan``) and record why the others wait; returns those started.
        A run that fails to start ends as failed and the next round goes on without it."""
        started: list[int] = []
        with self._lock:
            for _ in range(MAX_ROUNDS):
                done, failed = self._round()
                started += done
                if not failed:
                    break
        return started

    def _round(self) -> tuple[list[int], bool]:
        entries = self.store.entries()
        if not entries:
            return [], False
        runs: dict[int, RunRecord] = {}
        for entry in entries:
            try:
                run = self.registry.get_run(entry.run_id)
            except KeyError:
                run = None
            if run is None or run.status != "queued":  # stopped or deleted elsewhere: it waits no more
                self.store.take(entry.run_id)
                continue
            runs[run.id] = run
        entries = [e for e in entries if e.run_id in runs]
        for i, entry in enumerate(entries, start=1):
            entry.place = i
        busy = self.busy({e.run_id for e in entries})
        to_start, reasons = plan(entries, runs, busy, self.capacity())
        started = [run_id for run_id in to_start if self._start(runs[run_id])]
        self.store.set_reasons(reasons)
        return started, len(started) < len(to_start)

    def _start(self, run: RunRecord) -> bool:
        # The heartbeat first: the watchdog gives a run without a recorded process a grace period from it.
        self.registry.update_run(run.id, heartbeat_at=time.time())
        if not self.store.take(run.id):
            return False  # another dispatcher took it
        try:
            # A run claimed for a resume has a later attempt; it continues from its checkpoint.
            self.launcher.start_recorded(run.id, Path(run.run_dir), resume=run.attempt > 1)
        except Exception as e:  # noqa: BLE001 - a run that cannot start fails; the queue goes on
            self.registry.set_status(run.id, "failed", expect=("queued",), error=SPAWN_FAILED.format(error=e))
            return False
        return True

    def start_dispatcher(self, interval: float = QUEUE_POLL_SECONDS) -> None:
        """Dispatch every ``interval`` seconds in the studio process, whether or not a browser is open."""
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.dispatch()
                except Exception as e:  # noqa: BLE001 - the dispatcher must outlive a failed round
                    print(f"job queue: {e}", flush=True)

        threading.Thread(target=loop, name="job-queue", daemon=True).start()

    def stop_dispatcher(self) -> None:
        self._stop.set()

    # --- changing the queue ---------------------------------------------------------------------------------
    def cancel(self, run_id: int) -> bool:
        """Take a waiting run out of the queue (it ends as stopped, never started); False if it was not waiting."""
        with self._lock:
            if not self.store.take(run_id):
                return False
            self.registry.set_status(run_id, "stopped", expect=("queued",), error=CANCELLED)
        self.dispatch()
        return True

    def move(self, run_id: int, offset: int) -> bool:
        """Move a waiting run earlier (offset -1) or later (+1) in the queue; False when it is already at that end."""
        with self._lock:
            moved = self.store.move(run_id, offset)
        self.dispatch()
        return moved

    def start_now(self, run_id: int) -> str:
        """Ask for a waiting run to start beside the running ones; returns "" once it started, else why it waits."""
        if not self.store.set_start_now(run_id):
            raise KeyError(f"run {run_id} is not waiting in the queue")
        if run_id in self.dispatch():
            return ""
        return next((e.waiting_reason for e in self.store.entries() if e.run_id == run_id), "")

    def beside_busy(self, job: Job) -> str:
        """Why ``job`` may not start now beside the jobs holding the GPU, by the estimates (the rule of "start
        now"); "" when nothing else is busy or they fit together."""
        busy = [j for j in self.busy(self.store.run_ids()) if (j.kind, j.id) != (job.kind, job.id)]
        return fits_beside(job, busy, self.capacity())[1]

    def resume(self, run_id: int) -> ResumePoint:
        """Resume a run at once when nothing else is busy or it fits beside what is (see ``beside_busy``); else
        claim it now (status queued, its checkpoint checked and chosen) and let it wait its turn at the end of the
        queue, as a new run would. The returned point says why it waits, if it does."""
        if not self.beside_busy(self.registry.get_run(run_id)):
            return self.launcher.resume(run_id)
        with self._lock:
            _, point = claim_resume(self.registry, run_id)
            self.store.add(run_id)
        self.dispatch()
        point.waiting = next((e.waiting_reason for e in self.store.entries() if e.run_id == run_id), "")
        return point

    def evaluation_problem(self, est_total_gb: float | None) -> Problem | None:
        """Why an evaluation that needs ``est_total_gb`` may not start now (see ``beside_busy``); None when it may."""
        why = self.beside_busy(NewJob("eval", None if est_total_gb is None else {"total_gb": est_total_gb}))
        return Problem(EVAL_WOULD_SHARE.format(reason=why)) if why else None

    def entries(self) -> list[QueueEntry]:
        return self.store.entries()

    def waiting_ids(self) -> set[int]:
        return self.store.run_ids()
