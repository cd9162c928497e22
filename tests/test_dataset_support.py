"""Helpers shared by the dataset tests: tiny images, a bomb PNG, and copies of the committed fixture folders."""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path(__file__).resolve().parent / "data"
BAD_INPUTS = DATA / "bad_inputs"
FORMATS = DATA / "formats"
SHARED = Path(__file__).resolve().parents[2] / "shared"
COMPAT = SHARED / "compat"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_header_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A 100-byte PNG whose header claims width x height pixels: decoding it would need gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + png_chunk(b"IEND", b""))
    return path


def solid(path: Path, colour=(255, 0, 0), size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def bad_inputs_copy(tmp: Path) -> Path:
    """The committed bad-input corpus, with its images (good and bad) generated beside it."""
    folder = tmp / "bad_inputs"
    shutil.copytree(BAD_INPUTS, folder)
    images = folder / "images"
    solid(images / "red.png")
    solid(images / "blue.png", (0, 0, 255))
    (images / "empty.png").write_bytes(b"")
    solid(images / "full.jpg", (10, 200, 30), (64, 64))
    data = (images / "full.jpg").read_bytes()
    (images / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (images / "full.jpg").unlink()
    (images / "text.png").write_text("this is not an image\n")
    Image.new("L", (8000, 8000)).save(images / "bomb.png")  # 64 M pixels in a 62 KB file
    huge_header_png(images / "huge_header.png")
    return folder


def formats_copy(tmp: Path) -> Path:
    folder = tmp / "formats"
    shutil.copytree(FORMATS, folder)
    return folder


def leftovers(parent: Path) -> list[str]:
    """Staging folders an import left in ``parent`` (there should be none)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".import-"))
