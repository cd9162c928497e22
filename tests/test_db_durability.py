"""The database under pressure: concurrent writers with a polling reader, and writers SIGKILLed mid-transaction."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KILLED_WRITER = """
import sys, time
from pathlib import Path
from core.store.registry import Registry
registry = Registry(Path(sys.argv[1]))
with open(sys.argv[2], "a") as acks:
    while True:
        run_id = registry.create_run("k", "m", "lora", "d", {"payload": "x" * 4000})
        registry.set_status(run_id, "running")
        registry.update_run(run_id, step=7, params={"blob": list(range(200))})
        acks.write(f"{run_id}\\n"); acks.flush()
"""


def test_writers_and_a_polling_reader_never_hit_a_locked_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "bench/db_soak.py", "--seconds", "8", "--writers", "3", "--poll", "0.05",
         "--db", str(tmp_path / "studio.db")], cwd=ROOT, capture_output=True, text=True, timeout=180)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, (summary, result.stderr[-2000:])
    assert summary["locked_errors"] == 0 and summary["reader_errors"] == 0 and summary["writer_failures"] == 0
    assert summary["lost_writes"] == 0 and summary["acknowledged_writes"] > 50 and summary["reads"] > 20


def test_sigkill_mid_transaction_never_corrupts_or_loses_acknowledged_writes(tmp_path: Path) -> None:
    from core.store.registry import Registry

    db_file, acks = tmp_path / "studio.db", tmp_path / "acks.txt"
    Registry(db_file).dispose()
    rng = random.Random(7)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(db_file), str(acks)], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        time.sleep(rng.uniform(0.8, 1.6))  # past start-up, into the write loop
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with sqlite3.connect(db_file) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        acknowledged = {int(x) for x in acks.read_text().split()} if acks.exists() else set()
        stored = {r.id: r for r in Registry(db_file).list_runs()}
        missing = [i for i in acknowledged if i not in stored or stored[i].step != 7]
        assert not missing
    assert len(acknowledged) > 20
