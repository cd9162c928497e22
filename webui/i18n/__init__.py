"""The interface's languages through Gradio's own i18n: one catalogue per language, looked up by key in the browser.

Adding a string: put ``"key": "English text"`` in en.json (or a tab's own <tab>.en.json) and its translation in the
matching zh-CN catalogue, then use ``t("key")`` as a component's label/info/value, or ``text("key")`` inside a
Markdown string. ``t`` refuses a key the English catalogues lack, a key in two catalogues of one language is refused
at import, and tests/test_i18n.py fails while a key is missing from either language.

The browser replaces only the first marker of a string. A message made of several translated parts is resolved on
the server instead: the event reads the page's language with ``WITH_LOCALE_JS`` (from ``locale_probe``) and the
callback passes it to ``resolve``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import gradio as gr

from core.evals.config import EvalConfig
from core.train_config import TrainConfig

CATALOGUE_DIR = Path(__file__).parent


def read_catalogue(locale: str) -> dict[str, str]:
    """One language's strings, key to text: webui/i18n/<locale>.json and each tab's own <tab>.<locale>.json."""
    found: dict[str, str] = {}
    for path in [CATALOGUE_DIR / f"{locale}.json", *sorted(CATALOGUE_DIR.glob(f"*.{locale}.json"))]:
        strings = json.loads(path.read_text(encoding="utf-8"))
        twice = sorted(set(strings) & set(found))
        if twice:
            raise ValueError(f"{path.name}: keys already in another {locale} catalogue: {', '.join(twice)}")
        found.update(strings)
    return found


EN_STRINGS = read_catalogue("en")
ZH_STRINGS = read_catalogue("zh-CN")

# Gradio's own locale names: the browser's language (or Settings > Language) picks one of them.
LOCALES = ("en", "zh-CN")
# Config fields are translated by name: field_<name> (label) and field_<name>_info (help); core stays English.
FIELD_PREFIXES = {"train": ("field_", TrainConfig), "eval": ("evfield_", EvalConfig)}


def field_strings() -> dict[str, str]:
    """The English labels and help of every config field, from core's metadata."""
    found = {}
    for prefix, config_cls in FIELD_PREFIXES.values():
        for f in config_cls.fields():
            found[f"{prefix}{f.name}"] = f.metadata["label"]
            if f.metadata["help"]:
                found[f"{prefix}{f.name}_info"] = f.metadata["help"]
    return found


@cache
def catalogues() -> dict[str, dict[str, str]]:
    return {"en": {**EN_STRINGS, **field_strings()}, "zh-CN": dict(ZH_STRINGS)}


@cache
def i18n() -> gr.I18n:
    return gr.I18n(**catalogues())


def t(key: str) -> gr.i18n.I18nData:
    """A string the browser shows in its language; a key missing from the English catalogue is a bug."""
    if key not in catalogues()["en"]:
        raise KeyError(f"no string {key!r} in webui/i18n/en.json")
    return i18n()(key)


def text(key: str) -> str:
    """``t`` as text to put inside a longer string (Markdown): the browser replaces the marker."""
    return str(t(key))


def field_label(form: str, name: str) -> gr.i18n.I18nData:
    return t(f"{FIELD_PREFIXES[form][0]}{name}")


def field_info(form: str, name: str) -> gr.i18n.I18nData:
    return t(f"{FIELD_PREFIXES[form][0]}{name}_info")


# Check's fixed message templates (core/config_fields.py, core/train_config.py, core/runs/launcher.py): the parts
# between the values are translated, the values stay as they are. Anything else core says stays English.
TEMPLATES = [
    (re.compile(r"must be at least (.+); got (.+)"), ("msg_at_least", 0, "; ", "msg_got", 1)),
    (re.compile(r"must be at most (.+); got (.+)"), ("msg_at_most", 0, "; ", "msg_got", 1)),
    (re.compile(r"must be one of (.+); got (.+)"), ("msg_one_of", 0, "; ", "msg_got", 1)),
    (re.compile(r"expected a whole number; the field is empty or holds something that is not a number"),
     ("msg_whole_empty",)),
    (re.compile(r"expected a number; the field is empty or holds something that is not a number"),
     ("msg_number_empty",)),
    (re.compile(r"expected a whole number, got (.+)"), ("msg_whole", " ", "msg_got", 0)),
    (re.compile(r"expected a number, got (.+)"), ("msg_number", " ", "msg_got", 0)),
    (re.compile(r"choose a dataset"), ("msg_choose_dataset",)),
    (re.compile(r"give the run a name"), ("msg_name_run",)),
    (re.compile(r"set max steps or a number of epochs above 0"), ("msg_steps_or_epochs",)),
    (re.compile(r"keep the name under 120 characters"), ("msg_name_length",)),
    (re.compile(r"choose a model: a hub id, a local folder or (.+)"), ("msg_choose_model", " ", 0)),
    (re.compile(r"list at least one module name, e\.g\. q_proj,v_proj"), ("msg_module_names",)),
    (re.compile(r"no CUDA GPU is visible on this machine; choose auto or cpu"), ("msg_no_cuda",)),
    (re.compile(r"fp16 mixed precision needs a CUDA GPU \(CPU kernels and loss scaling are GPU-only here\); "
                r"choose fp32, bf16 or pure_bf16 on CPU"), ("msg_fp16_needs_cuda",)),
    (re.compile(r"this GPU has no bfloat16 support \(it needs an Ampere or newer card\); choose fp16 mixed "
                r"precision or fp32"), ("msg_no_bf16",)),
    (re.compile(r"this GPU has no bfloat16 support; choose fp16 as the 4-bit compute dtype"), ("msg_no_bf16_4bit",)),
    (re.compile(r"this dataset has no eval split, so the run reports training loss only \(no eval loss, no "
                r"best result\); register it with an eval share or file to see how it generalises"),
     ("msg_no_eval_split",)),
    (re.compile(r"early stopping needs an eval split; register the dataset with an eval share or file, or "
                r"set the patience to 0"), ("msg_early_stopping_split",)),
]


