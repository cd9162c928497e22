"""Folders that appear whole or not at all: written aside, flushed, renamed into place, marked complete last."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

COMPLETE_MARK = "COMPLETE"


def fsync_tree(folder: Path) -> None:
    """Flush every file of a folder, and the folder itself, to disk."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(target: Path, write: Callable[[Path], None]) -> Path:
    """Write a folder through ``write(tmp)`` and make it appear at ``target`` only once it is whole.

    A folder already at ``target`` is replaced (moved aside, then removed); if ``write`` fails, nothing is left.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        write(tmp)
        fsync_tree(tmp)
        if target.exists():
            aside = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
            target.rename(aside)
            tmp.rename(target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    (target / COMPLETE_MARK).write_text("ok\n")
    with (target / COMPLETE_MARK).open("rb") as f:
        os.fsync(f.fileno())
    return target
