"""The Train tab: the config form, a live memory estimate with fit-to-card, Check, and Start (headless command)."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from core.problems import Problem, ProblemsError
from core.runs.comparison_launch import DEFAULT_METHODS
from core.studio import Studio
from core.train_config import STARTER_MODEL, TINY_MODEL, TrainConfig
from webui import quick_start
from webui.builds import build_panel
from webui.form import build_form
from webui.i18n import WITH_LOCALE_JS, problem_text, resolve, say, t, term_label, text
from webui.messages import esc, failure_markdown

VERDICT_ICONS = {"fits": "✅", "tight": "⚠️", "will not fit": "❌"}
MODEL_PARTS = "**{family}**: {parts}."
FIELD_NAMES = set(TrainConfig.field_names())
# The fields a method choice may set (core/methods: Method.settings_for).
FOLLOWERS = ("quantization", "quant_type", "double_quant")


def gb(value: float) -> str:
    return f"{value:.2f} GB" if value < 10 else f"{value:.1f} GB"


def params_text(count: int) -> str:
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def verdict_text(verdict: str, locale: str | None) -> str:
    """A verdict with its icon, in the page's language."""
    key = {"fits": "mem_verdict_fits", "tight": "mem_verdict_tight"}.get(verdict, "mem_verdict_over")
    return f"{VERDICT_ICONS[verdict]} {say(key, locale)}"


def refusal_text(result: dict[str, Any], locale: str | None) -> str:
    """Why there is no estimate: the fields to fix by their labels, with what was expected, in the page's language
    (other reasons, such as a model that cannot be read, are core's English)."""
    fields = result.get("fields") or {}
    if not fields:
        return result["reason"]
    named = "; ".join(say("mem_fix_field", locale, label=resolve(field_label(name), locale),
                          problem=resolve(problem_text(message), locale)) for name, message in fields.items())
    return say("mem_fix_fields", locale, fields=named)


def estimate_markdown(result: dict[str, Any], locale: str | None = "en") -> str:
    """The verdict in words: the predicted peak beside the card, and what the peak is made of."""
    card = result["card"]
    if not result["ok"]:
        return f"**{say('memory_unavailable', locale)}** {refusal_text(result, locale)}"
    verdict = result["verdict"]
    head = (f"## {verdict_text(verdict, locale)}\n\n"
            + say("mem_predicted", locale, peak=gb(result["total_gb"]), card=card["label"], card_gb=gb(card["gb"])))
    if verdict == "will not fit":
        advice = say("mem_over", locale, gb=gb(-result["headroom_gb"]))
    else:
        advice = say("mem_tight" if verdict == "tight" else "mem_spare", locale, gb=gb(result["headroom_gb"]))
    detail = say("mem_torch_peak", locale, allocated=gb(result["allocated_gb"]), reserved=gb(result["reserved_gb"]))
    if result.get("paged_gb"):
        detail += say("mem_paged", locale, gb=gb(result["paged_gb"]))
    detail += say("mem_params", locale, model=result["model"], params=params_text(result["params"]))
    return f"{head} {advice}\n\n{detail}{model_markdown(result, locale)}"


def model_markdown(result: dict[str, Any], locale: str | None = "en") -> str:
    """The model's family and parts with their sizes, and what an image costs in tokens."""
    if not result.get("family"):
        return ""
    parts = " · ".join(f"{label} {params_text(count)}" for label, count in result["parts"].items())
    shown = "\n\n" + MODEL_PARTS.format(family=result["family"], parts=parts)
    if result.get("vision"):
        shown += say("mem_image_tokens", locale, n=result["image_tokens"])
    if result.get("image_warning"):
        shown += f"\n\n⚠️ {esc(result['image_warning'])}"
    return shown


