"""The registry: runs, evaluations and datasets in one SQLite file (WAL, busy timeout, short sessions)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.store.records import JOB_RECORDS, JOB_ROWS, CalibrationRecord, DatasetRecord, EvalRecord, RunRecord
from core.store.schema import CalibrationRow, DatasetRow, EvalRow, QueueRow, RunRow, migrate

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
        self.update_job("run", run_id, **fields)

    def update_job(self, kind: str, job_id: int, **fields: Any) -> None:
        """Set plain fields (not status) of a job; a dict or list goes to its ``<name>_json`` column."""
        if "status" in fields:
            raise ValueError("use set_status to change a job's status")
        with self.session() as s, s.begin():
            row = _job_row(s, kind, job_id)
            for key, value in fields.items():
                if hasattr(row, f"{key}_json"):
                    key, value = f"{key}_json", None if value is None else json.dumps(value)
                setattr(row, key, value)

    def heartbeat(self, run_id: int, kind: str = "run") -> None:
        """A job's beat, in one transaction: the time, and back to running if a watchdog had taken it for lost."""
        with self.session() as s, s.begin():
            row = _job_row(s, kind, run_id)
            row.heartbeat_at = time.time()
            if row.status == "lost":
                row.status, row.error = "running", None

    def set_status(self, run_id: int, status: str, *, expect: tuple[str, ...] | None = None, kind: str = "run",
                   **fields: Any) -> bool:
        """Move a job (a run by default) to ``status`` if the transition is allowed (and its status is in
        ``expect``, when given).

        Returns False, changing nothing, when ``expect`` does not match; raises on a forbidden transition.
        """
        with self.session() as s, s.begin():
            row = _job_row(s, kind, run_id)
            if expect is not None and row.status not in expect:
                return False
            if status != row.status and status not in TRANSITIONS[row.status]:
                raise TransitionError(f"{kind} {run_id}: {row.status} → {status} is not allowed")
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
                if hasattr(row, f"{key}_json"):
                    key, value = f"{key}_json", None if value is None else json.dumps(value)
                setattr(row, key, value)
            return True

    def get_job(self, kind: str, job_id: int) -> Any:
        """The record of a run or an evaluation (``kind`` "run" or "eval")."""
        with self.reader() as s:
            return JOB_RECORDS[kind].of(_job_row(s, kind, job_id))

    def list_jobs(self, kind: str, statuses: tuple[str, ...] | None = None) -> list[Any]:
        with self.reader() as s:
            table = JOB_ROWS[kind]
            query = select(table).order_by(table.id.desc())
            if statuses:
                query = query.where(table.status.in_(statuses))
            return [JOB_RECORDS[kind].of(r) for r in s.scalars(query)]

    # --- evaluations --------------------------------------------------------------------------------------
    def create_evaluation(self, *, run_id: int | None, result: str, model: str, dataset: str,
                          config: dict[str, Any], est_total_gb: float | None = None) -> int:
        with self.session() as s, s.begin():
            row = EvalRow(status="queued", run_id=run_id, result=result, model=model, dataset=dataset,
                          config_json=json.dumps(config), created_at=time.time(), est_total_gb=est_total_gb)
            s.add(row)
            s.flush()
            return row.id

    def get_evaluation(self, eval_id: int) -> EvalRecord:
        return self.get_job("eval", eval_id)

    def list_evaluations(self, statuses: tuple[str, ...] | None = None, run_id: int | None = None
                         ) -> list[EvalRecord]:
        found = self.list_jobs("eval", statuses)
        return [e for e in found if run_id is None or e.run_id == run_id]

    def get_run(self, run_id: int) -> RunRecord:
        return self.get_job("run", run_id)

    def list_runs(self, statuses: tuple[str, ...] | None = None) -> list[RunRecord]:
        return self.list_jobs("run", statuses)

    def delete_run(self, run_id: int) -> RunRecord:
        """Forget a run, its evaluations and its place in the queue, in one transaction (files are the caller's)."""
        with self.session() as s, s.begin():
            row = _job_row(s, "run", run_id)
            record = RunRecord.of(row)
            evals = list(s.scalars(select(EvalRow.id).where(EvalRow.run_id == run_id)))
            s.execute(delete(EvalRow).where(EvalRow.run_id == run_id))
            s.execute(delete(QueueRow).where((QueueRow.kind == "run") & (QueueRow.job_id == run_id)))
            s.execute(delete(QueueRow).where((QueueRow.kind == "eval") & QueueRow.job_id.in_(evals)))
            s.delete(row)
            return record

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
                    summary: dict[str, Any], *, hub_id: str | None = None, hub_revision: str | None = None,
                    hub_config: str | None = None, hub_split: str | None = None) -> int:
        with self.session() as s, s.begin():
            row = DatasetRow(name=name, source=source, format=format, path=path, rows=rows, images=images,
                             created_at=time.time(), summary_json=json.dumps(summary), hub_id=hub_id,
                             hub_revision=hub_revision, hub_config=hub_config, hub_split=hub_split)
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


def _job_row(session: Session, kind: str, job_id: int) -> Any:
    row = session.get(JOB_ROWS[kind], job_id)
    if row is None:
        raise KeyError(f"no {'run' if kind == 'run' else 'evaluation'} {job_id}")
    return row


def _configure_connection(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" hook issue BEGIN IMMEDIATE itself
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