def problem_text(message: str, escape: callable = str) -> str:
    """A problem's message with its fixed parts translated; values (and unknown messages) escaped as they are."""
    for pattern, parts in TEMPLATES:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        out = []
        for part in parts:
            if isinstance(part, int):
                out.append(escape(match.group(part + 1)))
            elif part.startswith("msg_"):
                out.append(text(part) + (" " if part in ("msg_at_least", "msg_at_most", "msg_got",
                                                          "msg_one_of") else ""))
            else:
                out.append(part)
        return "".join(out)
    return escape(message)


MARKER = re.compile(r'__i18n__(\{"__type__": "translation_metadata", "key": "([^"]+)"\})')


def resolve(shown: str, locale: str | None = "en") -> str:
    """A string with markers as a browser in ``locale`` shows it (server-side messages, API clients, tests)."""
    strings = catalogues().get(locale or "en", catalogues()["en"])
    return MARKER.sub(lambda m: strings.get(m.group(2), catalogues()["en"][m.group(2)]), shown)


def say(key: str, locale: str | None = "en", **values: object) -> str:
    """A catalogue template in ``locale`` with the values put in: a message the server builds whole."""
    strings = catalogues().get(locale or "en", catalogues()["en"])
    return strings.get(key, catalogues()["en"][key]).format(**values)


def status_word(status: str, locale: str | None = "en") -> str:
    """A job's status (core's word: queued, running, ...) in ``locale``; one the catalogue lacks stays as it is."""
    return catalogues().get(locale or "en", catalogues()["en"]).get(f"status_{status}", status)


def term_label(label: str, locale: str | None = "en") -> str:
    """A memory estimate term's label (core's English) in ``locale``; a term the catalogue lacks stays English."""
    key = "memterm_" + re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return catalogues().get(locale or "en", {}).get(key, label)


LOCALE_ID = "studio-locale"
# Before the callback runs, the event's last input becomes the page's language, as the probe shows it translated.
WITH_LOCALE_JS = (f"(...args) => {{ const el = document.querySelector('#{LOCALE_ID}');"
                  " args[args.length - 1] = el ? el.textContent.trim() : 'en'; return args; }")


def locale_probe() -> tuple[gr.Markdown, gr.Textbox]:
    """A hidden element showing the page's locale code in its language, and the input the events fill from it."""
    probe = gr.Markdown(t("locale_code"), elem_id=LOCALE_ID, visible="hidden")
    return probe, gr.Textbox("en", visible=False)


# Gradio picks the language from navigator.language when the page loads. Its Settings panel can switch it, but
# forgets the choice on reload and leaves the tabs' labels in the old language. The studio's switch calls the same
# changeLocale (from the Gradio module the page already loaded), remembers the choice in this browser, and has the
# server send every tab's label again, which makes the browser translate them anew.
STORAGE_KEY = "studio-locale"
CORE_MODULE_JS = ("performance.getEntriesByType('resource').map(e => e.name)"
                  ".find(n => /\\/assets\\/core-[^/]+\\.js$/.test(n))")
CHANGE_LOCALE_JS = (f"async (chosen) => {{ const core = {CORE_MODULE_JS};"
                    " if (core) { const m = await import(core); if (m.changeLocale) m.changeLocale(chosen); }"
                    " return chosen; }")
SWITCH_JS = (f"async (chosen) => {{ window.localStorage.setItem('{STORAGE_KEY}', chosen);"
             f" return await ({CHANGE_LOCALE_JS})(chosen); }}")
LOAD_JS = (f"async () => {{ const chosen = window.localStorage.getItem('{STORAGE_KEY}');"
           f" if (chosen) return await ({CHANGE_LOCALE_JS})(chosen);"
           f" const el = document.querySelector('#{LOCALE_ID}'); return el ? el.textContent.trim() : 'en'; }}")
LANGUAGES = [("English", "en"), ("简体中文", "zh-CN")]


def language_switch(app: gr.Blocks) -> gr.Radio:
    """English / 简体中文 at the top of the page, remembered in this browser; call ``relabel_tabs`` after the build."""
    return gr.Radio(LANGUAGES, value="en", label=t("app_language"), show_label=False, container=False,
                    elem_id="studio-language")


def relabel_tabs(app: gr.Blocks, switch: gr.Radio) -> None:
    """After a switch (or a page load with a remembered choice) every tab's label is sent again, marked so it differs
    from the last one sent (an invisible character per language): the browser translates only what changed."""
    tabs = [b for b in app.blocks.values() if isinstance(b, gr.Tab) and isinstance(b.label, gr.i18n.I18nData)]

    def labels(chosen: str | None) -> tuple:
        mark = "\u200b" if chosen == "en" else "\u200c"
        return (chosen if chosen in dict((v, k) for k, v in LANGUAGES) else "en",
                *(gr.update(label=text(tab.label.key) + mark) for tab in tabs))

    switch.input(labels, switch, [switch, *tabs], js=SWITCH_JS, api_visibility="private", show_progress="hidden")
    app.load(labels, switch, [switch, *tabs], js=LOAD_JS, api_visibility="private", show_progress="hidden")
