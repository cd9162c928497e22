"""Process identity and signals: a pid counts as the run's only if its start time matches what was recorded."""

from __future__ import annotations

import os
import signal
import time

import psutil

START_TIME_TOLERANCE_S = 1.0
HEARTBEAT_ENV = "STUDIO_HEARTBEAT_SECONDS"
DEFAULT_HEARTBEAT_S = 5.0


def env_seconds(name: str, default: float, minimum: float = 0.0) -> float:
    """A duration set by an environment variable, at least ``minimum``; ``default`` when unset or not a number."""
    try:
        return max(minimum, float(os.environ.get(name, default)))
    except ValueError:
        return default


def heartbeat_seconds() -> float:
    """How often a job beats; a run silent for two of these is taken for lost."""
    return env_seconds(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S, minimum=0.1)


def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def is_alive(pid: int | None, started_at: float | None) -> bool:
    """True if ``pid`` still runs and is the same process (not a reused pid, not a zombie)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started_at is not None and abs(proc.create_time() - started_at) > START_TIME_TOLERANCE_S:
            return False
        return True
    except psutil.Error:
        return False


def wait_for_exit(pid: int | None, started_at: float | None, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the process to end; True once it has (or was never there)."""
    deadline = time.monotonic() + timeout
    while is_alive(pid, started_at):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def describe_process(pid: int | None, started_at: float | None) -> str:
    """The process as a person can find it: pid, state, start time and command."""
    try:
        proc = psutil.Process(pid)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started_at or proc.create_time()))
        command = " ".join(proc.cmdline()[:6])
        return f"pid {pid} ({proc.status()}, started {started}: {command})"
    except (psutil.Error, TypeError, ValueError):
        return f"pid {pid}"


def signal_group(pid: int, started_at: float | None, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``, only if it is still the recorded process."""
    if not is_alive(pid, started_at):
        return False
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(pid, sig)
        return True


SIGTERM, SIGKILL, SIGCONT = signal.SIGTERM, signal.SIGKILL, signal.SIGCONT
