"""Checkpoint manifests: every file's size and SHA-256, written at save time and checked before a resume."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from core.runs.files import complete_checkpoints
from core.runs.folders import COMPLETE_MARK

MANIFEST_FILE = "MANIFEST.json"
TRAINER_STATE = "trainer_state.json"
# What a checkpoint from before manifests must hold to be tried at all.
LEGACY_REQUIRED = ("trainer_state.json", "training_state.pt", "model")


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(folder: Path) -> Path:
    """Record the size and SHA-256 of every file under ``folder`` (call it last, before publication)."""
    folder = Path(folder)
    entries = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name not in (MANIFEST_FILE, COMPLETE_MARK):
            entries[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": _digest(path)}
    target = folder / MANIFEST_FILE
    target.write_text(json.dumps({"version": 1, "files": entries}, indent=1) + "\n", encoding="utf-8")
    return target


def checkpoint_problem(folder: Path) -> str | None:
    """Why a checkpoint cannot be trusted (a file missing, cut short or changed since it was saved), or None."""
    folder = Path(folder)
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        missing = [name for name in LEGACY_REQUIRED if not (folder / name).exists()]
        return f"{missing[0]} is missing" if missing else None  # saved before manifests: the load will tell
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        if not isinstance(entries, dict) or not entries:
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"its {MANIFEST_FILE} is damaged"
    for name, expected in entries.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected.get("size"):
            return f"{name} is {size:,} bytes, {expected.get('size'):,} when it was saved"
        if _digest(path) != expected.get("sha256"):
            return f"{name} changed since it was saved (its checksum differs)"
    return None


def checkpoint_step(folder: Path) -> int:
    """The step a checkpoint was taken at (its summary, else its folder name)."""
    try:
        return int(json.loads((Path(folder) / TRAINER_STATE).read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(Path(folder).name.split("-")[1])


@dataclass
class ResumePoint:
    """The checkpoint a resume continues from, and the newer ones it passed over with the reason."""

    folder: Path
    step: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (folder name, why)
    waiting: str = ""  # why the resume waits in the job queue; "" when it started at once

    @property
    def name(self) -> str:
        return self.folder.name


def skipped_text(skipped: list[tuple[str, str]]) -> str:
    return "; ".join(f"{name}: {why}" for name, why in skipped)


def choose_checkpoint(run_dir: Path) -> tuple[ResumePoint | None, list[tuple[str, str]]]:
    """The newest complete checkpoint whose files match its manifest, and the newer ones skipped with why."""
    skipped: list[tuple[str, str]] = []
    for folder in reversed(complete_checkpoints(run_dir)):
        problem = checkpoint_problem(folder)
        if problem is None:
            return ResumePoint(folder, checkpoint_step(folder), list(skipped)), skipped
        skipped.append((folder.name, problem))
    return None, skipped
