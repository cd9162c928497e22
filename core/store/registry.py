"""The registry: runs and datasets in one SQLite file (WAL, busy timeout, short sessions)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.store.schema import CalibrationRow, DatasetRow, RunRow, migrate

ACTIVE = ("queued", "running")
TERMINAL = ("completed", "stopped", "failed", "failed_oom", "lost")
# lost → running/terminal: a job presumed gone (silent too long) may come back and report for itself.
TRANSITIONS = {
    "queued": {"running", "failed", "stopped", "lost"},
    "running": {"completed", "stopped", "failed", "failed_oom", "lost"},
    "lost": {"running", "completed", "stopped", "failed", "failed_oom", "queued"},
    "completed": set(),
    "stopped": {"queued"},  # resume (from any unfinished ending)
    "failed": {"queued"},
    "failed_oom": {"queued"},
}
BUSY_TIMEOUT_MS = 30_000
# What a write raises when the database cannot take it for a reason outside the studio (a full disk, a read-only
# file system, a lock held past the busy timeout); callers that must not fail on it catch these.
STORE_ERRORS = (OperationalError,)


class TransitionError(ValueError):
    pass


@dataclass
class RunRecord:
    """A plain, detached copy of a run row for readers."""

    id: int
    name: str
    status: str
    model: str
    method: str
    dataset: str
    config: dict[str, Any]
    run_dir: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    pid: int | None
    pid_started_at: float | None
    heartbeat_at: float | None
    stop_requested_at: float | None
    exit_code: int | None
    error: str | None
    step: int
    total_steps: int
    last_loss: float | None
    params: dict[str, Any] | None
    artefact_dir: str | None
    attempt: int
    estimate: dict[str, Any] | None = None  # total/allocated/reserved GB and breakdown when the run started

    @classmethod
    def of(cls, row: RunRow) -> RunRecord:
        return cls(
            id=row.id, name=row.name, status=row.status, model=row.model, method=row.method, dataset=row.dataset,
            config=json.loads(row.config_json), run_dir=row.run_dir, created_at=row.created_at,
            started_at=row.started_at, finished_at=row.finished_at, pid=row.pid, pid_started_at=row.pid_started_at,
            heartbeat_at=row.heartbeat_at, stop_requested_at=row.stop_requested_at, exit_code=row.exit_code,
            error=row.error, step=row.step, total_steps=row.total_steps, last_loss=row.last_loss,
            params=json.loads(row.params_json) if row.params_json else None, artefact_dir=row.artefact_dir,
            attempt=row.attempt, estimate=_estimate_of(row),
        )


def _estimate_of(row: RunRow) -> dict[str, Any] | None:
    if row.est_total_gb is None:
        return None
    return {"total_gb": row.est_total_gb, "allocated_gb": row.est_allocated_gb, "reserved_gb": row.est_reserved_gb,
            "breakdown": json.loads(row.est_breakdown_json or "{}")}


@dataclass
class CalibrationRecord:
    """A finished CUDA run's estimate beside its measured peaks (GB of 1e9 bytes)."""

    id: int
    run_id: int | None
    attempt: int
    created_at: float
    model: str
    method: str
    config: dict[str, Any]
    device_name: str
    card_gb: float | None
    steps: int
    est_total_gb: float
    est_allocated_gb: float
    est_reserved_gb: float
    measured_allocated_gb: float
    measured_reserved_gb: float

    @classmethod
    def of(cls, row: CalibrationRow) -> CalibrationRecord:
        return cls(row.id, row.run_id, row.attempt, row.created_at, row.model, row.method,
                   json.loads(row.config_json), row.device_name, row.card_gb, row.steps, row.est_total_gb,
                   row.est_allocated_gb, row.est_reserved_gb, row.measured_allocated_gb, row.measured_reserved_gb)


@dataclass
class DatasetRecord:
    id: int
    name: str
    source: str
    format: str
    path: str
    rows: int
    images: int
    created_at: float
    summary: dict[str, Any]

    @classmethod
    def of(cls, row: DatasetRow) -> DatasetRecord:
        return cls(row.id, row.name, row.source, row.format, row.path, row.rows, row.images, row.created_at,
                   json.loads(row.summary_json or "{}"))


