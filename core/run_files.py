"""The files of a run folder, and how to read them while the job is still writing."""

from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
FINAL_DIR = "final"
CHECKPOINTS_DIR = "checkpoints"
COMPLETE_MARK = "COMPLETE"


def read_metrics(run_dir: Path) -> list[dict]:
    """Every complete metrics line; a line still being written (no newline yet) is left for the next read."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def log_tail(run_dir: Path, max_bytes: int = 8000) -> str:
    path = Path(run_dir) / LOG_FILE
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        data = f.read()
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes and "\n" in text:
        text = text.split("\n", 1)[1]
    return text


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints that carry the completion mark, oldest first; half-written ones are never listed."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / COMPLETE_MARK).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_complete_checkpoint(run_dir: Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders a kill left without their completion mark (including unfinished temporary ones)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".incomplete")
                  and not (p / COMPLETE_MARK).is_file())
