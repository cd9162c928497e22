"""The Train tab: the config form, a live memory estimate with fit-to-card, Check, and Start (headless command)."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from core.runs.launcher import shell_text
from core.studio import Studio
from core.train_config import STARTER_MODEL, TINY_MODEL, TrainConfig
from webui import quick_start
from webui.builds import build_panel
from webui.form import build_form
from webui.messages import esc, failure_markdown, problems_markdown

HEADLESS_HINT = "Run the same thing without the studio (the config file is written when the run starts):"
VERDICT_ICONS = {"fits": "✅", "tight": "⚠️", "will not fit": "❌"}
MODEL_PARTS = "**{family}**: {parts}."
IMAGE_TOKENS = " Each image adds up to {n:,} tokens at these image settings."
CARD_INFO = ("The card to check against: this machine's GPU, or a size in GiB as drivers report it (a '24 GB' "
             "card holds 24 GiB = 25.8 GB). Estimates are in GB of 10⁹ bytes. Type another size if yours is "
             "not listed.")


def gb(value: float) -> str:
    return f"{value:.2f} GB" if value < 10 else f"{value:.1f} GB"


def params_text(count: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def estimate_markdown(result: dict[str, Any]) -> str:
    """The verdict in words: the predicted peak beside the card, and what the peak is made of."""
    card = result["card"]
    if not result["ok"]:
        return f"**Memory estimate unavailable.** {result['reason']}"
    verdict = result["verdict"]
    head = (f"## {VERDICT_ICONS[verdict]} {verdict.capitalize()}\n\nPredicted peak {gb(result['total_gb'])} "
            f"on {card['label']} ({gb(card['gb'])}).")
    if verdict == "will not fit":
        advice = f"{gb(-result['headroom_gb'])} over. **Fit to my card** proposes changes that bring it under."
    elif verdict == "tight":
        advice = (f"{gb(result['headroom_gb'])} to spare: within 10% of the card, where allocator spikes or "
                  "another process can tip it over.")
    else:
        advice = f"{gb(result['headroom_gb'])} to spare."
    detail = (f"PyTorch's peak: {gb(result['allocated_gb'])} allocated, {gb(result['reserved_gb'])} reserved; "
              "plus the CUDA context. ")
    if result.get("paged_gb"):
        detail += f"Paged optimizer states ({gb(result['paged_gb'])}) can spill to CPU memory. "
    detail += f"`{result['model']}`, {params_text(result['params'])} parameters."
    return f"{head} {advice}\n\n{detail}{model_markdown(result)}"


def model_markdown(result: dict[str, Any]) -> str:
    """The model's family and parts with their sizes, and what an image costs in tokens."""
    if not result.get("family"):
        return ""
    parts = " · ".join(f"{label} {params_text(count)}" for label, count in result["parts"].items())
    text = "\n\n" + MODEL_PARTS.format(family=result["family"], parts=parts)
    if result.get("vision"):
        text += IMAGE_TOKENS.format(n=result["image_tokens"])
    if result.get("image_warning"):
        text += f"\n\n⚠️ {esc(result['image_warning'])}"
    return text


