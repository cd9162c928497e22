"""A run that starts when another completes (quick start's stage 2 after stage 1): its config waits, whole, in the
first run's folder from the moment that run is recorded, and one function starts it (once) when that run ends."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.problems import ProblemsError
from core.store.registry import TERMINAL, Registry
from core.train_config import TrainConfig

FOLLOW_UP_FILE = "follow_up.json"  # {"state": waiting|started|not_started, "config": {...}, "run_id", "reason"}
LOCK_FILE = ".follow_up.lock"
NOT_STARTED = "run {run_id} ended {status}, so the run after it was not started"
POLL_SECONDS = 1.0
_LOCK = threading.Lock()


def record_follow_up(run_dir: Path, config: TrainConfig) -> None:
    """Keep ``config`` in ``run_dir`` as the run to start when this one completes (written aside, then renamed)."""
    _write(Path(run_dir), {"state": "waiting", "config": config.to_dict()})


def read_follow_up(run_dir: Path) -> dict[str, Any] | None:
    """The follow-up waiting in (or started from) a run's folder; None when it has none."""
    try:
        return json.loads((Path(run_dir) / FOLLOW_UP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def start_follow_up(launcher: Any, registry: Registry, run_id: int) -> int | None:
    """When run ``run_id`` has ended: start the run waiting in its folder if it completed (once, whoever asks),
    or record why it was not started. Returns the new run's id; None while it is running, when it has no
    follow-up, or when it did not complete. A follow-up that Check refuses is recorded as not started, with why.

    This is the one place that decides "start the next stage": a job queue can call it when a run ends.
    """
    run = registry.get_run(run_id)
    if run.status not in TERMINAL or not run.run_dir:
        return None
    run_dir = Path(run.run_dir)
    with _locked(run_dir):
        waiting = read_follow_up(run_dir)
        if not waiting or waiting.get("state") != "waiting":
            return None
        if run.status != "completed":
            _write(run_dir, {**waiting, "state": "not_started",
                             "reason": NOT_STARTED.format(run_id=run_id, status=run.status)})
            return None
        try:
            new_id = launcher.start(TrainConfig.from_dict(waiting["config"]))
        except ProblemsError as e:
            _write(run_dir, {**waiting, "state": "not_started", "reason": str(e)})
            return None
        _write(run_dir, {**waiting, "state": "started", "run_id": new_id})
        return new_id


def follow(launcher: Any, registry: Registry, run_id: int, stop: threading.Event | None = None,
           poll: float = POLL_SECONDS) -> threading.Thread:
    """A thread that waits for run ``run_id`` to end, then calls ``start_follow_up`` (the studio's process keeps
    it; no browser needs to be open). A studio started later picks waiting follow-ups up with ``follow_pending``."""
    stop = stop or threading.Event()

    def wait() -> None:
        while not stop.is_set():
            try:
                launcher.reconcile()  # a killed job never reports its end: this marks it lost
                if registry.get_run(run_id).status in TERMINAL:
                    start_follow_up(launcher, registry, run_id)
                    return
            except Exception as e:  # noqa: BLE001 - keep following through a failed poll (a busy database)
                print(f"follow-up of run {run_id}: {e}", flush=True)
            stop.wait(poll)

    thread = threading.Thread(target=wait, name=f"follow-run-{run_id}", daemon=True)
    thread.start()
    return thread


def follow_pending(launcher: Any, registry: Registry, stop: threading.Event | None = None) -> list[int]:
    """Follow every run whose follow-up still waits (after a studio restart); returns their ids."""
    ids = []
    for run in registry.list_runs():
        waiting = read_follow_up(Path(run.run_dir)) if run.run_dir else None
        if waiting and waiting.get("state") == "waiting":
            follow(launcher, registry, run.id, stop)
            ids.append(run.id)
    return ids


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """One starter at a time: threads of this process, and other processes (a second studio, a queue)."""
    with _LOCK, (run_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(run_dir: Path, data: dict[str, Any]) -> None:
    tmp = run_dir / f".{FOLLOW_UP_FILE}.{os.getpid()}.{time.monotonic_ns()}"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(run_dir / FOLLOW_UP_FILE)
