"""Soak the registry: several writer processes and a polling reader for a while; report locks and lost writes.

Usage: python bench/db_soak.py [--seconds 120] [--writers 4] [--poll 0.2] [--db /tmp/soak.db]
Prints one JSON line; exits 1 if any "database is locked" error or lost acknowledged write was seen.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.store.registry import Registry  # noqa: E402


def writer(db_file: str, seconds: float, ack_file: str) -> None:
    registry = Registry(Path(db_file))
    deadline = time.monotonic() + seconds
    errors = 0
    with open(ack_file, "w") as acks:
        while time.monotonic() < deadline:
            try:
                run_id = registry.create_run("soak", "m", "lora", "d", {"k": 1})
                registry.set_status(run_id, "running", pid=1)
                for step in range(3):
                    registry.update_run(run_id, step=step, heartbeat_at=time.time())
                registry.set_status(run_id, "completed", exit_code=0)
                acks.write(f"{run_id}\n")
                acks.flush()
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors += 1
                print(f"writer error: {e}", file=sys.stderr, flush=True)
    sys.exit(1 if errors else 0)


def soak(db_file: Path, writers: int, seconds: float, poll: float) -> dict:
    Registry(db_file).dispose()
    ctx = multiprocessing.get_context("spawn")
    ack_files = [db_file.with_name(f"acks-{i}.txt") for i in range(writers)]
    procs = [ctx.Process(target=writer, args=(str(db_file), seconds, str(a))) for a in ack_files]
    reader_errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal reads
        registry = Registry(db_file)
        while not stop.wait(poll):
            try:
                registry.list_runs()
                reads += 1
            except Exception as e:  # noqa: BLE001 - counted and reported
                reader_errors.append(str(e))

    reader = threading.Thread(target=read, daemon=True)
    started = time.monotonic()
    for p in procs:
        p.start()
    reader.start()
    for p in procs:
        p.join(seconds + 120)
    stop.set()
    reader.join()
    acked = [int(line) for a in ack_files if a.exists() for line in a.read_text().split()]
    stored = {r.id: r.status for r in Registry(db_file).list_runs()}
    lost = [i for i in acked if stored.get(i) != "completed"]
    return {
        "seconds": round(time.monotonic() - started, 1), "writers": writers,
        "writer_failures": sum(1 for p in procs if p.exitcode != 0), "reader_errors": len(reader_errors),
        "reads": reads, "acknowledged_writes": len(acked), "lost_writes": len(lost),
        "locked_errors": sum("locked" in e for e in reader_errors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--poll", type=float, default=0.2, help="reader poll interval in seconds")
    parser.add_argument("--db", default=None)
    args = parser.parse_args()
    db_file = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="soak-")) / "studio.db"
    result = soak(db_file, args.writers, args.seconds, args.poll)
    print(json.dumps(result))
    bad = result["writer_failures"] or result["reader_errors"] or result["lost_writes"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
