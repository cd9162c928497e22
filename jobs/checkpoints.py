"""Checkpoints published atomically: written to a temporary folder, flushed, renamed, marked complete last."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.runs.files import CHECKPOINTS_DIR, METRICS_FILE, complete_checkpoints, incomplete_checkpoints
from core.runs.folders import COMPLETE_MARK, publish
from core.runs.manifest import write_manifest

SET_ASIDE_DIR = ".incomplete"


TRAINING_STATE = "training_state.pt"
TRAINER_STATE = "trainer_state.json"


def save_checkpoint(run_dir: Path, step: int, save_model: Callable[[Path], None], training: dict[str, Any],
                    info: dict[str, Any], keep: int) -> Path:
    """Publish a checkpoint: the method's artefact under model/, everything needed to resume, and a JSON summary.

    ``training`` holds what resuming needs (trained tensors, optimizer, scheduler, method state); the torch RNG
    state is added here.
    """
    def write(folder: Path) -> None:
        save_model(folder / "model")
        torch.save({**training, "torch_rng": torch.get_rng_state()}, folder / TRAINING_STATE)
        (folder / TRAINER_STATE).write_text(json.dumps({"step": step, **info}, indent=2))
        write_manifest(folder)  # sizes and checksums, checked before a resume trusts the folder

    path = publish(Path(run_dir) / CHECKPOINTS_DIR / f"step-{step:08d}", write)
    rotate(run_dir, keep)
    return path


def load_checkpoint(folder: Path) -> tuple[int, dict[str, Any]]:
    """The step a checkpoint was taken at and what ``save_checkpoint`` stored for resuming."""
    info = json.loads((Path(folder) / TRAINER_STATE).read_text())
    training = torch.load(Path(folder) / TRAINING_STATE, map_location="cpu", weights_only=False)
    torch.set_rng_state(training.pop("torch_rng"))
    return int(info["step"]), training


def set_aside(folder: Path, why: str = "") -> Path:
    """Move a checkpoint folder out of the way, unmarked (kept for inspection until a resume succeeds)."""
    aside = Path(folder).parent / SET_ASIDE_DIR
    aside.mkdir(parents=True, exist_ok=True)
    (Path(folder) / COMPLETE_MARK).unlink(missing_ok=True)
    target = aside / f"{Path(folder).name}{'-' + why if why else ''}-{int(time.time() * 1000)}"
    Path(folder).rename(target)
    return target


def set_aside_incomplete(run_dir: Path) -> list[Path]:
    """Move checkpoint folders without their completion mark out of the way (kept for inspection, never used)."""
    return [set_aside(folder) for folder in incomplete_checkpoints(run_dir)]


def clean_set_aside(run_dir: Path) -> int:
    """Delete the folders set aside earlier; called once a resume has loaded its checkpoint. Returns how many."""
    aside = Path(run_dir) / CHECKPOINTS_DIR / SET_ASIDE_DIR
    if not aside.is_dir():
        return 0
    count = sum(1 for _ in aside.iterdir())
    shutil.rmtree(aside, ignore_errors=True)
    return count


def truncate_metrics(run_dir: Path, last_step: int) -> int:
    """Drop metrics lines past ``last_step`` (steps a resumed run will redo); returns how many lines remain."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return 0
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # a line cut off by the kill
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError):
            continue
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)
    return len(kept)


def rotate(run_dir: Path, keep: int) -> None:
    """Delete the oldest complete checkpoints beyond ``keep``; the newest complete one always stays."""
    complete = complete_checkpoints(run_dir)
    for old in complete[: max(0, len(complete) - max(1, keep))]:
        # The mark goes first, and for good: a kill during the deletion leaves an unmarked folder (set aside at
        # the next resume), never a marked one with files missing.
        (old / COMPLETE_MARK).unlink(missing_ok=True)
        _fsync_dir(old)
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