def breakdown_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The terms of the estimate (typed even when empty: the plot fixes its axis types from its first value)."""
    items = list(result.get("breakdown", {}).items()) if result.get("ok") else []
    return pd.DataFrame({"term": pd.Series([k for k, _ in items], dtype="str"),
                         "GB": pd.Series([round(v, 4) for _, v in items], dtype="float64")})


def terms_frame(result: dict[str, Any]) -> pd.DataFrame:
    rows = [{"term": t["label"], "GB": round(t["gb"], 4), "formula and source": t["note"]}
            for t in result.get("terms", [])] if result.get("ok") else []
    return pd.DataFrame(rows, columns=["term", "GB", "formula and source"])


def field_label(name: str) -> str:
    return next(f.metadata["label"] for f in TrainConfig.fields() if f.name == name)


def fit_markdown(result: dict[str, Any]) -> str:
    if not result["ok"]:
        return f"**Cannot fit yet.** {result['reason']}"
    card = f"{result['card']['label']} ({gb(result['card']['gb'])})"
    if not result["proposals"] and result["before_verdict"] != "will not fit":
        return f"✅ Already fits {card}: predicted peak {gb(result['before_gb'])}. Nothing to change."
    if not result["applicable"]:
        lines = [f"❌ **No settings bring it under {card}.** Predicted peak {gb(result['before_gb'])}."]
        if result["proposals"]:
            lines += ["", f"These would save the most, down to {gb(result['after_gb'])}, still over the card:"]
            lines += [f"- {p['sentence']} Saves {gb(p['saving_gb'])}." for p in result["proposals"]]
        return "\n".join([*lines, "", result["instead"]])
    after = result["after_verdict"]
    lines = [f"**To fit {card}:** predicted peak {gb(result['before_gb'])} → {gb(result['after_gb'])} "
             f"({VERDICT_ICONS[after]} {after})", ""]
    for i, p in enumerate(result["proposals"], start=1):
        lines.append(f"{i}. {p['sentence']} Saves **{gb(p['saving_gb'])}**.")
    lines += ["", "**Apply these changes** sets them in the form."]
    return "\n".join(lines)


def applied_markdown(result: dict[str, Any]) -> str:
    if not result["ok"]:
        return f"**Nothing applied.** {result['reason']}"
    if not result["changes"]:
        return "✅ Already fits: nothing to change."
    def shown(value: Any) -> str:
        return ("on" if value else "off") if isinstance(value, bool) else f"`{value}`"

    changed = ", ".join(f"{field_label(k)} → {shown(v)}" for k, v in result["changes"].items())
    return (f"Applied: {changed}. Predicted peak now {gb(result['after_gb'])} "
            f"({VERDICT_ICONS[result['after_verdict']]} {result['after_verdict']}).")


def build(studio: Studio) -> dict[str, Any]:
    quick = quick_start.build(studio)
    gr.Markdown("### New training run")
    names = [d.name for d in studio.list_datasets()]
    form = build_form(TrainConfig, overrides={
        "model": {"choices": [TINY_MODEL, STARTER_MODEL], "allow_custom_value": True},
        "dataset": {"choices": names, "allow_custom_value": True},
    })
    inputs = list(form.values())
    field_names = list(form)
    builds = build_panel(studio, form["model"])
    memory = build_memory_panel(studio, form)
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
        if any(p.severity == "error" for p in problems):
            verdict = problems_markdown(problems)
        else:  # warnings only: it can start, and the person should know
            notes = f"\n\n{problems_markdown(problems, 'Worth knowing:')}" if problems else ""
            verdict = f"✅ Ready to start.{notes}"
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
    return {"form": form, "run_id": run_id, "memory": memory, "builds": builds, "quick_start": quick}


def build_memory_panel(studio: Studio, form: dict[str, gr.components.Component]) -> dict[str, Any]:
    """The estimate beside the card, its breakdown chart, and Fit to my card; updated as the form changes."""
    inputs = list(form.values())
    field_names = list(form)
    advisor = studio.memory
    with gr.Accordion("GPU memory estimate", open=True):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                card = gr.Dropdown(label="GPU memory", choices=advisor.card_choices(), value=advisor.default_card(),
                                   allow_custom_value=True, info=CARD_INFO)
                verdict = gr.Markdown("Working out the memory estimate…")
                with gr.Row():
                    fit = gr.Button("Fit to my card", size="sm")
                    apply = gr.Button("Apply these changes", size="sm", variant="primary", visible=False)
                fit_text = gr.Markdown()
            with gr.Column(scale=3):
                chart = gr.BarPlot(breakdown_frame({}), x="term", y="GB", sort="-y", x_label_angle=-35,
                                   title="Predicted peak GPU memory, by term (GB)", height=320)
        with gr.Accordion("How the estimate is made (each term, its formula and source)", open=False):
            terms = gr.Dataframe(terms_frame({}), interactive=False, wrap=True,
                                 column_widths=["22%", "10%", "68%"])
        estimate_json = gr.JSON(visible=False)
        fit_json = gr.JSON(visible=False)

    def split(args: tuple) -> tuple[dict[str, Any], Any]:
        return dict(zip(field_names, args[:-1], strict=True)), args[-1]

    def do_estimate(*args: Any) -> tuple:
        values, chosen = split(args)
        result = advisor.estimate(values, chosen)
        return estimate_markdown(result), breakdown_frame(result), terms_frame(result), result

    def do_fit(*args: Any) -> tuple:
        values, chosen = split(args)
        result = advisor.fit(values, chosen)
        return fit_markdown(result), gr.update(visible=bool(result["ok"] and result["applicable"])), result

    def do_apply(*args: Any) -> tuple:
        values, chosen = split(args)
        result = advisor.apply(values, chosen)
        changes = result.get("changes", {}) if result["ok"] else {}
        updates = [gr.update(value=changes[name]) if name in changes else gr.update() for name in field_names]
        return (*updates, applied_markdown(result), gr.update(visible=False), changes)

    # triggers=None: every form input's change, the card's, and the page load.
    gr.on(None, do_estimate, [*inputs, card], [verdict, chart, terms, estimate_json], trigger_mode="always_last",
          show_progress="hidden", api_name="estimate_memory")
    fit.click(do_fit, [*inputs, card], [fit_text, apply, fit_json], api_name="fit_to_card")
    apply.click(do_apply, [*inputs, card], [*inputs, fit_text, apply, fit_json], api_name="apply_fit")
    return {"card": card, "verdict": verdict, "chart": chart}
