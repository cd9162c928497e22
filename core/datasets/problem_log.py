"""Collects import problems grouped by kind: every one counted, the first few of each kind kept in full."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.problems import Problem

# kind -> short title shown as the group heading
KIND_TITLES = {
    "encoding": "text encoding",
    "json_syntax": "malformed JSON",
    "too_deep": "JSON nested too deeply",
    "csv_syntax": "malformed CSV",
    "missing_field": "missing or misnamed field",
    "wrong_type": "wrong value type",
    "mixed_types": "mixed types in a column",
    "role": "unknown role",
    "turn_order": "turn order",
    "empty_text": "empty text or answer",
    "image_count": "<image> placeholders vs images",
    "image_path": "image path outside the allowed root",
    "image_missing": "image file not found",
    "image_empty": "empty image file",
    "image_format": "not an accepted image format",
    "image_corrupt": "truncated or unreadable image",
    "image_too_large": "image too large",
    "unsupported": "unsupported content",
    "duplicate_id": "duplicate sample id",
    "note": "note",
}


class RowError(Exception):
    """One problem that excludes the current row; raised by converters and checks, logged by the importer."""

    def __init__(self, kind: str, message: str, field: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field


@dataclass
class ProblemLog:
    """Problems of one import: counts per kind, and the first ``keep_per_kind`` of each kind in full."""

    keep_per_kind: int = 20
    counts: dict[str, int] = field(default_factory=dict)
    kept: list[tuple[str, Problem]] = field(default_factory=list)
    _kept_per_kind: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, problem: Problem) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._kept_per_kind.get(kind, 0) < self.keep_per_kind:
            self._kept_per_kind[kind] = self._kept_per_kind.get(kind, 0) + 1
            self.kept.append((kind, problem))

    def add_row_error(self, error: RowError, file: str, line: int | None) -> None:
        self.add(error.kind, Problem(error.message, field=error.field, file=file, line=line))

    def warn(self, kind: str, message: str, *, file: str | None = None, line: int | None = None,
             field: str | None = None) -> None:
        self.add(kind, Problem(message, field=field, file=file, line=line, severity="warning"))

    @property
    def problems(self) -> list[Problem]:
        return [p for _, p in self.kept]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def groups(self) -> list[dict]:
        """One entry per kind, most frequent first: kind, title, count, severity and the problems kept in full."""
        out = []
        for kind, count in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            examples = [p for k, p in self.kept if k == kind]
            severity = "error" if any(p.severity == "error" for p in examples) else "warning"
            out.append({"kind": kind, "title": KIND_TITLES.get(kind, kind), "count": count, "severity": severity,
                        "shown": len(examples), "problems": [p.to_dict() for p in examples]})
        return out
