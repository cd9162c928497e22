"""Export a finished run: its result as one zip file, or a LoRA/QLoRA adapter merged into a standalone model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from core.chat import BEST_SUFFIX, CHAT_STATUSES, RUN_PREFIX, result_dir, run_choices
from core.methods import get_method
from core.models.loading import load_model, load_processor, resolve_model
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.files import BEST_DIR, COMPLETE_MARK, CONFIG_FILE, DATASET_FILE, LOG_FILE, METRICS_FILE
from core.runs.folders import publish
from core.store.registry import Registry, RunRecord

EXPORTS_DIR = "exports"
MERGE_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MERGEABLE = ("lora", "qlora")
# Why the other methods' results are not merged into the base.
NOT_MERGEABLE = {
    "full": "a full fine-tuning result already is a complete model folder; download it as it is",
    "freeze": "a freeze-tuning result already is a complete model folder; download it as it is",
    "lisa": "a LISA result already is a complete model folder; download it as it is",
    "adapter": "bottleneck adapters have a nonlinearity between their two layers, so they cannot be folded into "
               "the base's weights; download the adapter files and load them on the base",
    "prompt": "prompt tuning adds virtual tokens in front of the input, not changes to the weights, so there is "
              "nothing to fold into the base; download the adapter instead",
    "prefix": "prefix tuning adds virtual key/value tokens to every layer, not changes to the weights, so there is "
              "nothing to fold into the base; download the adapter instead",
    "ptuning": "P-tuning adds virtual tokens made by a small encoder, not changes to the weights, so there is "
               "nothing to fold into the base; download the adapter instead",
}
# Weights hardly compress; storing them keeps a multi-gigabyte zip quick to write.
STORED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
ZIP_MAX_AGE_SECONDS = 3600
MERGE_INFO = "studio_merge.json"  # in a merged model's folder: which run, result and dtype it was made from
RUN_FILES = (CONFIG_FILE, METRICS_FILE, LOG_FILE, DATASET_FILE)  # in every export zip, beside the weights


@dataclass(frozen=True)
class ZipExport:
    path: Path
    size: int
    files: list[str]


@dataclass(frozen=True)
class MergeExport:
    folder: Path
    size: int
    dtype: str


def merge_refusal(method: str) -> str | None:
    """Why a method's result cannot be merged into its base; None for LoRA and QLoRA."""
    if method in MERGEABLE:
        return None
    return NOT_MERGEABLE.get(method, f"only LoRA and QLoRA results can be merged into the base, not {method}")


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def default_zip_dir() -> Path:
    """Under the system temporary folder: outside the data directory, where the web app may serve files from."""
    return Path(tempfile.gettempdir()) / "finetune-studio-exports"


