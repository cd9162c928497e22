"""A samples.jsonl used in place (a server path, not an import): confined like an import before anything reads it.

Training opens each row's images as ``<folder>/<path>``, so a hand-written file must not name images outside its
folder: absolute paths, ``..`` and links that lead out are refused, as are images that are not there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

from core.problems import Problem

MAX_REPORTED = 20
ABSOLUTE = "image path {ref!r} is absolute; in a samples.jsonl, image paths are relative to its folder"
PARENT = "image path {ref!r} climbs out of the dataset's folder ('..'); keep images inside {folder}"
OUTSIDE = "image path {ref!r} leads outside the dataset's folder {folder} (through a link)"
MISSING = "image {ref!r} not found in {folder}"
NOT_A_ROW = "not a sample: expected an object with 'messages' and a list of 'images' paths"


def _image_problem(ref: object, folder: Path) -> str | None:
    if not isinstance(ref, str) or not ref.strip() or "\x00" in ref:
        return f"image path {ref!r} is not a file name"
    text = ref.replace("\\", "/")
    if PurePosixPath(text).is_absolute() or re.match(r"^[A-Za-z]:", text):
        return ABSOLUTE.format(ref=ref)
    if ".." in PurePosixPath(text).parts:
        return PARENT.format(ref=ref, folder=folder)
    target = (folder / text).resolve()
    if not target.is_relative_to(folder.resolve()):
        return OUTSIDE.format(ref=ref, folder=folder)
    return None if target.is_file() else MISSING.format(ref=ref, folder=folder)


def check_samples_file(path: Path, field: str = "images") -> list[Problem]:
    """Every row's image paths, checked (the first MAX_REPORTED problems, then a count of the rest), reported
    under ``field``."""
    path, problems, more = Path(path), [], 0
    folder = path.parent
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                images = row["images"] if "images" in row else []
                if not isinstance(row.get("messages"), list) or not isinstance(images, list):
                    raise TypeError
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
                found = [NOT_A_ROW]
            else:
                found = [p for p in (_image_problem(ref, folder) for ref in images) if p]
            for message in found:
                if len(problems) < MAX_REPORTED:
                    problems.append(Problem(message, field=field, file=str(path), line=number))
                else:
                    more += 1
    if more:
        problems.append(Problem(f"and {more} more problems like these", field=field, file=str(path)))
    return problems
