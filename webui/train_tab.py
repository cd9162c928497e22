"""The Train tab: the config form, a check that lists every problem, and Start, with the exact headless command."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from core.launcher import shell_text
from core.studio import Studio
from core.train_config import TINY_MODEL, TrainConfig
from webui.form import build_form
from webui.messages import failure_markdown, problems_markdown

HEADLESS_HINT = "Run the same thing without the studio (the config file is written when the run starts):"


def build(studio: Studio) -> dict[str, Any]:
    gr.Markdown("### New training run")
    names = [d.name for d in studio.list_datasets()]
    form = build_form(TrainConfig, overrides={
        "model": {"choices": [TINY_MODEL], "allow_custom_value": True},
        "dataset": {"choices": names, "allow_custom_value": True},
    })
    inputs = list(form.values())
    field_names = list(form)
    with gr.Row():
        check = gr.Button("Check")
        start = gr.Button("Start training", variant="primary")
    status = gr.Markdown()
    run_id = gr.Number(label="Started run", precision=0, interactive=False, visible=False)
    with gr.Accordion("Headless command and config.json", open=False):
        command = gr.Code(label="Command", language="shell", interactive=False)
        config_json = gr.Code(label="config.json", language="json", interactive=False)

    def values_of(args: tuple) -> dict[str, Any]:
        return dict(zip(field_names, args, strict=True))

    def do_check(*args: Any) -> tuple[str, str, str]:
        config, problems = studio.check_config(values_of(args))
        preview = shell_text(["python", "-m", "jobs.train", "--config", "<run folder>/config.json"])
        verdict = problems_markdown(problems) if problems else "✅ Ready to start."
        return verdict, preview, config.to_json()

    def do_start(*args: Any) -> tuple[str, str, str, Any]:
        try:
            new_id = studio.start_run(values_of(args))
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_markdown(e), "", "", gr.update(visible=False)
        view = studio.run_view(new_id)
        text = (f"🚀 Started run **{new_id}** ({view.run.name}). Follow it in the Runs tab.\n\n"
                f"{HEADLESS_HINT}")
        return text, view.command, json.dumps(view.run.config, indent=2), gr.update(value=new_id, visible=True)

    check.click(do_check, inputs, [status, command, config_json], api_name="check_config")
    start.click(do_start, inputs, [status, command, config_json, run_id], api_name="start_run")
    return {"form": form, "run_id": run_id}
