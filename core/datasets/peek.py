"""A quick look at a source before importing: the detected format and why, the columns, and the first rows."""

from __future__ import annotations

import tempfile
from pathlib import Path

from core.datasets.detect import detect_format, format_choices, sample_keys
from core.datasets.hub_source import HubSource
from core.datasets.importer import plan_any
from core.datasets.limits import ImportLimits
from core.datasets.problem_log import ProblemLog
from core.datasets.rows import Progress
from core.datasets.sources import source_rows
from core.problems import Problem, ProblemsError

PEEK_ROWS = 200  # rows read at most (50 good ones are enough to detect the format)
MAX_SHOWN_DEPTH = 8


def _shorten(value: object, limit: int = 300, depth: int = 0) -> object:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "..."
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (list, dict)) and depth >= MAX_SHOWN_DEPTH:
        return "..."
    if isinstance(value, list):
        return [_shorten(v, limit, depth + 1) for v in value[:20]]
    if isinstance(value, dict):
        return {str(k): _shorten(v, limit, depth + 1) for k, v in list(value.items())[:30]}
    return value


def inspect_source(source: Path | HubSource, *, data_file: str | None = None, image_root: Path | None = None,
                   format: str | None = None, columns: dict[str, str] | None = None, encoding: str = "utf-8",
                   rows: int = 5, limits: ImportLimits | None = None, config: str | None = None,
                   split: str | None = None, row_limit: int | None = None, shown_as: str | None = None) -> dict:
    """Plain data for the import form: ``format``, ``title``, ``reason``, ``columns`` (slot -> column), ``keys``,
    ``candidates``, ``formats`` (every format with its slots), ``rows`` (the first few, shortened), ``problems``
    (fatal ones, if detection failed), ``source_file``, ``source_note``, ``image_root``, and for a Hub dataset
    ``hub`` (its size, splits and what the import would download, before anything big is). Never raises
    ProblemsError: its problems are returned."""
    limits = limits or ImportLimits.from_env()
    result: dict = {"formats": format_choices(), "rows": [], "problems": [], "format": None, "title": "", "reason": "",
                    "columns": {}, "keys": [], "candidates": [], "source_file": "", "source_note": "", "image_root": "",
                    "hub": None}
    try:
        with tempfile.TemporaryDirectory(prefix=".inspect-") as tmp:
            plan = plan_any(source, Path(tmp), limits, data_file=data_file, image_root=image_root, config=config,
                            split=split, row_limit=row_limit, shown_as=shown_as, peek=True)
            result.update(source_file=plan.display, source_note=plan.note, image_root=plan.root_label,
                          hub=plan.preflight)
            log = ProblemLog()
            good, problems = [], []
            for raw in source_rows(plan, Progress(1), log, limits, encoding, PEEK_ROWS):
                if raw.data is not None:
                    good.append(raw.data)
                elif raw.error is not None:
                    problems.append(Problem(raw.error.message, field=raw.error.field, file=raw.file or plan.display,
                                            line=raw.line))
                if len(good) >= 50:
                    break
            if plan.caption_folder:
                format, columns = format or "captions", columns or {"image": "file_name", "text": "text"}
            # the keys and first rows come back even when detection fails, for the column-mapping form
            result.update(keys=sample_keys(good), rows=[_shorten(r) for r in good[:rows]])
            detection = detect_format(good, override=format, columns=columns, file=plan.display) if good else None
            if detection is not None:
                result.update(detection.to_dict())
            result["problems"] = [p.to_dict() for p in (problems + log.problems)[:20]]
    except ProblemsError as e:
        result["problems"] = [p.to_dict() for p in e.problems]
    return result
