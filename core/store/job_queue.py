"""The job queue's table: which runs wait for their turn, in what order, and why they have not started yet."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from core.store.registry import Registry
from core.store.schema import QueueRow


@dataclass
class QueueEntry:
    """A plain copy of a queue row; ``place`` counts from 1 in the order the queue starts jobs."""

    run_id: int
    place: int
    position: float
    created_at: float
    start_now: bool
    waiting_reason: str


class QueueStore:
    """Reads and writes of the job_queue table; each call is one short transaction."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def add(self, run_id: int, start_now: bool = False) -> None:
        """Put a run at the end of the queue."""
        with self.registry.session() as s, s.begin():
            last = s.scalar(select(func.max(QueueRow.position))) or 0.0
            s.add(QueueRow(run_id=run_id, position=last + 1.0, created_at=time.time(), start_now=int(start_now),
                           waiting_reason=""))

    def entries(self) -> list[QueueEntry]:
        with self.registry.reader() as s:
            rows = s.scalars(select(QueueRow).order_by(QueueRow.position, QueueRow.id)).all()
            return [QueueEntry(r.run_id, i, r.position, r.created_at, bool(r.start_now), r.waiting_reason or "")
                    for i, r in enumerate(rows, start=1)]

    def run_ids(self) -> set[int]:
        with self.registry.reader() as s:
            return set(s.scalars(select(QueueRow.run_id)))

    def take(self, run_id: int) -> bool:
        """Remove a run from the queue; True only for the caller that removed it (two dispatchers never both
        start one job)."""
        with self.registry.session() as s, s.begin():
            return s.execute(delete(QueueRow).where(QueueRow.run_id == run_id)).rowcount > 0

    def move(self, run_id: int, offset: int) -> bool:
        """Swap a run with its neighbour ``offset`` places away (-1 earlier, +1 later); False at either end."""
        with self.registry.session() as s, s.begin():
            rows = list(s.scalars(select(QueueRow).order_by(QueueRow.position, QueueRow.id)))
            index = next((i for i, r in enumerate(rows) if r.run_id == run_id), None)
            if index is None:
                raise KeyError(f"run {run_id} is not waiting in the queue")
            other = index + offset
            if other < 0 or other >= len(rows):
                return False
            for i, row in enumerate(rows):  # renumber first: equal positions could not be swapped
                row.position = float(i + 1)
            rows[index].position, rows[other].position = rows[other].position, rows[index].position
            return True

    def set_start_now(self, run_id: int, start_now: bool = True) -> bool:
        with self.registry.session() as s, s.begin():
            row = s.scalars(select(QueueRow).where(QueueRow.run_id == run_id)).first()
            if row is None:
                return False
            row.start_now = int(start_now)
            return True

    def set_reasons(self, reasons: dict[int, str]) -> None:
        """Record why each waiting run has not started (only the rows whose reason changed are written)."""
        with self.registry.reader() as s:
            current = {r.run_id: r.waiting_reason for r in s.scalars(select(QueueRow))}
        changed = {k: v for k, v in reasons.items() if k in current and current[k] != v}
        if not changed:
            return
        with self.registry.session() as s, s.begin():
            for row in s.scalars(select(QueueRow).where(QueueRow.run_id.in_(changed))):
                row.waiting_reason = changed[row.run_id]
