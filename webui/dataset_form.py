"""The Datasets tab's source inputs (upload, server path, Hugging Face Hub) and the import request they make."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.datasets.catalog import ImportRequest
from core.datasets.detect import format_choices
from webui.i18n import t

FORMATS = format_choices()
SLOTS = [s for s in dict.fromkeys(slot for f in FORMATS for slot in f["slots"]) if s != "id"] + ["id"]  # each once
SLOTS_OF = {f["name"]: f["slots"] for f in FORMATS}
AUTO = ""  # the format dropdown's "detect" choice and a slot dropdown's "no column"
UPLOAD, SERVER, HUB = "upload", "server", "hub"  # which source tab is open
ENCODINGS = [("UTF-8", "utf-8"), ("Western European (cp1252)", "cp1252"), ("Latin-1 (ISO-8859-1)", "latin-1"),
             ("Chinese (GB18030, covers GBK)", "gb18030"), ("Traditional Chinese (Big5)", "big5"),
             ("Japanese (Shift JIS)", "shift_jis"), ("Korean (EUC-KR)", "euc-kr"), ("Cyrillic (cp1251)", "cp1251")]


@dataclass
class SourceInputs:
    """The components a request is made from, and the open source tab."""

    kind: Any
    files: Any
    server_path: Any
    hub_id: Any
    config: Any
    split: Any
    revision: Any
    row_limit: Any
    stream: Any

    def hub_inputs(self) -> list[Any]:
        return [self.hub_id, self.config, self.split, self.revision, self.row_limit, self.stream, self.kind]


def build_sources() -> SourceInputs:
    """Three tabs: upload, a path on the server, a Hub dataset. The open tab decides where the data comes from."""
    kind = gr.State("")
    with gr.Tab(t("src_upload")) as upload_tab:
        files = gr.File(label=t("src_files"), file_count="multiple", elem_id="dataset-files")
    with gr.Tab(t("src_server")) as server_tab:
        server_path = gr.Textbox("", label=t("src_server_path"), placeholder="/data/my-set.jsonl",
                                 info=t("src_server_path_info"))
    with gr.Tab(t("src_hub")) as hub_tab:
        gr.Markdown(t("src_hub_help"))
        hub_id = gr.Textbox("", label=t("src_hub_id"), placeholder="HuggingFaceM4/the_cauldron",
                            info=t("src_hub_id_info"))
        with gr.Row():
            config = gr.Textbox("", label=t("src_config"), placeholder="ai2d", info=t("src_config_info"))
            split = gr.Textbox("", label=t("src_split"), placeholder="train", info=t("src_split_info"))
            revision = gr.Textbox("", label=t("src_revision"), placeholder="main", info=t("src_revision_info"))
        with gr.Row():
            row_limit = gr.Number(0, label=t("src_row_limit"), precision=0,
                                  info=t("src_row_limit_info"))
            stream = gr.Checkbox(False, label=t("src_stream"),
                                 info=t("src_stream_info"))
    for tab, name in ((upload_tab, UPLOAD), (server_tab, SERVER), (hub_tab, HUB)):
        tab.select(lambda name=name: name, None, kind, api_visibility="private")
    return SourceInputs(kind, files, server_path, hub_id, config, split, revision, row_limit, stream)


def column_overrides(fmt: str, detected: dict | None, values: tuple) -> dict[str, str] | None:
    """The slots whose column the person changed from what Inspect found (all set ones when nothing was found)."""
    detected = detected or {}
    found = detected.get("columns") or {}
    relevant = SLOTS_OF.get(fmt or detected.get("format") or "", SLOTS)
    chosen = {slot: value or AUTO for slot, value in zip(SLOTS, values, strict=True) if slot in relevant}
    if detected:
        changed = {slot: v for slot, v in chosen.items() if v != found.get(slot, AUTO)}
    else:
        changed = {slot: v for slot, v in chosen.items() if v}
    return changed or None


def _limit(value: float | None) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError, OverflowError):
        return 0


def request_of(files: list[str] | None, server_path: str, data_file: str, fmt: str, image_root: str,
               eval_ratio: float = 0.0, eval_path: str = "", eval_file: str | None = None, detected: dict | None = None,
               slot_values: tuple = (), *, hub: tuple = (), encoding: str = "utf-8") -> ImportRequest:
    """The request for the open source tab: the other tabs' leftovers are ignored (all are used, files first, when
    no tab was chosen, as through the API). ``hub`` is (id, config, split, revision, row limit, stream, tab)."""
    hub_id, config, split, revision, row_limit, stream, kind = (tuple(hub) + ("",) * 7)[:7] if hub else ("",) * 7
    files = [Path(f) for f in files or []]
    if kind == HUB:
        files, server_path = [], ""
    elif kind in (UPLOAD, SERVER):
        hub_id = ""
        if kind == SERVER:
            files = []
        elif files:
            server_path = ""
    return ImportRequest(files=files, server_path=server_path or "", data_file=(data_file or "").strip() or None,
                         format=fmt or None, columns=column_overrides(fmt, detected, slot_values) if slot_values
                         else None, image_root=image_root or None, eval_ratio=float(eval_ratio or 0),
                         eval_source=eval_file or (eval_path or "").strip() or None, hub_id=(hub_id or "").strip(),
                         config=(config or "").strip() or None, split=(split or "").strip() or None,
                         revision=(revision or "").strip() or None, row_limit=_limit(row_limit), stream=bool(stream),
                         encoding=(encoding or "").strip() or "utf-8")


def with_slot_parameters(fn: Callable) -> Callable:
    """Give ``fn(..., progress, *slots, locale)`` a signature naming each slot (column_<slot>) and then ``locale``, so
    the API lists them by name; Gradio injects the progress tracker at its position, before the slot values, and
    passes the inputs in order, so the last one (the page's language, from WITH_LOCALE_JS) reaches ``locale``."""
    signature = inspect.signature(fn)
    params = [p for p in signature.parameters.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    params += [inspect.Parameter(f"column_{slot}", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=AUTO,
                                 annotation=str) for slot in SLOTS]
    params.append(inspect.Parameter("locale", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="en", annotation=str))

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        return fn(*args[:-1], locale=args[-1])

    call.__signature__ = inspect.Signature(params, return_annotation=signature.return_annotation)
    return call