def breakdown_frame(result: dict[str, Any], locale: str | None = "en") -> pd.DataFrame:
    """The terms of the estimate (typed even when empty: the plot fixes its axis types from its first value)."""
    items = list(result.get("breakdown", {}).items()) if result.get("ok") else []
    return pd.DataFrame({"term": pd.Series([term_label(k, locale) for k, _ in items], dtype="str"),
                         "GB": pd.Series([round(v, 4) for _, v in items], dtype="float64")})


def terms_frame(result: dict[str, Any], locale: str | None = "en") -> pd.DataFrame:
    columns = [say("mem_col_term", locale), "GB", say("mem_col_note", locale)]
    rows = [[term_label(t["label"], locale), round(t["gb"], 4), t["note"]]
            for t in result.get("terms", [])] if result.get("ok") else []
    return pd.DataFrame(rows, columns=columns)


def field_label(name: str) -> str:
    """The field's label as the browser shows it, in its language."""
    return text(f"field_{name}") if name in FIELD_NAMES else name


def problems_by_label(problems: list[Problem], title_key: str) -> str:
    """Every problem on its own line, named by the field's label (translated), with what was expected."""
    if not problems:
        return ""
    lines = [f"**{text(title_key)}**", ""]
    for p in problems:
        icon = "⚠️" if p.severity == "warning" else "❌"
        where = f"**{field_label(p.field)}**: " if p.field else (f"`{p.where()}`: " if p.where() else "")
        lines.append(f"- {icon} {where}{problem_text(p.message, esc)}")
    return "\n".join(lines)


def over_card(result: dict[str, Any]) -> bool:
    return bool(result.get("ok") and result.get("verdict") == "will not fit")


def fit_markdown(result: dict[str, Any], locale: str | None = "en") -> str:
    if not result["ok"]:
        return say("mem_cannot_fit", locale, reason=refusal_text(result, locale))
    card = f"{result['card']['label']} ({gb(result['card']['gb'])})"
    if not result["proposals"] and result["before_verdict"] != "will not fit":
        return say("mem_already_fits", locale, card=card, peak=gb(result["before_gb"]))
    if not result["applicable"]:
        lines = [say("mem_no_settings", locale, card=card, peak=gb(result["before_gb"]))]
        if result["proposals"]:
            lines += ["", say("mem_save_most", locale, peak=gb(result["after_gb"]))]
            lines += [f"- {p['sentence']} {say('mem_saves', locale, gb=gb(p['saving_gb']))}"
                      for p in result["proposals"]]
        return "\n".join([*lines, "", result["instead"]])
    lines = [say("mem_to_fit", locale, card=card, before=gb(result["before_gb"]), after=gb(result["after_gb"]),
                 verdict=verdict_text(result["after_verdict"], locale)), ""]
    for i, p in enumerate(result["proposals"], start=1):
        lines.append(f"{i}. {p['sentence']} {say('mem_saves', locale, gb='**' + gb(p['saving_gb']) + '**')}")
    lines += ["", say("mem_apply_hint", locale)]
    return "\n".join(lines)


def applied_markdown(result: dict[str, Any], locale: str | None = "en") -> str:
    if not result["ok"]:
        return say("mem_nothing_applied", locale, reason=refusal_text(result, locale))
    if not result["changes"]:
        return say("mem_applied_none", locale)

    def shown(value: Any) -> str:
        return say("mem_on" if value else "mem_off", locale) if isinstance(value, bool) else f"`{value}`"

    changed = ", ".join(f"{resolve(field_label(k), locale)} → {shown(v)}" for k, v in result["changes"].items())
    return say("mem_applied", locale, changes=changed, peak=gb(result["after_gb"]),
               verdict=verdict_text(result["after_verdict"], locale))


def method_choices() -> list[tuple[str, str]]:
    from core.methods import all_methods

    return [(m.label, m.name) for m in all_methods()]


def warnings_markdown(warnings: list[Any]) -> str:
    """Warnings shown above everything else: a run that starts anyway should not surprise anyone."""
    return f"{text('train_before_runs')}\n\n{problems_by_label(warnings, 'train_check_warns')}"


