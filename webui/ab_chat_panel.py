"""The Compare tab's A/B chat: the chosen runs' checkpoints (and the base) answer the same questions, turn after
turn, each in its own conversation, shown in its own column."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import gradio as gr

from core.studio import Studio
from webui import chat_views as views
from webui.chat_tab import keep_image, tolerant_image
from webui.i18n import WITH_LOCALE_JS, t, text

MAX_AB = 4


def new_talk(choices: list[str] | None = None) -> dict[str, Any]:
    """A conversation with no turns yet: the models it is with, its turns and the last image given."""
    return {"choices": list(choices or []), "turns": [], "last_image": None}


def column(turns: list[dict], i: int, question: str | None = None, answer: str = "") -> list[dict]:
    """Model ``i``'s column as chat messages: each turn's question and that model's answer (or what went wrong),
    then the question being answered now."""
    shown = []
    for turn in turns:
        reply = turn["answers"][i]
        shown += [{"role": "user", "content": turn["question"]},
                  {"role": "assistant", "content": reply if reply is not None else f"⚠️ {turn['errors'][i]}"}]
    if question is not None:
        shown += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return shown


def build(studio: Studio, runs: gr.Dropdown, locale: gr.Textbox) -> None:
    """The A/B chat's components; ``runs`` is the tab's run list, whose results (and base) it offers; ``locale`` the
    input its events fill with the page's language (WITH_LOCALE_JS)."""
    gr.Markdown(text("cmp_ab_heading"))
    with gr.Row():
        models = gr.Dropdown(label=t("cmp_ab_models"), multiselect=True, max_choices=MAX_AB, choices=[], scale=3,
                             elem_id="compare-ab-models")
        image = tolerant_image(label=t("cmp_image"), type="filepath", sources=["upload", "clipboard"], height=160,
                               elem_id="compare-ab-image")
    with gr.Row():
        question = gr.Textbox(label=t("cmp_question"), placeholder=t("cmp_placeholder"), scale=3,
                              elem_id="compare-ab-question")
        tokens = gr.Slider(8, 256, value=48, step=8, label=t("cmp_max_tokens"), scale=1, elem_id="compare-ab-tokens")
        with gr.Column(scale=1, min_width=160):
            ask = gr.Button(t("cmp_ask"), variant="primary")
            restart = gr.Button(t("cmp_ab_new"), size="sm")
    plan = gr.Markdown(elem_id="compare-ab-plan")
    talk = gr.State(new_talk())
    with gr.Row():
        columns = [gr.Chatbot(label=f"{text('cmp_answer')} {i + 1}", height=340, visible=i < 2,
                              buttons=["copy", "copy_all"], elem_id=f"compare-ab-answer-{i}") for i in range(MAX_AB)]
    uploads = studio.paths.uploads_dir / "chat"

    def chat_models(ids: list[int] | None) -> dict:
        found = studio.ab_chat_choices(list(ids or []))
        return gr.update(choices=found, value=[value for _, value in found][:3])

    def labels_of(ids: list[int] | None) -> dict[str, str]:
        return {value: label for label, value in studio.ab_chat_choices(list(ids or []))}

    def do_ask(choices: list[str] | None, picture: str | None, asked: str, max_tokens: float, ids: list[int] | None,
               st: dict, language: str | None = "en") -> Iterator[tuple]:
        choices = list(choices or [])
        if st["choices"] != choices:  # other models: the conversation starts anew
            st = new_talk(choices)
        labels = labels_of(ids)
        asked = (asked or "").strip()
        hidden = [gr.update(value=[], visible=False)] * (MAX_AB - min(len(choices), MAX_AB))

        def shown(answers: list[str] | None = None) -> list[dict]:
            now = None if answers is None else asked
            return [gr.update(label=labels.get(c, c), visible=True,
                              value=column(st["turns"], i, now, answers[i] if answers else ""))
                    for i, c in enumerate(choices[:MAX_AB])]

        kept = keep_image(uploads, picture) if picture and picture != st["last_image"] else None
        earlier = [{"question": turn["question"], "image": turn["image"], "answers": turn["answers"]}
                   for turn in st["turns"]]
        update = None
        try:
            for update in studio.ab_chat_stream(choices, asked, kept, max_new_tokens=int(max_tokens),
                                                earlier=earlier):
                status = "" if update.done else views.progress_text(update.status, language)
                answers = [f"⚠️ {update.errors[i]}" if update.errors[i] else update.answers[i]
                           for i in range(len(update.answers))]
                yield (views.plan_text(update.plan, language) + status, st, gr.update(), *shown(answers), *hidden)
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            if kept is not None:
                shutil.rmtree(kept.parent, ignore_errors=True)  # the conversation does not keep this image
            yield (views.failure_text(e, language), st, gr.update(), *shown(), *hidden)
            return
        turn = {"question": asked, "image": str(kept) if kept else None,
                "answers": [None if err else answer for answer, err in zip(update.answers, update.errors, strict=True)],
                "errors": list(update.errors)}
        st = {**st, "turns": [*st["turns"], turn], "last_image": picture or st["last_image"]}
        yield (views.plan_text(update.plan, language), st, "", *shown(), *hidden)

    def restart_talk(choices: list[str] | None) -> tuple:
        count = min(len(choices or []), MAX_AB)
        return ("", new_talk(choices), *[gr.update(value=[]) for _ in range(count)],
                *[gr.update(value=[], visible=False)] * (MAX_AB - count))

    runs.change(chat_models, runs, models, api_name="ab_chat_models", api_visibility="private")
    asking = [models, image, question, tokens, runs, talk, locale]  # the locale last, for WITH_LOCALE_JS
    ask.click(do_ask, asking, [plan, talk, question, *columns], api_name="ab_chat", js=WITH_LOCALE_JS)
    question.submit(do_ask, asking, [plan, talk, question, *columns], api_visibility="private", js=WITH_LOCALE_JS)
    # A column's own clear (its bin icon) clears them all: the columns are one conversation.
    gr.on([restart.click, models.change, *(c.clear for c in columns)], restart_talk, models, [plan, talk, *columns],
          api_visibility="private")
