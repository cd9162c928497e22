"""The Chat tab: pick a base model or a run's result, give an image, and talk about it; answers stream in."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from core.chat import CHAT_LOADINGS
from core.datasets.records import IMAGE_PLACEHOLDER, Message
from core.studio import Studio
from core.train_config import TINY_MODEL
from webui import chat_views as views
from webui.builds import PROGRESS, build_now, pending_markdown
from webui.i18n import WITH_LOCALE_JS, say, t

VERDICT_ICONS = {"fits": "✅", "tight": "⚠️", "will not fit": "❌"}


def memory_markdown(result: dict[str, Any], locale: str | None = "en") -> str:
    """One line: what chat with this model needs, next to the runs training now, on the card in use (or 24 GB)."""
    return views.memory_text(result, locale, VERDICT_ICONS)


def tolerant_image(**kwargs: Any) -> gr.Image:
    """An image input that lets a file PIL cannot open through to the callback, where the engine says in words
    what it is (Gradio's own check would end the event with a bare "Error"). The instance's preprocess is
    wrapped; a subclass would make Gradio write a .pyi stub next to this module."""
    image = gr.Image(**kwargs)
    strict = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return strict(payload)
        except Exception:  # noqa: BLE001 - any file Gradio cannot decode goes on to the engine's check
            return str(payload.path) if payload is not None and payload.path else None

    image.preprocess = preprocess
    return image


BUILDING = "Building **{model}** first (once): see the progress bar."


def pending_text(studio: Studio, choice: str, locale: str | None = "en") -> str:
    """The note shown before a model that is built on first use is chosen to chat with (else empty)."""
    if views.is_english(locale):
        return pending_markdown(studio, choice, "chat")
    info = studio.pending_build(choice)
    return say("ct_pending", locale, model=info["model"], mb=info["download_mb"]) if info else ""


def keep_image(folder: Path, picture: str) -> Path:
    """A copy of an uploaded image in a fresh folder under ``folder``, with its name (the conversation refers to
    it); Gradio's upload cache may be cleaned while a conversation goes on."""
    kept = folder / uuid.uuid4().hex[:12] / (Path(picture).name or "image.png")
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(picture, kept)
    return kept


def new_state() -> dict[str, Any]:
    return {"messages": [], "images": [], "last_image": None}


def build(studio: Studio, locale: gr.Textbox | None = None, switch: gr.Radio | None = None) -> dict[str, Any]:
    """The Chat tab; ``locale`` is the app's input that events fill with the page's language (WITH_LOCALE_JS),
    ``switch`` the language switch, after which the memory line is drawn again in its language."""
    if locale is None:
        locale = gr.Textbox("en", visible=False)
    with gr.Row():
        model = gr.Dropdown(label=t("chat_model"), choices=studio.chat_choices(), value=TINY_MODEL, scale=3,
                            allow_custom_value=True)
        refresh = gr.Button(t("chat_refresh"), scale=1)
    with gr.Row():
        with gr.Column(scale=1):
            image = tolerant_image(label=t("chat_image"), type="filepath", sources=["upload", "clipboard"])
            max_tokens = gr.Slider(8, 1024, value=128, step=8, label=t("chat_max_tokens"))
            temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.1, label=t("chat_temperature"))
            loading = gr.Radio([(t(f"chat_load_{value}"), value) for value in CHAT_LOADINGS], value="auto",
                               label=t("chat_loading"), info=t("chat_loading_info"))
            memory = gr.Markdown()
        with gr.Column(scale=2):
            chatbot = gr.Chatbot(label=t("chat_conversation"), height=420)
            question = gr.Textbox(label=t("chat_message"), placeholder=t("chat_placeholder"))
            with gr.Row():
                send = gr.Button(t("chat_send"), variant="primary")
                clear = gr.Button(t("chat_new"))
            notice = gr.Markdown()
    state = gr.State(new_state())
    chat_images = studio.paths.uploads_dir / "chat"

    def respond(choice: str, picture: str | None, text: str, history: list | None, st: dict, tokens: float,
                temp: float, load_in: str = "auto", language: str | None = "en", progress: gr.Progress = PROGRESS
                ) -> Iterator[tuple]:
        history = list(history or [])
        text = (text or "").strip()
        if not text:
            yield history, st, "", say("ct_type_first", language)
            return
        if studio.pending_build(choice):
            yield history, st, text, say("ct_building", language, model=studio.base_of(choice))
            built = build_now(studio, choice, progress)
            if studio.pending_build(choice):  # the build failed: say why, keep the message
                yield history, st, text, built
                return
        content = text
        images = list(st["images"])
        kept = None
        if picture and picture != st["last_image"]:
            kept = keep_image(chat_images, picture)
            images.append(str(kept))
            content = f"{IMAGE_PLACEHOLDER}\n{text}"
        messages = [Message(m["role"], m["content"]) for m in st["messages"]] + [Message("user", content)]
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        reply = ""
        try:
            for reply in studio.chat_stream(choice, messages, [Path(p) for p in images], max_new_tokens=int(tokens),
                                            temperature=float(temp), loading=load_in or "auto"):
                history[-1] = {"role": "assistant", "content": reply}
                yield history, st, "", ""
        except Exception as e:  # noqa: BLE001 - shown to the person, not raised
            history.pop()
            if kept is not None:
                shutil.rmtree(kept.parent, ignore_errors=True)  # the conversation does not keep this image
            yield history, st, text, views.failure_text(e, language)
            return
        new = {"messages": [{"role": m.role, "content": m.content} for m in messages]
               + [{"role": "assistant", "content": reply}],
               "images": images, "last_image": picture or st["last_image"]}
        yield history, new, "", ""

    def reset() -> tuple:
        return [], new_state(), ""

    def other_model(choice: str, language: str | None = "en") -> tuple:
        return [], new_state(), pending_text(studio, choice, language)

    # Events that write a message end their inputs with the locale box, which WITH_LOCALE_JS fills with the page's
    # language; through the API it is an optional last parameter (English when left out).
    page = {"js": WITH_LOCALE_JS}
    inputs = [model, image, question, chatbot, state, max_tokens, temperature, loading, locale]
    outputs = [chatbot, state, question, notice]
    send.click(respond, inputs, outputs, api_name="chat", **page)
    question.submit(respond, inputs, outputs, api_visibility="private", **page)
    clear.click(reset, None, [chatbot, state, notice], api_name="new_conversation")
    model.change(other_model, [model, locale], [chatbot, state, notice], api_visibility="private", **page)
    loading.change(reset, None, [chatbot, state, notice], api_visibility="private")

    def show_memory(choice: str, load_in: str, language: str | None = "en") -> str:
        return memory_markdown(studio.chat_memory(choice or TINY_MODEL, load_in or "auto"), language)

    gr.on([model.change, loading.change], show_memory, [model, loading, locale], memory, show_progress="hidden",
          api_name="chat_memory", **page)
    if switch is not None:  # its value is the language chosen, so it stands in for the page's locale
        switch.change(show_memory, [model, loading, switch], memory, api_visibility="private", show_progress="hidden")
    refresh.click(lambda: gr.update(choices=studio.chat_choices()), None, model, api_name="chat_models")
    return {"model": model}
