"""The job queue's table: which jobs (runs, and evaluations) wait for their turn, in what order, and why they have
not started yet."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from core.store.registry import Registry
from core.store.schema import QueueRow

Key = tuple[str, int]  # (kind, job id): ("run", 3) or ("eval", 1)


@dataclass
class QueueEntry:
    """A plain copy of a queue row; ``place`` counts from 1 in the order the queue starts jobs."""

    kind: str
    job_id: int
    place: int
    position: float
    created_at: float
    start_now: bool
    waiting_reason: str

    @property
    def key(self) -> Key:
        return self.kind, self.job_id


def _is(kind: str, job_id: int):  # noqa: ANN202 - an SQL condition
    return (QueueRow.kind == kind) & (QueueRow.job_id == job_id)


class QueueStore:
    """Reads and writes of the job_queue table; each call is one short transaction."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def add(self, job_id: int, start_now: bool = False, kind: str = "run") -> None:
        """Put a job at the end of the queue."""
        with self.registry.session() as s, s.begin():
            last = s.scalar(select(func.max(QueueRow.position))) or 0.0
            s.add(QueueRow(kind=kind, job_id=job_id, position=last + 1.0, created_at=time.time(),
                           start_now=int(start_now), waiting_reason=""))

    def entries(self) -> list[QueueEntry]:
        with self.registry.reader() as s:
            rows = s.scalars(select(QueueRow).order_by(QueueRow.position, QueueRow.id)).all()
            return [QueueEntry(r.kind, r.job_id, i, r.position, r.created_at, bool(r.start_now),
                               r.waiting_reason or "") for i, r in enumerate(rows, start=1)]

    def ids(self, kind: str = "run") -> set[int]:
        """The ids of the jobs of one kind that wait."""
        with self.registry.reader() as s:
            return set(s.scalars(select(QueueRow.job_id).where(QueueRow.kind == kind)))

    def keys(self) -> set[Key]:
        with self.registry.reader() as s:
            return {(kind, job_id) for kind, job_id in s.execute(select(QueueRow.kind, QueueRow.job_id))}

    def take(self, job_id: int, kind: str = "run") -> bool:
        """Remove a job from the queue; True only for the caller that removed it (two dispatchers never both
        start one job)."""
        with self.registry.session() as s, s.begin():
            return s.execute(delete(QueueRow).where(_is(kind, job_id))).rowcount > 0

    def move(self, job_id: int, offset: int, kind: str = "run") -> bool:
        """Swap a job with its neighbour ``offset`` places away (-1 earlier, +1 later); False at either end."""
        with self.registry.session() as s, s.begin():
            rows = list(s.scalars(select(QueueRow).order_by(QueueRow.position, QueueRow.id)))
            index = next((i for i, r in enumerate(rows) if (r.kind, r.job_id) == (kind, job_id)), None)
            if index is None:
                raise KeyError(f"{'evaluation' if kind == 'eval' else 'run'} {job_id} is not waiting in the queue")
            other = index + offset
            if other < 0 or other >= len(rows):
                return False
            for i, row in enumerate(rows):  # renumber first: equal positions could not be swapped
                row.position = float(i + 1)
            rows[index].position, rows[other].position = rows[other].position, rows[index].position
            return True

    def set_start_now(self, job_id: int, start_now: bool = True, kind: str = "run") -> bool:
        with self.registry.session() as s, s.begin():
            row = s.scalars(select(QueueRow).where(_is(kind, job_id))).first()
            if row is None:
                return False
            row.start_now = int(start_now)
            return True

    def set_reasons(self, reasons: dict[Key, str]) -> None:
        """Record why each waiting job has not started (only the rows whose reason changed are written)."""
        with self.registry.reader() as s:
            current = {(r.kind, r.job_id): r.waiting_reason for r in s.scalars(select(QueueRow))}
        changed = {k: v for k, v in reasons.items() if k in current and current[k] != v}
        if not changed:
            return
        with self.registry.session() as s, s.begin():
            for row in s.scalars(select(QueueRow)):
                if (row.kind, row.job_id) in changed:
                    row.waiting_reason = changed[(row.kind, row.job_id)]
