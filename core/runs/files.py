"""The files of a run folder, and how to read them while the job is still writing."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from core.runs.folders import COMPLETE_MARK

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
FINAL_DIR = "final"
BEST_DIR = "best"  # the result at the lowest eval loss, beside final/ (the last); BEST_INFO inside says when
BEST_INFO = "eval_best.json"
CHECKPOINTS_DIR = "checkpoints"
DATASET_FILE = "dataset.json"  # what the run trained on: the dataset's name, folder and origin (Hub id, commit)
EVAL_LOG_FILE = "evaluate.log"  # an evaluation job's output, in its own folder


def _parse_lines(data: bytes) -> list[dict]:
    rows = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_metrics(run_dir: Path) -> list[dict]:
    """Every complete metrics line; a line still being written (no newline yet) is left for the next read."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    data = path.read_bytes()
    return _parse_lines(data[: data.rfind(b"\n") + 1])


class MetricsCache:
    """Reads runs' metrics incrementally for pollers: each call parses only the lines appended since the last.

    A file replaced (a resume rewrites it) or shrunk is read again from the start.
    """

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, int, list[dict]]] = {}  # path -> (inode, bytes parsed, rows)
        self._lock = threading.Lock()

    def read(self, run_dir: Path) -> list[dict]:
        path = Path(run_dir) / METRICS_FILE
        with self._lock:
            try:
                stat = path.stat()
            except FileNotFoundError:
                self._seen.pop(path, None)
                return []
            inode, offset, rows = self._seen.get(path, (stat.st_ino, 0, []))
            if inode != stat.st_ino or stat.st_size < offset:
                offset, rows = 0, []
            if stat.st_size > offset:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read(stat.st_size - offset)
                complete = data[: data.rfind(b"\n") + 1]
                rows = rows + _parse_lines(complete)  # a new list: callers may hold the previous one
                offset += len(complete)
            self._seen[path] = (stat.st_ino, offset, rows)
            return rows


def record_dataset(run_dir: Path, name: str, dataset_dir: Path) -> dict:
    """Write what a run trains on into its folder: the dataset's name and folder, and its origin when it came from
    the Hub (id, config, split and the commit it was read at, from the dataset's source.json)."""
    origin_file = Path(dataset_dir) / "source.json"
    origin = json.loads(origin_file.read_text(encoding="utf-8")) if origin_file.is_file() else None
    record = {"name": name, "folder": str(dataset_dir), "origin": origin}
    tmp = Path(run_dir) / (DATASET_FILE + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(Path(run_dir) / DATASET_FILE)
    return record


def log_tail(run_dir: Path, max_bytes: int = 8000, name: str = LOG_FILE) -> str:
    path = Path(run_dir) / name
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


def metrics_page(rows: list[dict], older: int = 0, per_page: int = 50) -> dict:
    """One page of a run's metrics lines, newest page first: ``older`` pages back from the end. Returns
    {"lines", "first", "last" (1-based line numbers), "total", "older", "has_older", "has_newer"}."""
    per_page = max(1, int(per_page))
    total = len(rows)
    pages = max(1, -(-total // per_page))
    older = min(max(0, int(older)), pages - 1)
    end = total - older * per_page
    start = max(0, end - per_page)
    return {"lines": rows[start:end], "first": start + 1 if end else 0, "last": end, "total": total,
            "older": older, "has_older": start > 0, "has_newer": older > 0}
