"""A job's last status kept in its run folder, so that a database that cannot be written (full disk) loses nothing.

The file is reserved at full size when the job starts, while there is room, and later overwritten in place: on a
full disk an overwrite of blocks already allocated still succeeds where appending to the database does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
RESERVED_BYTES = 16_384


def reserve(run_dir: Path) -> bool:
    """Allocate the status file at its full size now; False if even that failed (no room already)."""
    path = Path(run_dir) / STATUS_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < RESERVED_BYTES:
                os.pwrite(fd, b" " * RESERVED_BYTES, 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def write_status(run_dir: Path, record: dict[str, Any], durable: bool = True) -> bool:
    """Overwrite the reserved file with ``record`` (JSON padded with spaces); False if it could not be written."""
    if record.get("error") and len(record["error"]) > RESERVED_BYTES // 2:
        record = {**record, "error": record["error"][: RESERVED_BYTES // 2] + " ..."}
    data = json.dumps(record, ensure_ascii=True).encode()
    if len(data) > RESERVED_BYTES - 1:
        return False
    try:
        fd = os.open(Path(run_dir) / STATUS_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data + b" " * (RESERVED_BYTES - len(data)), 0)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def read_status(run_dir: Path | str | None) -> dict[str, Any] | None:
    """The record a job kept, or None (no file, a reserved but unwritten one, or a write cut short)."""
    if not run_dir:
        return None
    try:
        text = (Path(run_dir) / STATUS_FILE).read_text(encoding="ascii").strip()
        record = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
