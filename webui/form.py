"""Builds Gradio inputs from a config dataclass's field metadata, so the form never drifts from the config."""

from __future__ import annotations

import dataclasses
from typing import Any

import gradio as gr

from core.config_fields import labelled_choices_of

GROUP_TITLES = {
    "run": "Model and data",
    "method": "Method",
    "precision": "Precision and memory",
    "hyper": "Hyperparameters",
    "output": "Logging and checkpoints",
    "eval": "Evaluation during training",
    "speed": "Speed",
    "scale": "GPUs and tracking",
}


def component_for(f: dataclasses.Field, **overrides: Any) -> gr.components.Component:
    meta = f.metadata
    common = {"label": meta["label"], "info": meta["help"] or None, "value": f.default, **overrides}
    choices = labelled_choices_of(f)
    if "choices" in overrides:
        return gr.Dropdown(**common)
    if choices is not None:
        return gr.Dropdown(choices=choices, **common)
    if f.type in (bool, "bool"):
        return gr.Checkbox(**common)
    if f.type in (int, "int", float, "float"):
        is_int = f.type in (int, "int")
        return gr.Number(minimum=meta["min"], maximum=meta["max"], precision=0 if is_int else None,
                         step=1 if is_int else None, **common)
    return gr.Textbox(**common)


def build_form(config_cls: type, overrides: dict[str, dict[str, Any]] | None = None
               ) -> dict[str, gr.components.Component]:
    """One input per field, grouped in accordions by the field's group; returns them by field name in order."""
    overrides = overrides or {}
    fields = dataclasses.fields(config_cls)
    groups: dict[str, list[dataclasses.Field]] = {}
    for f in fields:
        groups.setdefault(f.metadata.get("group", "basic"), []).append(f)
    defaults = {f.name: f.default for f in fields}
    made: dict[str, gr.components.Component] = {}
    for group, members in groups.items():
        with gr.Accordion(GROUP_TITLES.get(group, group.title()), open=group in ("run", "method", "hyper")):
            with gr.Row(equal_height=False):
                for f in members:
                    conditions = f.metadata.get("shown_when") or {}
                    visible = all(defaults[c] in allowed for c, allowed in conditions.items())
                    made[f.name] = component_for(f, visible=visible, **overrides.get(f.name, {}))
    _wire_visibility(fields, made)
    return {f.name: made[f.name] for f in fields}


def _wire_visibility(fields: tuple[dataclasses.Field, ...], made: dict[str, gr.components.Component]) -> None:
    """Hide a field unless the fields it depends on hold one of the values it matters for."""
    for f in fields:
        conditions = f.metadata.get("shown_when") or {}
        if not conditions:
            continue
        controls = list(conditions)

        def update(*values: Any, conditions: dict = conditions, controls: list = controls) -> Any:
            return gr.update(visible=all(v in conditions[c] for c, v in zip(controls, values, strict=True)))

        for c in controls:
            made[c].change(update, [made[x] for x in controls], made[f.name], api_visibility="private",
                           show_progress="hidden")
