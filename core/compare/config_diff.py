"""The fields whose values differ between compared runs' configs, named by the config's field labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.compare.facts import RunFacts
from core.train_config import TrainConfig

MISSING = "—"  # a run whose config.json predates the field
NOT_USED = "— (not used)"  # the field does not apply to this run (a LISA setting of a LoRA run)


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


def applies(conditions: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a field matters for a config, by its ``shown_when`` (as the form decides whether to show it)."""
    return all(config.get(control) in values for control, values in conditions.items())


def config_diff(facts: list[RunFacts]) -> list[DiffRow]:
    """Only the fields that differ, in the form's order, then any keys the dataclass no longer knows. A field
    that does not apply to a run (its ``shown_when``) shows as not used there, and one that applies to none of
    the runs is left out, whatever its values."""
    fields = {f.name: f for f in TrainConfig.fields()}
    extra = sorted({k for f in facts for k in f.config if k not in fields})
    rows = []
    for name in [*fields, *extra]:
        conditions = fields[name].metadata.get("shown_when", {}) if name in fields else {}
        used = [applies(conditions, f.config) for f in facts]
        values = [shown(f.config.get(name)) if use else NOT_USED for f, use in zip(facts, used, strict=True)]
        if any(used) and len(set(values)) > 1:
            label = fields[name].metadata.get("label", name) if name in fields else name
            rows.append(DiffRow(name, label, values))
    return rows
