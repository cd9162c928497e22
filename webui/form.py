"""Builds Gradio inputs from a config dataclass's field metadata, so the form never drifts from the config."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import gradio as gr

from core.config_fields import labelled_choices_of
from webui.i18n import field_info, field_label, t

GROUPS = ("run", "method", "precision", "images", "hyper", "output", "eval")
OPEN_GROUPS = ("run", "method", "hyper")
MIN_WIDTH = 240  # below this a checkbox's label and info wrap into a narrow column; the row wraps instead
# Fields that pick between a few long names are radios, one whole name per line, never a cut-off dropdown.
RADIOS = ("method",)


def component_for(f: dataclasses.Field, prefix: str = "train", **overrides: Any) -> gr.components.Component:
    """One input for a field. It imposes no limits of its own: Check reports a range by the field's label."""
    meta = f.metadata
    common = {"label": field_label(prefix, f.name), "info": field_info(prefix, f.name) if meta["help"] else None,
              "value": f.default, "min_width": MIN_WIDTH, **overrides}
    choices = labelled_choices_of(f)
    if "choices" in overrides:
        return gr.Dropdown(**common)
    if choices is not None and f.name in RADIOS:
        return gr.Radio(choices=[(t(f"{f.name}_{value}"), value) for _, value in choices], **common)
    if choices is not None:
        return gr.Dropdown(choices=choices, **common)
    if f.type in (bool, "bool"):
        return gr.Checkbox(**common)
    if f.type in (int, "int", float, "float"):
        # No minimum/maximum/precision: Gradio would refuse the value in a toast before Check could name it.
        return gr.Number(step=1 if f.type in (int, "int") else None, **common)
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
        with gr.Accordion(t(f"group_{group}"), open=group in OPEN_GROUPS):
            # Radios on their own lines, then the boxes, then the checkboxes in a row of their own: beside
            # boxes, a checkbox is squeezed into a narrow column whatever its min_width.
            radios = [f for f in members if f.name in RADIOS]
            checkboxes = [f for f in members if f.type in (bool, "bool") and f not in radios]
            for f in radios:
                made[f.name] = component_for(f, **overrides.get(f.name, {}))
            for row in ([f for f in members if f not in radios and f not in checkboxes], checkboxes):
                if not row:
                    continue
                with gr.Row(equal_height=False):
                    for f in row:
                        made[f.name] = component_for(f, visible=shown(f, defaults), **overrides.get(f.name, {}))
    wire_visibility(fields, made)
    return {f.name: made[f.name] for f in fields}


def shown(f: dataclasses.Field, values: dict[str, Any]) -> bool:
    """Whether a field matters for these values (``shown_when``: every named field holds an allowed value)."""
    return all(values.get(c) in allowed for c, allowed in (f.metadata.get("shown_when") or {}).items())


def visibility_js(dependents: list[dataclasses.Field], controls: list[str]) -> str:
    """A browser function from the controls' values to a visibility update per dependent field (no server trip)."""
    rules = [{c: list(allowed) for c, allowed in f.metadata["shown_when"].items()} for f in dependents]
    return (f"(...values) => {{ const names = {json.dumps(controls)}; const rules = {json.dumps(rules)};"
            " const v = Object.fromEntries(names.map((n, i) => [n, values[i]]));"
            " return rules.map(r => ({__type__: 'update',"
            " visible: Object.entries(r).every(([c, ok]) => ok.includes(v[c]))})); }")


def wire_visibility(fields: tuple[dataclasses.Field, ...], made: dict[str, gr.components.Component]) -> None:
    """Hide a field unless the fields it depends on hold one of the values it matters for, in the browser at once."""
    dependents = [f for f in fields if f.metadata.get("shown_when")]
    controls = sorted({c for f in dependents for c in f.metadata["shown_when"]})
    if not dependents:
        return
    js = visibility_js(dependents, controls)
    for c in controls:
        made[c].change(None, [made[x] for x in controls], [made[f.name] for f in dependents], js=js,
                       api_visibility="private", show_progress="hidden")