def started_markdown(studio: Studio, run_id: int, name: str) -> str:
    """Started at once, or waiting in the queue: at which place and why."""
    place = studio.queue_place(run_id)
    if place is None:
        return f"{text('train_started')} **{run_id}** ({esc(name)}). {text('train_follow')}"
    return (f"{text('train_queued')} **{run_id}** ({esc(name)}) {text('train_queued_place')} {place.place}: "
            f"{esc(place.waiting_reason)}. {text('train_queued_follow')}")


def comparison_markdown(studio: Studio, ids: list[int], warnings: list[Any]) -> str:
    lines = [text("train_comparison_queued"), ""]
    for run_id in ids:
        run = studio.registry.get_run(run_id)
        place = studio.queue_place(run_id)
        lines.append(f"- run {run_id}: **{esc(run.name)}** — " +
                     (f"{text('train_waiting_place')} {place.place}" if place else text('train_state_started')))
    listed = "\n".join(lines)
    return f"{warnings_markdown(warnings)}\n\n{listed}" if warnings else listed


def build(studio: Studio, locale: gr.Textbox, switch: gr.Radio | None = None) -> dict[str, Any]:
    """The Train tab; ``locale`` is the app's input that events fill with the page's language, ``switch`` the
    language switch (the memory estimate is drawn again in the language chosen)."""
    quick = quick_start.build(studio)
    gr.Markdown(t("train_heading"))
    names = [d.name for d in studio.list_datasets()]
    form = build_form(TrainConfig, overrides={
        "model": {"choices": [TINY_MODEL, STARTER_MODEL], "allow_custom_value": True},
        "dataset": {"choices": names, "allow_custom_value": True},
    })
    inputs = list(form.values())
    field_names = list(form)
    builds = build_panel(studio, form["model"])
    memory = build_memory_panel(studio, form, locale, switch)
    card = memory["card"]
    with gr.Row():
        check = gr.Button(t("train_check"))
        start = gr.Button(t("train_start"), variant="primary")
        start_now = gr.Button(t("train_start_now"))
    acknowledge = gr.Checkbox(False, label=t("train_start_anyway"), visible=False)
    with gr.Accordion(t("train_compare"), open=False):
        gr.Markdown(t("train_compare_help"))
        with gr.Row():
            methods = gr.CheckboxGroup(label=t("train_compare_methods"), choices=method_choices(),
                                       value=list(DEFAULT_METHODS), scale=3)
            launch = gr.Button(t("train_compare"), variant="primary", scale=1)
    status = gr.Markdown()
    checked = gr.State(False)  # whether the status shows Check's verdict, which then follows every change
    run_id = gr.Number(label=t("train_started_run"), precision=0, interactive=False, visible=False)
    with gr.Accordion(t("train_headless"), open=False):
        command = gr.Code(label=t("train_command"), language="shell", interactive=False)
        config_json = gr.Code(label="config.json", language="json", interactive=False)

    def values_of(args: tuple) -> dict[str, Any]:
        return dict(zip(field_names, args, strict=True))

    def verdict_of(values: dict[str, Any], chosen_card: Any) -> tuple[str, str]:
        """Check's verdict in words, and the config as JSON: every problem, or ready (over the card or not)."""
        config, problems = studio.check_config(values)
        if any(p.severity == "error" for p in problems):
            return problems_by_label(problems, "train_please_fix"), config.to_json()
        notes = f"\n\n{problems_by_label(problems, 'train_worth_knowing')}" if problems else ""
        if chosen_card is not None and over_card(studio.memory.estimate(values, chosen_card)):
            return f"{text('train_ready_over')}{notes}", config.to_json()
        return f"{text('train_ready')}{notes}", config.to_json()

    def do_check(*args: Any) -> tuple[str, str, str, bool]:
        *values, chosen_card, language = args
        verdict, config = verdict_of(values_of(tuple(values)), chosen_card)
        preview = studio.command_preview(TrainConfig.coerce(values_of(tuple(values)))[0])
        return resolve(verdict, language), preview, config, True

    def recheck(*args: Any) -> Any:
        """After any change, a verdict on screen is worked out again, so it never says what is no longer true."""
        *values, chosen_card, showing, language = args
        if not showing:
            return gr.update()
        return resolve(verdict_of(values_of(tuple(values)), chosen_card)[0], language)

    def do_start(*args: Any, now: bool = False) -> tuple[str, str, str, Any, bool]:
        *values, chosen_card, acknowledged, language = args
        status, *rest = start_run(values_of(tuple(values)), chosen_card, acknowledged, now)
        return (resolve(status, language), *rest)

    def do_start_now(*args: Any) -> tuple[str, str, str, Any, bool]:
        return do_start(*args, now=True)

    def start_run(values: dict[str, Any], chosen_card: Any, acknowledged: bool,
                  now: bool) -> tuple[str, str, str, Any, bool]:
        try:
            if not acknowledged and chosen_card is not None:
                config, problems = studio.check_config(values)
                errors = [p for p in problems if p.severity == "error"]
                if errors:
                    return problems_by_label(errors, "train_please_fix"), "", "", gr.update(visible=False), True
                if over_card(studio.memory.estimate(values, chosen_card)):
                    return text("train_over_refused"), "", "", gr.update(visible=False), False
            new_id = studio.start_run(values, start_now=now)
        except ProblemsError as e:
            return problems_by_label(e.problems, "train_please_fix"), "", "", gr.update(visible=False), True
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_markdown(e), "", "", gr.update(visible=False), False
        view = studio.run_view(new_id)
        warnings = [p for p in studio.check_config(values)[1] if p.severity == "warning"]
        message = f"{started_markdown(studio, new_id, view.run.name)}\n\n{text('train_headless_hint')}"
        if warnings:
            message = f"{warnings_markdown(warnings)}\n\n{message}"
        return (message, view.command, json.dumps(view.run.config, indent=2),
                gr.update(value=new_id, visible=True), False)

    def follow_method(method: str, *current: Any) -> tuple:
        """Choosing a method sets what follows from it (QLoRA: a 4-bit NF4 base); the browser hides the rest."""
        values = dict(zip(FOLLOWERS, current, strict=True)) | {"method": method}
        changes = studio.method_settings(values)
        return tuple(changes.get(name, values[name]) for name in FOLLOWERS)

    def do_launch(*args: Any) -> str:
        *values, chosen, language = args
        values, chosen = values_of(tuple(values)), list(chosen or [])
        try:
            ids = studio.launch_comparison(values, chosen)
        except ProblemsError as e:
            return resolve(problems_by_label(e.problems, "train_please_fix"), language)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return failure_markdown(e)
        warnings = [p for p in studio.check_comparison(values, chosen) if p.severity == "warning"]
        return resolve(comparison_markdown(studio, ids, warnings), language)

    check.click(do_check, [*inputs, card, locale], [status, command, config_json, checked], api_name="check_config",
                js=WITH_LOCALE_JS)
    start.click(do_start, [*inputs, card, acknowledge, locale], [status, command, config_json, run_id, checked],
                api_name="start_run", js=WITH_LOCALE_JS)
    start_now.click(do_start_now, [*inputs, card, acknowledge, locale],
                    [status, command, config_json, run_id, checked], api_name="start_run_now", js=WITH_LOCALE_JS)
    launch.click(do_launch, [*inputs, methods, locale], status, api_name="launch_comparison", js=WITH_LOCALE_JS)
    gr.on([c.change for c in [*inputs, card]], recheck, [*inputs, card, checked, locale], status,
          trigger_mode="always_last", show_progress="hidden", api_visibility="private", js=WITH_LOCALE_JS)
    form["method"].change(follow_method, [form["method"], *(form[n] for n in FOLLOWERS)],
                          [form[n] for n in FOLLOWERS], api_name="follow_method", show_progress="hidden")
    # "Start anyway" is there only while the estimate is over the card, and is asked again once it fits.
    def follow_estimate(result: dict[str, Any] | None) -> Any:
        over = over_card(result or {})
        return gr.update(visible=True) if over else gr.update(visible=False, value=False)

    memory["estimate"].change(follow_estimate, memory["estimate"], acknowledge, api_visibility="private",
                              show_progress="hidden")
    return {"form": form, "run_id": run_id, "memory": memory, "builds": builds, "status": status,
            "acknowledge": acknowledge, "quick_start": quick}


