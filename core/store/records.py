"""Plain, detached copies of registry rows for readers: runs, evaluation jobs, calibration points, datasets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.store.schema import CalibrationRow, DatasetRow, EvalRow, RunRow


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
    eval_summary: dict[str, Any] | None = None  # in-run evaluation: best/last eval loss and steps, early stop
    notes: str = ""  # the person's own notes

    kind = "run"

    @property
    def folder(self) -> str:
        return self.run_dir

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
            eval_summary=json.loads(row.eval_summary_json) if row.eval_summary_json else None,
            notes=row.notes or "",
        )


def _estimate_of(row: RunRow) -> dict[str, Any] | None:
    if row.est_total_gb is None:
        return None
    return {"total_gb": row.est_total_gb, "allocated_gb": row.est_allocated_gb, "reserved_gb": row.est_reserved_gb,
            "breakdown": json.loads(row.est_breakdown_json or "{}")}


@dataclass
class EvalRecord:
    """A plain, detached copy of an evaluation row; ``step`` of ``total_steps`` samples are scored."""

    id: int
    status: str
    run_id: int | None
    result: str
    model: str
    dataset: str
    config: dict[str, Any]
    eval_dir: str
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
    summary: dict[str, Any] | None
    estimate: dict[str, Any] | None = None  # {"total_gb"} when it started: the queue weighs it beside runs

    kind = "eval"

    @property
    def folder(self) -> str:
        return self.eval_dir

    @classmethod
    def of(cls, row: EvalRow) -> EvalRecord:
        return cls(
            id=row.id, status=row.status, run_id=row.run_id, result=row.result, model=row.model,
            dataset=row.dataset, config=json.loads(row.config_json), eval_dir=row.eval_dir,
            created_at=row.created_at, started_at=row.started_at, finished_at=row.finished_at, pid=row.pid,
            pid_started_at=row.pid_started_at, heartbeat_at=row.heartbeat_at,
            stop_requested_at=row.stop_requested_at, exit_code=row.exit_code, error=row.error, step=row.step,
            total_steps=row.total_steps, summary=json.loads(row.summary_json) if row.summary_json else None,
            estimate=None if row.est_total_gb is None else {"total_gb": row.est_total_gb})


# The tables whose rows are jobs (a process with a status, pid and heartbeat), by kind, and their records.
JOB_ROWS: dict[str, type] = {"run": RunRow, "eval": EvalRow}
JOB_RECORDS: dict[str, Any] = {"run": RunRecord, "eval": EvalRecord}


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
    hub_id: str | None = None  # imported from the Hugging Face Hub: the id, and the commit it was read at
    hub_revision: str | None = None
    hub_config: str | None = None
    hub_split: str | None = None

    @classmethod
    def of(cls, row: DatasetRow) -> DatasetRecord:
        return cls(row.id, row.name, row.source, row.format, row.path, row.rows, row.images, row.created_at,
                   json.loads(row.summary_json or "{}"), row.hub_id, row.hub_revision, row.hub_config, row.hub_split)
