"""The job queue: training runs wait in SQLite and start one at a time, in queue order; "start now" starts a run
beside the running ones only when the memory estimate says they fit together. An evaluation holds the GPU as a run
does: waiting runs wait for it, and it starts at once only where it fits beside what is busy, else it waits in the
queue as a "start now" job. A dispatcher thread in the studio process starts each job when its turn comes, so the
queue keeps going with no browser open and after a restart."""

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
from core.store.job_queue import Key, QueueEntry, QueueStore
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
EVAL_SPAWN_FAILED = "could not start the evaluation process: {error}"
EVAL_WILL_WAIT = ("it will not start at once but wait in the job queue, so that it does not share the GPU with what "
                  "is busy now: {reason}")
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


def plan(entries: list[QueueEntry], jobs: dict[Key, Job], busy: list[Job], capacity: Capacity
         ) -> tuple[list[Key], dict[Key, str]]:
    """The ordering rule: which waiting jobs start now, and why each other one waits.

    The first entry starts when nothing is busy; an entry marked "start now" (every waiting evaluation is) starts
    when it fits beside everything busy (those just started included); every other entry waits its turn."""
    busy = list(busy)
    start: list[Key] = []
    reasons: dict[Key, str] = {}
    ahead: Job | None = None
    for entry in entries:
        run = jobs[entry.key]
        if not busy and ahead is None:
            ok, why = True, ""
        elif entry.start_now:
            ok, why = fits_beside(run, busy, capacity)
        elif ahead is None:
            ok, why = False, WAIT_FOR.format(runs=", ".join(job_label(j) for j in busy))
        else:
            ok, why = False, WAIT_BEHIND.format(place=ORDINALS.get(entry.place, f"number {entry.place}"))
        if ok:
            start.append(entry.key)
            busy.append(run)
        else:
            reasons[entry.key] = why
            ahead = ahead or run
    return start, reasons


class JobQueue:
    """Adds runs to the queue, starts them when their turn comes, cancels and reorders them."""

    def __init__(self, registry: Registry, launcher: Launcher, memory: MemoryAdvisor,
                 capacity: Callable[[], Capacity] = machine_capacity,
                 start_eval: Callable[[EvalRecord], None] | None = None):
        self.registry = registry
        self.start_eval = start_eval  # spawns a recorded evaluation's process (the studio's EvalService)
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
    def busy(self, waiting: set[Key]) -> list[Job]:
        """Jobs that hold the GPU now: runs and evaluations started and not ended (a lost one only while its
        process lives); ``waiting`` are the queue's, which hold nothing yet."""
        statuses = ("queued", "running", "lost")
        found: list[Job] = [*self.registry.list_runs(statuses), *self.registry.list_evaluations(statuses)]
        return [j for j in found if (j.kind, j.id) not in waiting
                and (j.status != "lost" or is_alive(j.pid, j.pid_started_at))]

    def dispatch(self) -> list[Key]:
        """Start the jobs whose turn it is (see ``plan``) and record why the others wait; returns those started.
        A job that fails to start ends as failed and the next round goes on without it."""
        started: list[Key] = []
        with self._lock:
            for _ in range(MAX_ROUNDS):
                done, failed = self._round()
                started += done
                if not failed:
                    break
        return started

    def _round(self) -> tuple[list[Key], bool]:
        entries = self.store.entries()
        if not entries:
            return [], False
        jobs: dict[Key, Job] = {}
        for entry in entries:
            try:
                job = self.registry.get_job(entry.kind, entry.job_id)
            except KeyError:
                job = None
            if job is None or job.status != "queued":  # stopped or deleted elsewhere: it waits no more
                self.store.take(entry.job_id, kind=entry.kind)
                continue
            jobs[entry.key] = job
        entries = [e for e in entries if e.key in jobs]
        for i, entry in enumerate(entries, start=1):
            entry.place = i
        busy = self.busy(set(jobs))
        to_start, reasons = plan(entries, jobs, busy, self.capacity())
        started = [key for key in to_start if self._start(jobs[key])]
        self.store.set_reasons(reasons)
        return started, len(started) < len(to_start)

    def _start(self, job: Job) -> bool:
        # The heartbeat first: the watchdog gives a job without a recorded process a grace period from it.
        self.registry.update_job(job.kind, job.id, heartbeat_at=time.time())
        if not self.store.take(job.id, kind=job.kind):
            return False  # another dispatcher took it
        try:
            if job.kind == "eval":
                if self.start_eval is None:
                    raise RuntimeError("this queue cannot start evaluations")
                self.start_eval(job)
            else:  # a run claimed for a resume has a later attempt; it continues from its checkpoint
                self.launcher.start_recorded(job.id, Path(job.run_dir), resume=job.attempt > 1)
        except Exception as e:  # noqa: BLE001 - a job that cannot start fails; the queue goes on
            failed = EVAL_SPAWN_FAILED if job.kind == "eval" else SPAWN_FAILED
            self.registry.set_status(job.id, "failed", expect=("queued",), kind=job.kind,
                                     error=failed.format(error=e))
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
    def cancel(self, job_id: int, kind: str = "run") -> bool:
        """Take a waiting job out of the queue (it ends as stopped, never started); False if it was not waiting."""
        with self._lock:
            if not self.store.take(job_id, kind=kind):
                return False
            self.registry.set_status(job_id, "stopped", expect=("queued",), kind=kind, error=CANCELLED)
        self.dispatch()
        return True

    def move(self, job_id: int, offset: int, kind: str = "run") -> bool:
        """Move a waiting job earlier (offset -1) or later (+1) in the queue; False when it is already at that end."""
        with self._lock:
            moved = self.store.move(job_id, offset, kind=kind)
        self.dispatch()
        return moved

    def start_now(self, run_id: int) -> str:
        """Ask for a waiting run to start beside the running ones; returns "" once it started, else why it waits."""
        if not self.store.set_start_now(run_id):
            raise KeyError(f"run {run_id} is not waiting in the queue")
        return self._waiting_reason(("run", run_id), self.dispatch())

    def _waiting_reason(self, key: Key, started: list[Key]) -> str:
        if key in started:
            return ""
        return next((e.waiting_reason for e in self.store.entries() if e.key == key), "")

    def beside_busy(self, job: Job) -> str:
        """Why ``job`` may not start now beside the jobs holding the GPU, by the estimates (the rule of "start
        now"); "" when nothing else is busy or they fit together."""
        busy = [j for j in self.busy(self.store.keys()) if (j.kind, j.id) != (job.kind, job.id)]
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
        point.waiting = self._waiting_reason(("run", run_id), self.dispatch())
        return point

    def evaluation_waits(self, est_total_gb: float | None) -> str:
        """Why an evaluation that needs ``est_total_gb`` would wait in the queue rather than start at once (see
        ``beside_busy``); "" when it would start."""
        return self.beside_busy(NewJob("eval", None if est_total_gb is None else {"total_gb": est_total_gb}))

    def submit_evaluation(self, eval_id: int) -> str:
        """A recorded evaluation joins the queue as a "start now" job: it starts at once when it fits beside what
        is busy, else as soon as it does, ahead of the runs queued after it. Returns why it waits ("" once it
        started)."""
        self.store.add(eval_id, start_now=True, kind="eval")
        return self._waiting_reason(("eval", eval_id), self.dispatch())

    def entries(self) -> list[QueueEntry]:
        return self.store.entries()

    def waiting_ids(self, kind: str = "run") -> set[int]:
        return self.store.ids(kind)
