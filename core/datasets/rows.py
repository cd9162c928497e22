"""A row as a reader yields it (its line, its data or the error that made it unreadable), and read progress."""

from __future__ import annotations

from dataclasses import dataclass

from core.datasets.problem_log import RowError


@dataclass
class RawRow:
    """One row as read: its line (row number for Parquet), its data or the error that made it unreadable."""

    line: int | None
    data: dict | None
    error: RowError | None = None
    file: str | None = None  # overrides the source's display name (per-image caption files, a split's shards)


class Progress:
    """Bytes (or rows) read so far out of the source's total, for a progress bar."""

    def __init__(self, total: int):
        self.total = max(total, 1)
        self.done = 0

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0)
