"""The SQLite schema of the studio and its numbered migrations; a database from an older version opens and upgrades."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Float, Integer, String, Text, text
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


def _v1_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


# Append new migrations at the end; never edit one that has shipped.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: Connection) -> int:
    """Bring the database to SCHEMA_VERSION inside the caller's transaction; returns the version reached."""
    conn.execute(text("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
    current = conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database is at schema version {current}, newer than this studio ({SCHEMA_VERSION}); upgrade it"
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": version})
    return SCHEMA_VERSION