class Registry:
    """All reads and writes of the studio database; each call is one short transaction."""

    def __init__(self, db_file: Path):
        self.db_file = Path(db_file)
        url = f"sqlite:///{self.db_file}"
        args = {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        # Writers take the lock up front (BEGIN IMMEDIATE) so they queue on the busy timeout instead of failing
        # when a read lock cannot be upgraded; readers run in autocommit, which WAL serves without blocking.
        self.engine = create_engine(url, connect_args=args)
        event.listen(self.engine, "connect", _configure_connection)
        event.listen(self.engine, "begin", _begin_immediate)
        self.read_engine = create_engine(url, connect_args=args)
        event.listen(self.read_engine, "connect", _configure_connection)
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)
        with self.engine.begin() as conn:
            migrate(conn)

    def session(self) -> Session:
        """A session for writes; use ``with registry.session() as s, s.begin():``."""
        return self._writer()

    def reader(self) -> Session:
        return self._reader()

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()

    # --- runs ---------------------------------------------------------------------------------------------
    def create_run(self, name: str, model: str, method: str, dataset: str, config: dict[str, Any]) -> int:
        with self.session() as s, s.begin():
            row = RunRow(name=name, status="queued", model=model, method=method, dataset=dataset,
                         config_json=json.dumps(config), created_at=time.time())
            s.add(row)
            s.flush()
            return row.id

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set plain fields (not status) of a run."""
        if "status" in fields:
            raise ValueError("use set_status to change a run's status")
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            if row is None:
                raise KeyError(f"no run {run_id}")
            for key, value in fields.items():
                if key == "params":
                    key, value = "params_json", json.dumps(value)
                elif key == "config":
                    key, value = "config_json", json.dumps(value)
                setattr(row, key, value)

    def heartbeat(self, run_id: int) -> None:
        """A job's beat, in one transaction: the time, and back to running if a watchdog had taken it for lost."""
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            if row is None:
                raise KeyError(f"no run {run_id}")
            row.heartbeat_at = time.time()
            if row.status == "lost":
                row.status, row.error = "running", None

    def set_status(self, run_id: int, status: str, *, expect: tuple[str, ...] | None = None, **fields: Any) -> bool:
        """Move a run to ``status`` if the transition is allowed (and its status is in ``expect``, when given).

        Returns False, changing nothing, when ``expect`` does not match; raises on a forbidden transition.
        """
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            if row is None:
                raise KeyError(f"no run {run_id}")
            if expect is not None and row.status not in expect:
                return False
            if status != row.status and status not in TRANSITIONS[row.status]:
                raise TransitionError(f"run {run_id}: {row.status} → {status} is not allowed")
            row.status = status
            now = time.time()
            if status == "running" and row.started_at is None:
                row.started_at = now
            if status in TERMINAL:
                row.finished_at = now
            if status == "queued":
                row.finished_at = None
                row.error = None
                row.exit_code = None
                row.stop_requested_at = None
            for key, value in fields.items():
                setattr(row, key, value)
            return True

    def get_run(self, run_id: int) -> RunRecord:
        with self.reader() as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise KeyError(f"no run {run_id}")
            return RunRecord.of(row)

    def list_runs(self, statuses: tuple[str, ...] | None = None) -> list[RunRecord]:
        with self.reader() as s:
            query = select(RunRow).order_by(RunRow.id.desc())
            if statuses:
                query = query.where(RunRow.status.in_(statuses))
            return [RunRecord.of(r) for r in s.scalars(query)]

    # --- memory estimates and calibration ------------------------------------------------------------------
    def set_run_estimate(self, run_id: int, total_gb: float, allocated_gb: float, reserved_gb: float,
                         breakdown: dict[str, float]) -> None:
        """Store the memory estimate a run started with."""
        with self.session() as s, s.begin():
            row = s.get(RunRow, run_id)
            if row is None:
                raise KeyError(f"no run {run_id}")
            row.est_total_gb, row.est_allocated_gb, row.est_reserved_gb = total_gb, allocated_gb, reserved_gb
            row.est_breakdown_json = json.dumps(breakdown)

    def add_calibration_point(self, *, run_id: int | None, config: dict[str, Any], estimate: dict[str, Any],
                              measured_allocated_gb: float, measured_reserved_gb: float, device_name: str = "",
                              card_gb: float | None = None, steps: int = 0, attempt: int = 1) -> int:
        """Record a finished run's estimate (``total_gb``, ``allocated_gb``, ``reserved_gb``) and measured peaks."""
        with self.session() as s, s.begin():
            row = CalibrationRow(
                run_id=run_id, attempt=attempt, created_at=time.time(), model=str(config.get("model", "")),
                method=str(config.get("method", "")), config_json=json.dumps(config), device_name=device_name,
                card_gb=card_gb, steps=steps, est_total_gb=float(estimate["total_gb"]),
                est_allocated_gb=float(estimate["allocated_gb"]), est_reserved_gb=float(estimate["reserved_gb"]),
                measured_allocated_gb=float(measured_allocated_gb), measured_reserved_gb=float(measured_reserved_gb))
            s.add(row)
            s.flush()
            return row.id

    def list_calibration_points(self) -> list[CalibrationRecord]:
        """Every calibration point, newest first."""
        with self.reader() as s:
            query = select(CalibrationRow).order_by(CalibrationRow.id.desc())
            return [CalibrationRecord.of(r) for r in s.scalars(query)]

    # --- datasets -----------------------------------------------------------------------------------------
    def add_dataset(self, name: str, source: str, format: str, path: str, rows: int, images: int,
                    summary: dict[str, Any]) -> int:
        with self.session() as s, s.begin():
            row = DatasetRow(name=name, source=source, format=format, path=path, rows=rows, images=images,
                             created_at=time.time(), summary_json=json.dumps(summary))
            s.add(row)
            s.flush()
            return row.id

    def find_dataset(self, name: str) -> DatasetRecord | None:
        with self.reader() as s:
            row = s.scalars(select(DatasetRow).where(DatasetRow.name == name)).first()
            return DatasetRecord.of(row) if row else None

    def list_datasets(self) -> list[DatasetRecord]:
        with self.reader() as s:
            return [DatasetRecord.of(r) for r in s.scalars(select(DatasetRow).order_by(DatasetRow.id.desc()))]

    def rename_dataset(self, dataset_id: int, new_name: str) -> None:
        with self.session() as s, s.begin():
            row = s.get(DatasetRow, dataset_id)
            if row is None:
                raise KeyError(f"no dataset {dataset_id}")
            row.name = new_name

    def delete_dataset(self, dataset_id: int) -> DatasetRecord:
        with self.session() as s, s.begin():
            row = s.get(DatasetRow, dataset_id)
            if row is None:
                raise KeyError(f"no dataset {dataset_id}")
            record = DatasetRecord.of(row)
            s.delete(row)
            return record


def _configure_connection(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" hook issue BEGIN IMMEDIATE itself
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
