"""How a job reports: status transitions in the registry (and in its run folder), metrics as JSON lines, a heartbeat."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

import psutil

from core.memory.advisor import MemoryAdvisor
from core.runs.files import METRICS_FILE
from core.runs.processes import env_seconds, heartbeat_seconds
from core.runs.status_file import STATUS_FILE, reserve, write_status
from core.store.registry import STORE_ERRORS, Registry

STORE_DOWN = ("the database cannot be written ({error}); the run's status is kept in {file} and recorded in the "
              "database once it can be written again")
STORE_BACK = "the database can be written again"
# A step's count and loss reach the database at most this often: one write costs ~2 ms, as much as a whole step of
# a small model. Anything else a progress call carries is written at once; the heartbeat sends what is pending.
# The test suite sets the variable to 0: its kill-at-step-N tests act on the database's step as it happens.
PROGRESS_ENV = "STUDIO_PROGRESS_SECONDS"
PROGRESS_EVERY_S = env_seconds(PROGRESS_ENV, 0.5)
FREQUENT = frozenset({"step", "last_loss"})


def say(text: str) -> None:
    """Print to the run's log; a log on a full disk must not turn a report into a crash."""
    try:
        print(text, flush=True)
    except OSError:
        pass


class Reporter:
    """Owns a job's status while it lives (a run's, or with ``kind="eval"`` an evaluation's); the UI only reads
    what this writes."""

    def __init__(self, registry: Registry, run_id: int, run_dir: Path, kind: str = "run", pid: int | None = None):
        self.registry = registry
        self.run_id = run_id
        self.run_dir = Path(run_dir)
        self.kind = kind
        self._metrics: IO[str] | None = None  # opened on first use: a resume rewrites the file before training
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        me = psutil.Process(pid or os.getpid())  # with several ranks: the accelerate launch that leads them
        self._kept: dict[str, Any] = {"run_id": run_id, "pid": me.pid, "pid_started_at": me.create_time(),
                                      "status": "running"}
        self._store_down = False
        self._pending: dict[str, Any] = {}  # progress not yet in the database (see PROGRESS_EVERY_S)
        self._last_progress = 0.0
        self._progress_lock = threading.Lock()
        self.tracker: Any = None  # "Report to": TensorBoard or W&B get each metrics line too (jobs/tracking.py)
        reserve(self.run_dir)  # while there is room: later writes overwrite it in place

    def _keep(self, durable: bool = True, **fields: Any) -> None:
        """The run's state in its folder (status.json), whatever the database does."""
        self._kept.update(fields, at=time.time())
        write_status(self.run_dir, self._kept, durable)

    def _store(self, write: Any, *args: Any, **kwargs: Any) -> bool:
        """A registry write that a full disk or a stuck lock cannot turn into a failed run."""
        try:
            write(*args, **kwargs)
        except STORE_ERRORS as e:
            if not self._store_down:
                say(STORE_DOWN.format(error=str(e.orig if hasattr(e, "orig") else e).splitlines()[0],
                                      file=self.run_dir / STATUS_FILE))
            self._store_down = True
            return False
        if self._store_down:
            say(STORE_BACK)
            self._store_down = False
        return True

    def running(self, total_steps: int = 0) -> None:
        """Mark the run running and start beating; called again later, it only records the step count."""
        if self._heartbeat.is_alive():
            self.progress(total_steps=total_steps)
            return
        self._keep(status="running", total_steps=total_steps)
        say("status: running")
        self._store(self.registry.set_status, self.run_id, "running", kind=self.kind, pid=self._kept["pid"],
                    pid_started_at=self._kept["pid_started_at"], heartbeat_at=time.time(), total_steps=total_steps)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(heartbeat_seconds()):
            try:
                # A watchdog may have taken a long silence (a stopped or swapped-out process) for death.
                self.registry.heartbeat(self.run_id, self.kind)
                self.flush_progress()
            except Exception as e:  # noqa: BLE001 - a missed beat must not kill training
                say(f"heartbeat failed: {e}")

    def progress(self, **fields: Any) -> None:
        kept = {k: fields[k] for k in ("step", "total_steps", "last_loss") if k in fields}
        if kept:
            self._keep(durable=False, **kept)
        with self._progress_lock:
            self._pending.update(fields)
            if fields.keys() <= FREQUENT and time.monotonic() - self._last_progress < PROGRESS_EVERY_S:
                return
            self._write_pending()

    def flush_progress(self) -> None:
        """Send the progress held back by ``progress`` to the database now."""
        with self._progress_lock:
            if self._pending:
                self._write_pending()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, {}
        self._last_progress = time.monotonic()
        self._store(self.registry.update_job, self.kind, self.run_id, heartbeat_at=time.time(), **pending)

    def metrics(self, row: dict[str, Any]) -> None:
        if self._metrics is None:
            self._metrics = (self.run_dir / METRICS_FILE).open("a", encoding="utf-8")
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self.tracker is not None:
            self.tracker.log(row)

    def record_memory_peaks(self, advisor: MemoryAdvisor, config: Any, steps: int = 0,
                            peaks: dict[str, Any] | None = None) -> int | None:
        """On CUDA, store the run's measured peaks (``peaks``, else read from torch) beside its estimate as a
        calibration point; CPU runs record nothing. Never raises: a failed record must not fail a finished run."""
        try:
            peaks = peaks or cuda_peaks()
            if peaks is None:
                return None
            return advisor.record_calibration(self.run_id, config, peaks["allocated_gb"], peaks["reserved_gb"],
                                              device_name=peaks["name"], card_gb=peaks["card_gb"], steps=steps)
        except Exception as e:  # noqa: BLE001
            say(f"recording the memory peaks failed: {e}")
            return None

    def finish(self, status: str, *, error: str | None = None, exit_code: int = 0, **fields: Any) -> bool:
        """Record how the run ended: in its folder first, then in the database; False if only the folder has it
        (the studio's watchdog copies it over once the database can be written)."""
        self._stop.set()
        self.flush_progress()
        if self.tracker is not None:
            try:
                self.tracker.close()
            except Exception as e:  # noqa: BLE001 - the run's own ending matters more than a tracker's
                say(f"closing the {self.tracker.kind} log failed: {e}")
        if self._metrics is not None:
            try:
                self._metrics.close()
            except OSError:
                pass  # a line lost on a full disk; the status below matters more
        self._keep(status=status, error=error, exit_code=exit_code, **fields)
        say(f"status: {status}")
        return self._store(self.registry.set_status, self.run_id, status, kind=self.kind, error=error,
                           exit_code=exit_code, heartbeat_at=time.time(), **fields)


def cuda_peaks() -> dict[str, Any] | None:
    """This process's peak CUDA memory (GB of 1e9 bytes) and its card, or None if it never used CUDA."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    device = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(device)
    return {"allocated_gb": torch.cuda.max_memory_allocated(device) / 1e9,
            "reserved_gb": torch.cuda.max_memory_reserved(device) / 1e9, "name": str(props.name),
            "card_gb": props.total_memory / 1e9}
