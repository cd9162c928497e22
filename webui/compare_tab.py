"""The Compare tab: 2 to 6 runs side by side — the summary with the best marked, overlaid charts in each run's own
colour, the config diff, CSV and PNG downloads, and A/B chat with their checkpoints."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import pandas as pd

from core.compare.config_diff import NOT_USED
from core.compare.curves import CHARTS, MAX_SMOOTHING, X_AXES, chart_rows
from core.compare.summary import BEST_MARK, shown
from core.studio import Studio
from webui import ab_chat_panel
from webui import chat_views as views
from webui.i18n import LOCALE_ID, catalogues, say, t, text

PRESELECT = 3  # the newest runs chosen when the tab opens with nothing chosen
MAX_RUNS = 6
# Everything the tab writes follows the page's language; core's names (columns, charts, axes, fields) are
# translated by key, and any core has that the catalogue lacks stays English.
Y_TITLES = {"loss": "loss", "eval_loss": "eval loss", "memory": "MB", "tokens_per_s": "tokens/s"}
INTRO = BEST_MARK + " " + text("cmp_intro")
# The page's language into the tab's hidden locale box, by an event of its own: WITH_LOCALE_JS on an event with the
# run list as input writes the list back, which fires its change again, without end.
PAGE_LOCALE_JS = (f"() => {{ const el = document.querySelector('#{LOCALE_ID}');"
                  " return el ? el.textContent.trim() : 'en'; }")
SUMMARY_CSS = ("<style>#compare-summary table,#compare-diff table{border-collapse:collapse;font-size:12px}"
               "#compare-summary th,#compare-summary td,#compare-diff th,#compare-diff td{border:1px solid #ddd;"
               "padding:3px 5px;text-align:right;vertical-align:top;white-space:nowrap}"
               "#compare-summary th{white-space:normal;max-width:88px}"
               "#compare-summary td.run,#compare-diff td.field{text-align:left}"
               "#compare-summary td.best{font-weight:700;background:#e8f5e9}"
               ".swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;"
               "vertical-align:middle}.compare-wrap{overflow-x:auto}</style>")


def run_choices(runs: list[Any]) -> list[tuple[str, int]]:
    return [(f"{r.id}: {r.name} ({r.method}, {r.status})", r.id) for r in runs]


def newest(runs: list[Any], count: int = PRESELECT) -> list[int]:
    """The newest runs that have trained at least one step (the registry lists newest first)."""
    return [r.id for r in runs if r.step > 0][:count]


def swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{html.escape(colour)}"></span>'


def summary_html(comparison: Any, locale: str | None = "en") -> str:
    summary = comparison.summary
    head = "".join(f'<th title="{html.escape(views.column_help(c, locale))}">'
                   f'{html.escape(views.column_label(c, locale))}</th>' for c in summary.columns)
    body = []
    for i, run_id in enumerate(summary.run_ids):
        cells = []
        for c in summary.columns:
            value = html.escape(shown(c, summary.rows[i].get(c.key)))
            best = summary.is_best(c.key, run_id)
            cells.append(f'<td data-col="{c.key}" class="{"best" if best else ""}">'
                         f'{BEST_MARK + " " if best else ""}{value}</td>')
        body.append(f'<tr data-run="{run_id}"><td class="run">{swatch(summary.colours[i])}'
                    f'{html.escape(summary.labels[i])}</td>{"".join(cells)}</tr>')
    run = say("cmp_col_run", locale)
    return (f'{SUMMARY_CSS}<div class="compare-wrap"><table><thead><tr><th>{run}</th>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def diff_html(comparison: Any, locale: str | None = "en") -> str:
    if not comparison.diff:
        return f"<p>{say('cmp_no_diff', locale)}</p>"
    head = "".join(f"<th>{swatch(f.colour)}{html.escape(f.label)}</th>" for f in comparison.facts)
    not_used = say("pt_not_used", locale)
    rows = "".join(f'<tr data-field="{html.escape(d.field)}"><td class="field">'
                   f'{html.escape(views.field_label(d.field, d.label, locale))}</td>'
                   + "".join(f"<td>{html.escape(not_used if v == NOT_USED else v)}</td>" for v in d.values) + "</tr>"
                   for d in comparison.diff)
    setting = say("cmp_col_setting", locale)
    return (f'{SUMMARY_CSS}<div class="compare-wrap"><table><thead><tr><th>{setting}</th>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def chart_frame(rows: list[dict]) -> pd.DataFrame:
    """Typed even when empty: the plot fixes its axis types from the first value."""
    return pd.DataFrame({"x": pd.Series([r["x"] for r in rows], dtype="float64"),
                         "value": pd.Series([r["value"] for r in rows], dtype="float64"),
                         "run": pd.Series([r["run"] for r in rows], dtype="str")})


def named(prefix: str, key: str, english: str, locale: str | None = "en") -> str:
    """Core's name of an axis or a chart (``english``) in ``locale``, by its catalogue key."""
    return views.phrase(f"{prefix}{key}", locale, english)


def charts_data(comparison: Any, x: str, locale: str | None = "en") -> dict[str, Any]:
    """What the charts draw, as plain data: each chart's points and titles, the x-axis title and the runs'
    colours."""
    return {"x_title": named("pt_x_", x, X_AXES[x], locale), "colours": comparison.colours,
            "titles": {name: named("pt_chart_", name, CHARTS[name], locale) for name in CHARTS},
            "y_titles": {name: named("pt_y_", name, Y_TITLES[name], locale) for name in CHARTS},
            "charts": {name: [{"x": r[X_AXES[x]], "value": r["value"], "run": r["run"]}
                              for r in chart_rows(comparison.charts[name], x)] for name in CHARTS}}


