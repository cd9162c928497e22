"""What an import found (the report kept with the dataset), the error an unfinished import raises, and the ticker
that feeds a progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from core.problems import Problem, ProblemsError

MAX_PROBLEMS_SHOWN = 50
ProgressCallback = Callable[[float, str], None]  # (fraction 0..1, message): gradio's gr.Progress() fits


@dataclass
class ImportReport:
    """What an import found: the format and why, counts, the image root, and problems grouped by kind."""

    format: str
    format_reason: str
    rows_total: int = 0
    rows_kept: int = 0
    images: int = 0
    image_root: str = ""
    problems: list[Problem] = field(default_factory=list)  # the first ones of each kind, in full
    format_title: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    source_file: str = ""
    eval_file: str = ""
    rows_train: int = 0
    rows_eval: int = 0
    problem_counts: dict[str, int] = field(default_factory=dict)  # kind -> how many (all of them)
    problem_groups: list[dict] = field(default_factory=list)
    image_note: str = ""
    source_note: str = ""
    written: bool = False
    origin: dict = field(default_factory=dict)  # a Hub dataset's id, revision, config and split
    row_limit: int | None = None  # the import read only the first this many rows
    rows_available: int | None = None  # how many rows the source has, when its metadata says

    @property
    def rows_excluded(self) -> int:
        return self.rows_total - self.rows_kept

    @property
    def error_count(self) -> int:
        return sum(g["count"] for g in self.problem_groups if g["severity"] == "error")

    def summary(self) -> dict:
        return {
            "format": self.format, "format_title": self.format_title, "format_reason": self.format_reason,
            "columns": self.columns, "source_file": self.source_file, "source_note": self.source_note,
            "eval_file": self.eval_file, "rows_total": self.rows_total, "rows_kept": self.rows_kept,
            "rows_excluded": self.rows_excluded, "rows_train": self.rows_train, "rows_eval": self.rows_eval,
            "images": self.images, "image_root": self.image_root, "image_note": self.image_note,
            "problems": [p.to_dict() for p in self.problems[:MAX_PROBLEMS_SHOWN]],
            "problem_count": sum(self.problem_counts.values()), "problem_counts": dict(self.problem_counts),
            "problem_groups": self.problem_groups, "written": self.written, "origin": dict(self.origin),
            "row_limit": self.row_limit, "rows_available": self.rows_available,
        }


class DatasetImportError(ProblemsError):
    """An import that could not finish: nothing was written. ``report`` holds what was found until then."""

    def __init__(self, problems: list[Problem], report: ImportReport | None = None):
        super().__init__(problems)
        self.report = report


@dataclass
class Ticker:
    """Calls the progress callback at most every ``interval`` seconds, with a fraction that never goes back
    (``None`` keeps the fraction and changes only the message, as a download does)."""

    callback: ProgressCallback | None
    start: float = 0.0
    span: float = 1.0
    last: float = 0.0
    shown: float = 0.0
    interval: ClassVar[float] = 0.2

    def __call__(self, fraction: float | None, message: str, force: bool = False, absolute: bool = False) -> None:
        now = time.monotonic()
        if self.callback is not None and (force or now - self.last >= self.interval):
            self.last = now
            if fraction is not None:
                self.shown = max(self.shown, min(fraction if absolute else self.start + self.span * fraction, 1.0))
            self.callback(self.shown, message)
