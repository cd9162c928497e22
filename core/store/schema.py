"""The SQLite schema of the studio and its numbered migrations; a database from an older version opens and upgrades."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Float, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(Text)
    config_json: Mapped[str] = mapped_column(Text)
    run_dir: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # psutil create_time of pid
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_requested_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    last_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    params_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # trainable/total per part
    artefact_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # 1 + how many times the run was resumed
    # The memory estimate when the run started (core.memory, GB of 1e9 bytes); None for older or headless runs.
    est_total_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    est_allocated_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    est_reserved_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    est_breakdown_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # {term label: GB}
    # In-run evaluation: best and last eval loss, their steps, the best result's folder, early stopping.
    eval_summary_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")  # the person's own notes on the run


class QueueRow(Base):
    """A job (a run or an evaluation) waiting for its turn on the GPU, lowest position first."""

    __tablename__ = "job_queue"
    __table_args__ = (UniqueConstraint("kind", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8), default="run")  # "run" or "eval", as in JOB_ROWS
    job_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[float] = mapped_column(Float, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    # Start beside the running jobs when the memory estimate says they fit together.
    start_now: Mapped[int] = mapped_column(Integer, default=0)
    waiting_reason: Mapped[str] = mapped_column(Text, default="")  # why it has not started yet, for the UI


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    images: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    summary_json: Mapped[str] = mapped_column(Text, default="{}")
    # A dataset imported from the Hugging Face Hub: its id, the commit it was read at, its config and split.
    hub_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    hub_revision: Mapped[str | None] = mapped_column(Text, nullable=True)
    hub_config: Mapped[str | None] = mapped_column(Text, nullable=True)
    hub_split: Mapped[str | None] = mapped_column(Text, nullable=True)


class CalibrationRow(Base):
    """One finished CUDA run: its config, the estimate and the measured peaks (torch.cuda.max_memory_*)."""

    __tablename__ = "calibration_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(32))
    config_json: Mapped[str] = mapped_column(Text)
    device_name: Mapped[str] = mapped_column(Text, default="")
    card_gb: Mapped[float | None] = mapped_column(Float, nullable=True)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    est_total_gb: Mapped[float] = mapped_column(Float)
    est_allocated_gb: Mapped[float] = mapped_column(Float)
    est_reserved_gb: Mapped[float] = mapped_column(Float)
    measured_allocated_gb: Mapped[float] = mapped_column(Float)
    measured_reserved_gb: Mapped[float] = mapped_column(Float)


class EvalRow(Base):
    """One evaluation job: a base model, or a run's result beside its base, scored on a dataset.

    Its lifecycle columns (status, pid, heartbeat, stop, exit code, error) mean what they mean for a run;
    ``step`` counts the samples scored so far and ``total_steps`` those to score (in every phase).
    """

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # None: a base alone
    result: Mapped[str] = mapped_column(String(16), default="")  # "last" or "best" for a run; "" for a base
    model: Mapped[str] = mapped_column(Text)  # the base model
    dataset: Mapped[str] = mapped_column(Text)
    config_json: Mapped[str] = mapped_column(Text)
    eval_dir: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    stop_requested_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    summary_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # {"base": {metric: value}, "tuned": ...}
    # The memory estimate when it started (GB of 1e9 bytes): the queue weighs it like a training run's.
    est_total_gb: Mapped[float | None] = mapped_column(Float, nullable=True)


# Migrations are frozen SQL: the ORM classes above describe the newest schema, these describe each step to it.
_V1_TABLES = (
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(200) NOT NULL, status VARCHAR(32) NOT NULL,
        model TEXT NOT NULL, method VARCHAR(32) NOT NULL, dataset TEXT NOT NULL, config_json TEXT NOT NULL,
        run_dir TEXT NOT NULL DEFAULT '', created_at FLOAT NOT NULL, started_at FLOAT, finished_at FLOAT,
        pid INTEGER, pid_started_at FLOAT, heartbeat_at FLOAT, stop_requested_at FLOAT, exit_code INTEGER,
        error TEXT, step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0, last_loss FLOAT,
        params_json TEXT, artefact_dir TEXT)""",
    "CREATE INDEX ix_runs_status ON runs (status)",
    """CREATE TABLE datasets (
        id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(200) NOT NULL UNIQUE, source TEXT NOT NULL,
        format VARCHAR(64) NOT NULL, path TEXT NOT NULL, rows INTEGER NOT NULL, images INTEGER NOT NULL,
        created_at FLOAT NOT NULL, summary_json TEXT NOT NULL DEFAULT '{}')""",
)


def _v1_initial(conn: Connection) -> None:
    for statement in _V1_TABLES:
        conn.execute(text(statement))