class ExportService:
    """Zips a finished run's result, or merges a LoRA/QLoRA adapter into its base (one merge at a time)."""

    def __init__(self, paths: StudioPaths, registry: Registry):
        self.paths = paths
        self.registry = registry
        self._merging = threading.Lock()

    @property
    def exports_dir(self) -> Path:
        return self.paths.root / EXPORTS_DIR

    def choices(self) -> list[tuple[str, str]]:
        """(label, value) for every finished run's results published whole: "N" is its last result, "N:best"
        the one at its lowest eval loss."""
        return [(label, value[len(RUN_PREFIX):]) for label, value in run_choices(self.registry)]

    def finished_run(self, run_id: int | str | None) -> RunRecord:
        """The run ("N", or "N:best" for its best result), if it finished with that result complete; a
        ProblemsError saying why not otherwise. The record's ``artefact_dir`` is the chosen result."""
        if run_id in (None, ""):
            raise ProblemsError([Problem("choose a finished run first", field="run")])
        text = str(run_id)
        which = "best" if text.endswith(BEST_SUFFIX) else "last"
        try:
            run = self.registry.get_run(int(text.removesuffix(BEST_SUFFIX)))
        except (KeyError, ValueError):
            raise ProblemsError([Problem(f"there is no run {run_id}", field="run")]) from None
        if run.status not in CHAT_STATUSES:
            raise ProblemsError([Problem(
                f"run {run.id} is {run.status}; only a completed or stopped run can be exported", field="run")])
        chosen = result_dir(run, which)
        if chosen is None:
            raise ProblemsError([Problem(f"run {run.id} has no complete saved {which} result to export",
                                         field="run")])
        return replace(run, artefact_dir=str(chosen))

    def zip_result(self, run_id: int | str | None, dest_dir: Path | None = None) -> ZipExport:
        """One zip of the run's result folder and its run files (config.json, metrics.jsonl, the log, what it
        trained on), written in ``dest_dir``."""
        run = self.finished_run(run_id)
        artefact = Path(run.artefact_dir)
        return write_zip(f"run-{run.id:05d}-{run.method}{_best_tag(run)}", artefact, artefact.name, run, dest_dir)

    def zip_merged(self, run_id: int | str | None, dest_dir: Path | None = None) -> ZipExport:
        """One zip of the run's merged model (merge it first) and its run files."""
        run = self.finished_run(run_id)
        folder = self.merged_folder(run)
        if not (folder / COMPLETE_MARK).is_file():
            raise ProblemsError([Problem(f"run {run.id}'s result has not been merged yet; press Merge first",
                                         field="run")])
        return write_zip(folder.name, folder, "merged", run, dest_dir)

    def merged_folder(self, run: RunRecord) -> Path:
        """Where a run's (last or best) result is saved once merged into its base."""
        return self.exports_dir / f"run-{run.id:05d}-merged{_best_tag(run)}"

    def merged_models(self) -> list[tuple[str, str]]:
        """(label, folder) for every merged model published whole, newest first: each loads as a base model."""
        if not self.exports_dir.is_dir():
            return []
        found = []
        for folder in sorted(self.exports_dir.glob("run-*-merged*"), reverse=True):
            info_file = folder / MERGE_INFO
            if not (folder / COMPLETE_MARK).is_file() or not info_file.is_file():
                continue
            info = json.loads(info_file.read_text(encoding="utf-8"))
            found.append((f"merged: run {info['run_id']} {info['run_name']} ({info['method']}, {info['result']}, "
                          f"{info['dtype']})", str(folder)))
        return found

    def merge(self, run_id: int | str | None, dtype: str = "fp32") -> MergeExport:
        """Fold a LoRA/QLoRA adapter into its base loaded in fp32 and save a standalone model folder.

        The folder (weights in ``dtype``, processor included) appears whole under ``<data dir>/exports/`` as
        ``run-NNNNN-merged``: it is written beside it under a temporary name and renamed into place.
        """
        run = self.finished_run(run_id)
        why = merge_refusal(run.method)
        if why:
            raise ProblemsError([Problem(f"run {run.id} ({run.method}) cannot be merged: {why}", field="run")])
        if dtype not in MERGE_DTYPES:
            raise ProblemsError([Problem(f"choose one of {', '.join(MERGE_DTYPES)}", field="dtype")])
        if not self._merging.acquire(blocking=False):
            raise ProblemsError([Problem("another merge is running; try again when it has finished")])
        try:
            return self._merge(run, dtype)
        finally:
            self._merging.release()

    def _merge(self, run: RunRecord, dtype: str) -> MergeExport:
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        write = merged_writer(resolve_model(run.model, self.paths), run.method, Path(run.artefact_dir), dtype)
        info = {"run_id": run.id, "run_name": run.name, "method": run.method, "model": run.model, "dtype": dtype,
                "result": "best" if _best_tag(run) else "last"}

        def write_with_info(folder: Path) -> None:
            write(folder)
            (folder / MERGE_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")

        target = publish(self.merged_folder(run), write_with_info)
        return MergeExport(target, folder_size(target), dtype)


def merged_writer(base_path: str, method: str, artefact_dir: Path, dtype: str) -> Callable[[Path], None]:
    """The adapter folded into its base, loaded in fp32 (never the 4-bit/8-bit base a QLoRA run trained on:
    merging into it would round the result); returns what writes the standalone model and its processor."""
    import torch

    base = load_model(base_path, device="cpu", dtype=torch.float32)
    merged = get_method(method).load_for_inference(base, artefact_dir).merge_and_unload()
    merged.to(getattr(torch, MERGE_DTYPES[dtype]))
    merged.eval()
    processor = load_processor(base_path)

    def write(folder: Path) -> None:
        merged.save_pretrained(folder)
        processor.save_pretrained(folder)

    return write


def write_zip(top: str, result: Path, result_name: str, run: RunRecord, dest_dir: Path | None) -> ZipExport:
    """A zip named ``top`` holding the run's files and ``result`` under ``result_name/``, in a fresh folder under
    ``dest_dir``; written aside and renamed, so a half-written zip is never offered."""
    dest_root = Path(dest_dir) if dest_dir else default_zip_dir()
    _remove_old(dest_root)
    folder = dest_root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    target = folder / f"{top}.zip"
    partial = folder / f".{top}.zip.partial"
    names = []
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for name in RUN_FILES:
            path = Path(run.run_dir) / name
            if path.is_file() and not path.is_symlink():
                zf.write(path, f"{top}/{name}")
                names.append(name)
        for path in sorted(result.rglob("*")):
            if not path.is_file() or path.is_symlink() or path.name == COMPLETE_MARK:
                continue
            name = f"{result_name}/{path.relative_to(result).as_posix()}"
            stored = path.suffix.lower() in STORED_SUFFIXES
            zf.write(path, f"{top}/{name}", compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
            names.append(name)
    os.replace(partial, target)
    return ZipExport(target, target.stat().st_size, names)


def _best_tag(run: RunRecord) -> str:
    """"-best" in the names of what is made from a run's best result, so it is never taken for the last."""
    return "-best" if Path(run.artefact_dir).name == BEST_DIR else ""


def _remove_old(root: Path) -> None:
    """Zips offered earlier are removed after an hour, so the temporary folder does not fill up."""
    if not root.is_dir():
        return
    cutoff = time.time() - ZIP_MAX_AGE_SECONDS
    for folder in root.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue
