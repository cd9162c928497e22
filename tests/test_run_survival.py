"""Runs outlive their audience: no pipe to fill, and a web server killed with SIGKILL neither stops nor forgets them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobs_helpers import fast_config, wait_for
from test_app_e2e import free_port

import core.runs.launcher
from core.runs.files import LOG_FILE
from core.runs.processes import is_alive

ROOT = Path(__file__).resolve().parents[1]
FLOOD = "import sys\nchunk = 'x' * 1023 + '\\n'\nfor _ in range(100 * 1024): sys.stdout.write(chunk)\n"


def test_a_job_writing_100_mb_with_nobody_reading_finishes(studio, monkeypatch) -> None:
    monkeypatch.setattr(core.runs.launcher, "headless_command", lambda *a, **k: [sys.executable, "-c", FLOOD])
    run_id = studio.launcher.start(fast_config())
    run = studio.registry.get_run(run_id)
    deadline = time.monotonic() + 60
    while is_alive(run.pid, run.pid_started_at) and time.monotonic() < deadline:
        studio.launcher.reconcile()  # reaps the finished child
        time.sleep(0.2)
    assert not is_alive(run.pid, run.pid_started_at), "the job blocked on its output"
    assert (Path(run.run_dir) / LOG_FILE).stat().st_size >= 100 * 1024 * 1024


def start_server(data_dir: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--data-dir", str(data_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def connect(port: int, timeout: float = 90):
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run_status(client, run_id: int) -> dict:
    return next(r for r in json.loads(client.predict(api_name="/list_runs")) if r["id"] == run_id)


def metrics_count(client, run_id: int) -> int:
    *_, metrics = client.predict(run_id, [], api_name="/run_metrics")
    return len(metrics)


def test_killing_the_web_server_neither_stops_nor_forgets_a_run(data_dir: Path) -> None:
    from core.store.registry import Registry
    from core.train_config import TrainConfig

    first = start_server(data_dir, port := free_port())
    try:
        client = connect(port)
        values = {f.name: f.default for f in TrainConfig.fields()}
        values.update(fast_config(max_steps=100_000, logging_steps=5).to_dict())
        client.predict(*values.values(), api_name="/start_run")
        (run,) = json.loads(client.predict(api_name="/list_runs"))
        registry = Registry(data_dir / "studio.db")
        record = wait_for(registry, run["id"], ("running",))
        client.close()
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the web server dies without any cleanup
        first.wait()
    time.sleep(2)
    assert is_alive(record.pid, record.pid_started_at), "the run died with the web server"

    second = start_server(data_dir, port := free_port())
    try:
        client = connect(port)
        assert run_status(client, run["id"])["status"] == "running"
        before = metrics_count(client, run["id"])
        deadline = time.monotonic() + 60
        while metrics_count(client, run["id"]) <= before and time.monotonic() < deadline:
            time.sleep(0.5)
        assert metrics_count(client, run["id"]) > before  # the charts continue
        client.predict(run["id"], api_name="/stop_run")
        final = wait_for(registry, run["id"], ("stopped", "failed", "lost", "completed"), timeout=60)
        assert final.status == "stopped"
        deadline = time.monotonic() + 30
        while is_alive(record.pid, record.pid_started_at) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not is_alive(record.pid, record.pid_started_at)
        client.close()
    finally:
        os.killpg(second.pid, signal.SIGKILL)
        second.wait()


STUBBORN = ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ignoring SIGTERM', flush=True)\ntime.sleep(600)\n")


def test_a_job_that_ignores_stop_is_killed_after_the_grace_period(studio, monkeypatch) -> None:
    from jobs_helpers import wait_for

    monkeypatch.setattr(core.runs.launcher, "headless_command", lambda *a, **k: [sys.executable, "-c", STUBBORN])
    run_id = studio.launcher.start(fast_config())
    run = studio.registry.get_run(run_id)
    log = Path(run.run_dir) / LOG_FILE
    deadline = time.monotonic() + 30
    while "ignoring SIGTERM" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert studio.launcher.stop(run_id, grace=1.0)
    stopped = wait_for(studio.registry, run_id, ("stopped",), timeout=30)
    assert "killed" in stopped.error
    assert not is_alive(run.pid, run.pid_started_at)
