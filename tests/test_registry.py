"""The registry: allowed and forbidden status transitions, concurrent writers, and schema versions."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from core.store.registry import Registry, TransitionError
from core.store.schema import SCHEMA_VERSION


def make_run(registry: Registry) -> int:
    return registry.create_run("r", "m", "lora", "d", {"a": 1})


def test_run_moves_through_its_lifecycle(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "studio.db")
    run_id = make_run(registry)
    assert registry.get_run(run_id).status == "queued"
    registry.set_status(run_id, "running", pid=123)
    run = registry.get_run(run_id)
    assert (run.status, run.pid) == ("running", 123) and run.started_at is not None
    registry.set_status(run_id, "completed", exit_code=0)
    run = registry.get_run(run_id)
    assert run.status == "completed" and run.finished_at >= run.started_at


def test_forbidden_transition_raises_and_changes_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "studio.db")
    run_id = make_run(registry)
    registry.set_status(run_id, "running")
    registry.set_status(run_id, "completed")
    with pytest.raises(TransitionError):
        registry.set_status(run_id, "running")
    assert registry.get_run(run_id).status == "completed"


def test_expect_guards_against_overwriting_a_newer_status(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "studio.db")
    run_id = make_run(registry)
    registry.set_status(run_id, "running")
    registry.set_status(run_id, "completed")
    assert registry.set_status(run_id, "lost", expect=("queued", "running")) is False
    assert registry.get_run(run_id).status == "completed"


def _writer(db_file: str, count: int, tag: str) -> None:
    registry = Registry(Path(db_file))
    for i in range(count):
        run_id = registry.create_run(f"{tag}-{i}", "m", "lora", "d", {})
        registry.set_status(run_id, "running")
        registry.update_run(run_id, step=i, heartbeat_at=float(i))
        registry.set_status(run_id, "completed")


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    db_file = tmp_path / "studio.db"
    Registry(db_file)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(db_file), 60, tag)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    runs = Registry(db_file).list_runs()
    assert len(runs) == 120
    assert {r.status for r in runs} == {"completed"}
    assert sorted(r.name for r in runs) == sorted([f"a-{i}" for i in range(60)] + [f"b-{i}" for i in range(60)])


def test_database_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    db_file = tmp_path / "studio.db"
    Registry(db_file)
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_database_is_refused_with_a_reason(tmp_path: Path) -> None:
    db_file = tmp_path / "studio.db"
    Registry(db_file)
    with sqlite3.connect(db_file) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 5,))
    with pytest.raises(RuntimeError, match="newer than this studio"):
        Registry(db_file)


def test_database_from_an_older_version_opens_and_upgrades(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from core.store.schema import migrate

    db_file = tmp_path / "studio.db"
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.begin() as conn:
        assert migrate(conn, target=1) == 1
        conn.execute(text(
            "INSERT INTO runs (name, status, model, method, dataset, config_json, created_at) "
            "VALUES ('old run', 'completed', 'm', 'lora', 'd', '{}', 1.0)"))
    engine.dispose()
    registry = Registry(db_file)
    (run,) = registry.list_runs()
    assert (run.name, run.status, run.attempt) == ("old run", "completed", 1)
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    registry.create_run("new run", "m", "lora", "d", {})
    assert [r.name for r in registry.list_runs()] == ["new run", "old run"]


def test_every_orm_column_exists_after_all_migrations(tmp_path: Path) -> None:
    from core.store.schema import Base

    db_file = tmp_path / "studio.db"
    Registry(db_file)
    with sqlite3.connect(db_file) as conn:
        for table in Base.metadata.sorted_tables:
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
            assert {c.name for c in table.columns} <= columns, table.name


def test_a_run_waiting_in_a_version_7_queue_still_waits_after_the_upgrade(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from core.store.job_queue import QueueStore
    from core.store.schema import migrate

    db_file = tmp_path / "studio.db"
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.begin() as conn:
        assert migrate(conn, target=7) == 7
        conn.execute(text("INSERT INTO runs (name, status, model, method, dataset, config_json, created_at) "
                          "VALUES ('waiting run', 'queued', 'm', 'lora', 'd', '{}', 1.0)"))
        conn.execute(text("INSERT INTO job_queue (run_id, position, created_at, start_now, waiting_reason) "
                          "VALUES (1, 3.0, 2.0, 1, 'next: waiting for run 9 (x) to finish')"))
    engine.dispose()
    store = QueueStore(Registry(db_file))
    (entry,) = store.entries()
    assert (entry.kind, entry.job_id, entry.position, entry.start_now, entry.waiting_reason) == (
        "run", 1, 3.0, True, "next: waiting for run 9 (x) to finish")
    store.add(1, kind="eval")  # an evaluation with the same id is another job
    assert [e.key for e in store.entries()] == [("run", 1), ("eval", 1)] and store.ids("eval") == {1}
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