def build_memory_panel(studio: Studio, form: dict[str, gr.components.Component], locale: gr.Textbox,
                       switch: gr.Radio | None = None) -> dict[str, Any]:
    """The estimate beside the card, its breakdown chart, and Fit to my card; updated as the form changes."""
    inputs = list(form.values())
    field_names = list(form)
    advisor = studio.memory
    with gr.Accordion(t("memory_title"), open=True):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                card = gr.Dropdown(label=t("memory_card"), choices=advisor.card_choices(),
                                   value=advisor.default_card(), allow_custom_value=True, info=t("memory_card_info"))
                verdict = gr.Markdown(t("memory_working"))
                with gr.Row():
                    fit = gr.Button(t("memory_fit"), size="sm")
                    apply = gr.Button(t("memory_apply"), size="sm", variant="primary", visible=False)
                fit_text = gr.Markdown()
            with gr.Column(scale=3):
                chart = gr.BarPlot(breakdown_frame({}), x="term", y="GB", sort="-y", x_label_angle=-35,
                                   x_title=t("mem_col_term"), title=t("memory_chart"), height=320)
        with gr.Accordion(t("memory_terms"), open=False):
            terms = gr.Dataframe(terms_frame({}), interactive=False, wrap=True,
                                 column_widths=["22%", "10%", "68%"])
        estimate_json = gr.JSON(visible=False)
        fit_json = gr.JSON(visible=False)

    def split(args: tuple) -> tuple[dict[str, Any], Any, str]:
        # The inputs: every form field, the card, then the page's language (filled by WITH_LOCALE_JS).
        return dict(zip(field_names, args[:-2], strict=True)), args[-2], args[-1]

    def do_estimate(*args: Any) -> tuple:
        values, chosen, language = split(args)
        result = advisor.estimate(values, chosen)
        return (estimate_markdown(result, language), breakdown_frame(result, language),
                terms_frame(result, language), result)

    def do_fit(*args: Any) -> tuple:
        values, chosen, language = split(args)
        result = advisor.fit(values, chosen)
        return fit_markdown(result, language), gr.update(visible=bool(result["ok"] and result["applicable"])), result

    def do_apply(*args: Any) -> tuple:
        values, chosen, language = split(args)
        result = advisor.apply(values, chosen)
        changes = result.get("changes", {}) if result["ok"] else {}
        updates = [gr.update(value=changes[name]) if name in changes else gr.update() for name in field_names]
        return (*updates, applied_markdown(result, language), gr.update(visible=False), changes)

    # triggers=None: every form input's change, the card's, and the page load.
    gr.on(None, do_estimate, [*inputs, card, locale], [verdict, chart, terms, estimate_json],
          trigger_mode="always_last", show_progress="hidden", api_name="estimate_memory", js=WITH_LOCALE_JS)
    if switch is not None:  # its value is the language chosen, so it stands in for the page's locale
        switch.change(do_estimate, [*inputs, card, switch], [verdict, chart, terms, estimate_json],
                      trigger_mode="always_last", show_progress="hidden", api_visibility="private")
    fit.click(do_fit, [*inputs, card, locale], [fit_text, apply, fit_json], api_name="fit_to_card",
              js=WITH_LOCALE_JS)
    apply.click(do_apply, [*inputs, card, locale], [*inputs, fit_text, apply, fit_json], api_name="apply_fit",
                js=WITH_LOCALE_JS)
    return {"card": card, "verdict": verdict, "chart": chart, "estimate": estimate_json}