def _v2_run_attempts(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1"))


_V3_MEMORY = (
    "ALTER TABLE runs ADD COLUMN est_total_gb FLOAT",
    "ALTER TABLE runs ADD COLUMN est_allocated_gb FLOAT",
    "ALTER TABLE runs ADD COLUMN est_reserved_gb FLOAT",
    "ALTER TABLE runs ADD COLUMN est_breakdown_json TEXT",
    """CREATE TABLE calibration_points (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER, attempt INTEGER NOT NULL DEFAULT 1,
        created_at FLOAT NOT NULL, model TEXT NOT NULL, method VARCHAR(32) NOT NULL, config_json TEXT NOT NULL,
        device_name TEXT NOT NULL DEFAULT '', card_gb FLOAT, steps INTEGER NOT NULL DEFAULT 0,
        est_total_gb FLOAT NOT NULL, est_allocated_gb FLOAT NOT NULL, est_reserved_gb FLOAT NOT NULL,
        measured_allocated_gb FLOAT NOT NULL, measured_reserved_gb FLOAT NOT NULL)""",
    "CREATE INDEX ix_calibration_points_run_id ON calibration_points (run_id)",
)


def _v3_memory_estimates(conn: Connection) -> None:
    for statement in _V3_MEMORY:
        conn.execute(text(statement))


_V4_HUB_ORIGIN = (
    "ALTER TABLE datasets ADD COLUMN hub_id TEXT",
    "ALTER TABLE datasets ADD COLUMN hub_revision TEXT",
    "ALTER TABLE datasets ADD COLUMN hub_config TEXT",
    "ALTER TABLE datasets ADD COLUMN hub_split TEXT",
)


def _v4_dataset_hub_origin(conn: Connection) -> None:
    for statement in _V4_HUB_ORIGIN:
        conn.execute(text(statement))


_V5_EVALUATIONS = (
    "ALTER TABLE runs ADD COLUMN eval_summary_json TEXT",
    """CREATE TABLE evaluations (
        id INTEGER PRIMARY KEY AUTOINCREMENT, status VARCHAR(32) NOT NULL, run_id INTEGER,
        result VARCHAR(16) NOT NULL DEFAULT '', model TEXT NOT NULL, dataset TEXT NOT NULL,
        config_json TEXT NOT NULL, eval_dir TEXT NOT NULL DEFAULT '', created_at FLOAT NOT NULL,
        started_at FLOAT, finished_at FLOAT, pid INTEGER, pid_started_at FLOAT, heartbeat_at FLOAT,
        stop_requested_at FLOAT, exit_code INTEGER, error TEXT, step INTEGER NOT NULL DEFAULT 0,
        total_steps INTEGER NOT NULL DEFAULT 0, summary_json TEXT)""",
    "CREATE INDEX ix_evaluations_status ON evaluations (status)",
    "CREATE INDEX ix_evaluations_run_id ON evaluations (run_id)",
)


def _v5_evaluations(conn: Connection) -> None:
    for statement in _V5_EVALUATIONS:
        conn.execute(text(statement))


_V6_JOB_QUEUE = (
    "ALTER TABLE runs ADD COLUMN notes TEXT NOT NULL DEFAULT ''",
    """CREATE TABLE job_queue (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL UNIQUE, position FLOAT NOT NULL,
        created_at FLOAT NOT NULL, start_now INTEGER NOT NULL DEFAULT 0, waiting_reason TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX ix_job_queue_position ON job_queue (position)",
)


def _v6_job_queue(conn: Connection) -> None:
    for statement in _V6_JOB_QUEUE:
        conn.execute(text(statement))


def _v7_evaluation_estimates(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE evaluations ADD COLUMN est_total_gb FLOAT"))


# Evaluations wait in the queue too: its rows name their kind, and the table is rebuilt (SQLite cannot drop the
# old UNIQUE on run_id in place).
_V8_QUEUE_OF_JOBS = (
    """CREATE TABLE job_queue_v8 (
        id INTEGER PRIMARY KEY AUTOINCREMENT, kind VARCHAR(8) NOT NULL DEFAULT 'run', job_id INTEGER NOT NULL,
        position FLOAT NOT NULL, created_at FLOAT NOT NULL, start_now INTEGER NOT NULL DEFAULT 0,
        waiting_reason TEXT NOT NULL DEFAULT '', UNIQUE (kind, job_id))""",
    """INSERT INTO job_queue_v8 (id, kind, job_id, position, created_at, start_now, waiting_reason)
        SELECT id, 'run', run_id, position, created_at, start_now, waiting_reason FROM job_queue""",
    "DROP TABLE job_queue",
    "ALTER TABLE job_queue_v8 RENAME TO job_queue",
    "CREATE INDEX ix_job_queue_position ON job_queue (position)",
)


def _v8_queue_of_jobs(conn: Connection) -> None:
    for statement in _V8_QUEUE_OF_JOBS:
        conn.execute(text(statement))


# Append new migrations at the end; never edit one that has shipped.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial, _v2_run_attempts, _v3_memory_estimates,
                                                  _v4_dataset_hub_origin, _v5_evaluations, _v6_job_queue,
                                                  _v7_evaluation_estimates, _v8_queue_of_jobs]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``target`` (the newest by default) in the caller's transaction; returns it."""
    conn.execute(text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
    current = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database is at schema version {current}, newer than this studio ({SCHEMA_VERSION}); upgrade it"
        )
    for version in range(current + 1, target + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": version})
    return max(current, target)
