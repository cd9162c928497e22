"""Configurable limits for dataset imports (upload size, image pixels and bytes) and the upload size check."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core.problems import Problem, ProblemsError

MB = 1024 * 1024
ENV_MAX_UPLOAD_MB = "STUDIO_MAX_UPLOAD_MB"
ENV_MAX_IMAGE_PIXELS = "STUDIO_MAX_IMAGE_PIXELS"
ENV_MAX_IMAGE_MB = "STUDIO_MAX_IMAGE_MB"


@dataclass(frozen=True)
class ImportLimits:
    """Every limit an import enforces; ``from_env`` reads overrides from STUDIO_MAX_* variables."""

    max_upload_bytes: int = 2048 * MB  # one uploaded file, or all files of one upload together
    max_extracted_bytes: int = 8192 * MB  # everything a zip unpacks to (a zip bomb stops here)
    max_zip_members: int = 200_000
    max_image_pixels: int = 40_000_000  # width x height; larger images (and decompression bombs) are row errors
    max_image_bytes: int = 50 * MB
    max_json_object_bytes: int = 512 * MB  # a top-level JSON object (not a list) must be loaded whole
    max_problems_per_kind: int = 20  # problems kept in full for each kind; all are counted

    @classmethod
    def from_env(cls) -> ImportLimits:
        values = {}
        for env, name, scale in ((ENV_MAX_UPLOAD_MB, "max_upload_bytes", MB),
                                 (ENV_MAX_IMAGE_PIXELS, "max_image_pixels", 1),
                                 (ENV_MAX_IMAGE_MB, "max_image_bytes", MB)):
            raw = os.environ.get(env, "").strip()
            if raw:
                try:
                    values[name] = int(float(raw) * scale)
                except ValueError:
                    raise ProblemsError([Problem(f"{env}={raw!r} is not a number", field=env)]) from None
        return cls(**values)


def parse_size(text: str | int) -> int:
    """Bytes from a size as ``--max-upload`` takes it (Gradio's form): an int, or "500mb", "2gb", "100 kb"."""
    if isinstance(text, int):
        return text
    raw = str(text).strip().lower().replace(" ", "")
    for unit, scale in (("tb", 1024 ** 2 * MB), ("gb", 1024 * MB), ("mb", MB), ("kb", 1024), ("b", 1)):
        if raw.endswith(unit):
            raw, factor = raw[: -len(unit)], scale
            break
    else:
        factor = 1
    try:
        return int(float(raw) * factor)
    except ValueError:
        raise ProblemsError([Problem(f"{text!r} is not a size like 500mb or 2gb", field="max_upload")]) from None


def human_size(n: int) -> str:
    """Bytes as a short readable size: 512 B, 3.2 MB, 1.5 GB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def upload_size(paths: list[Path] | Path, stop_after: int | None = None) -> int:
    """Total bytes of the given files, folders summed recursively (links not followed); with ``stop_after``,
    counting ends as soon as the total passes it, so a huge tree is not walked to the end."""
    total = 0
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        if path.is_file():
            total += path.stat().st_size
        for folder, _dirs, names in os.walk(path) if path.is_dir() else ():
            for name in names:
                file = Path(folder, name)
                if file.is_file() and not file.is_symlink():
                    total += file.stat().st_size
                if stop_after is not None and total > stop_after:
                    return total
    return total


def check_upload_size(paths: list[Path] | Path, limits: ImportLimits | None = None) -> list[Problem]:
    """Problems (empty if fine) for an upload over ``limits.max_upload_bytes``; the app calls it before importing."""
    limits = limits or ImportLimits.from_env()
    total = upload_size(paths)
    if total <= limits.max_upload_bytes:
        return []
    return [Problem(
        f"the upload is {human_size(total)}, over the limit of {human_size(limits.max_upload_bytes)}; "
        f"give the dataset as a path on the server instead, or raise the limit with {ENV_MAX_UPLOAD_MB}",
        field="files")]