def axis_choices() -> list[tuple[Any, str]]:
    """The x-axis radio's choices, labelled in the browser's language where the catalogue names the axis."""
    return [(t(f"pt_x_{key}") if f"pt_x_{key}" in catalogues()["en"] else label, key) for key, label in X_AXES.items()]


def build(studio: Studio, opener: Any, switch: gr.Radio | None = None) -> None:
    """The tab's components; ``opener`` is its tab's select event, which refreshes the run list and the table;
    after the language ``switch`` the table, charts and diff are drawn again in its language."""
    gr.Markdown(INTRO)
    with gr.Row():
        runs = gr.Dropdown(label=t("cmp_runs"), choices=run_choices(studio.list_runs()), multiselect=True,
                           max_choices=MAX_RUNS, scale=4, elem_id="compare-runs")
        refresh = gr.Button(t("cmp_refresh"), scale=1)  # runs still training: the figures as they are now
    notice = gr.Markdown(elem_id="compare-notice")
    summary = gr.HTML(elem_id="compare-summary")
    with gr.Row():
        x_axis = gr.Radio(axis_choices(), value="step", label=t("cmp_x_axis"))
        smoothing = gr.Slider(0.0, MAX_SMOOTHING, value=0.0, step=0.05, label=t("cmp_smoothing"))
    drawn = gr.State({})
    locale = gr.Textbox("en", visible=False)  # filled with the page's language by WITH_LOCALE_JS
    names = list(CHARTS)

    # Plots made afresh for each comparison: a line plot that starts empty does not draw its first update.
    @gr.render(inputs=drawn)
    def draw(data: dict) -> None:
        if not data:
            return
        for pair in (names[:2], names[2:]):
            with gr.Row():
                for name in pair:
                    gr.LinePlot(chart_frame(data["charts"][name]), x="x", y="value", color="run",
                                color_map=data["colours"], title=data["titles"][name], x_title=data["x_title"],
                                y_title=data["y_titles"][name], height=280, elem_id=f"compare-chart-{name}")

    gr.Markdown(text("cmp_diff_heading"))
    diff = gr.HTML(elem_id="compare-diff")
    with gr.Row():
        export_csv = gr.Button(t("cmp_export_csv"))
        export_png = gr.Button(t("cmp_export_png"))
    downloads = gr.File(label=t("cmp_downloads"), file_count="multiple", interactive=False, visible=False,
                        elem_id="compare-downloads")
    export_notice = gr.Markdown()

    ab_chat_panel.build(studio, runs, locale)

    def show(ids: list[int] | None, x: str, smooth: float, language: str | None = "en") -> tuple:
        if not ids:
            # Opening the tab fires a change with the empty list (its choices arrive first) and then one with the
            # chosen runs, in either order: the empty one must not overwrite the table the other one drew.
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if len(ids) < 2:
            return say("cmp_pick_runs", language), "", {}, ""
        try:
            comparison = studio.compare_runs(list(ids), x or "step", float(smooth or 0))
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            return views.failure_text(e, language), "", {}, ""
        return ("", summary_html(comparison, language), charts_data(comparison, x or "step", language),
                diff_html(comparison, language))

    def open_tab(ids: list[int] | None) -> dict:
        listed = studio.list_runs()
        return gr.update(choices=run_choices(listed), value=list(ids or []) or newest(listed))

    def do_csv(ids: list[int] | None, language: str | None = "en") -> tuple:
        try:
            path = studio.export_comparison_csv(list(ids or []))
        except Exception as e:  # noqa: BLE001
            return gr.update(value=None, visible=False), views.failure_text(e, language)
        return (gr.update(value=[str(path)], visible=True),
                say("cmp_csv_done", language, name=path.name))

    def do_png(ids: list[int] | None, x: str, smooth: float, language: str | None = "en") -> tuple:
        try:
            paths = studio.export_comparison_charts(list(ids or []), x or "step", float(smooth or 0))
        except Exception as e:  # noqa: BLE001
            return gr.update(value=None, visible=False), views.failure_text(e, language)
        return (gr.update(value=[str(p) for p in paths], visible=True),
                say("cmp_png_done", language, count=len(paths)))

    def read_locale(triggers: list) -> Any:
        return gr.on(triggers, None, None, locale, js=PAGE_LOCALE_JS, api_visibility="private",
                     show_progress="hidden")

    read_locale([runs.change, x_axis.change, smoothing.release]).then(
        show, [runs, x_axis, smoothing, locale], [notice, summary, drawn, diff], api_name="compare")
    gr.on([refresh.click, opener], open_tab, runs, runs, api_visibility="private").then(
        None, None, locale, js=PAGE_LOCALE_JS, api_visibility="private", show_progress="hidden").then(
        show, [runs, x_axis, smoothing, locale], [notice, summary, drawn, diff], api_visibility="private")
    read_locale([export_csv.click]).then(do_csv, [runs, locale], [downloads, export_notice], api_name="compare_csv")
    read_locale([export_png.click]).then(do_png, [runs, x_axis, smoothing, locale], [downloads, export_notice],
                                         api_name="compare_png")
    if switch is not None:  # its value is the language chosen, so it stands in for the page's locale
        switch.change(show, [runs, x_axis, smoothing, switch], [notice, summary, drawn, diff],
                      api_visibility="private", show_progress="hidden")
