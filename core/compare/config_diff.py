"""The fields whose values differ between compared runs' configs, named by the config's field labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.compare.facts import RunFacts
from core.train_config import TrainConfig

MISSING = "—"  # a run whose config.json predates the field


@dataclass
class DiffRow:
    field: str
    label: str
    values: list[str]


def shown(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def config_diff(facts: list[RunFacts]) -> list[DiffRow]:
    """Only the fields that differ, in the form's order, then any keys the dataclass no longer knows."""
    known = {f.name: f.metadata.get("label", f.name) for f in TrainConfig.fields()}
    extra = sorted({k for f in facts for k in f.config if k not in known})
    rows = []
    for name in [*known, *extra]:
        values = [f.config.get(name) for f in facts]
        if len({repr(v) for v in values}) > 1:
            rows.append(DiffRow(name, known.get(name, name), [shown(v) for v in values]))
    return rows
