"""Image references: safe path resolution under one root, decode checks with pixel limits, and copying with dedupe."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.datasets.limits import ImportLimits, human_size
from core.datasets.problem_log import RowError

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
ACCEPTED_TEXT = "JPEG, PNG, WebP, GIF or BMP"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
FORMAT_SUFFIX = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def _sniff(head: bytes) -> str:
    """What a file that PIL would not open as an accepted image probably is, for the message."""
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF image"
    if head[4:8] == b"ftyp":
        brand = head[8:12].decode("latin-1")
        return "an AVIF image" if brand.startswith("avi") else "a HEIC/HEIF image" if brand.startswith(
            ("hei", "mif", "msf")) else "an MP4/QuickTime file"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return "an SVG/XML file"
    if head.startswith(b"%PDF"):
        return "a PDF"
    if head.startswith((b"\xff\xd8", b"\x89PNG", b"GIF8", b"BM", b"RIFF")):
        return "a damaged image header"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"unknown binary content (starts with {head[:8].hex(' ')})"
    return f"text, not an image (starts with {text[:24]!r})"


def check_image(data: bytes | Path, limits: ImportLimits, label: str, field: str) -> ImageInfo:
    """Decode ``data`` (bytes or a file) fully, within the limits; raises RowError naming what is wrong."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(data, Path):
        size = data.stat().st_size
        if size == 0:
            raise RowError("image_empty", f"image '{label}' is an empty file (0 bytes)", field=field)
        if size > limits.max_image_bytes:
            raise RowError("image_too_large", f"image '{label}' is {human_size(size)}, over the limit of "
                           f"{human_size(limits.max_image_bytes)}", field=field)
        with data.open("rb") as f:
            head = f.read(32)
        opener = data
    else:
        if not data:
            raise RowError("image_empty", f"image '{label}' is empty (0 bytes)", field=field)
        if len(data) > limits.max_image_bytes:
            raise RowError("image_too_large", f"image '{label}' is {human_size(len(data))}, over the limit of "
                           f"{human_size(limits.max_image_bytes)}", field=field)
        head = data[:32]
        opener = io.BytesIO(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(opener, formats=ACCEPTED_FORMATS) as img:
                width, height = img.size
                if width * height > limits.max_image_pixels:
                    raise RowError("image_too_large", f"image '{label}' is {width}x{height} = {width * height:,} "
                                   f"pixels, over the limit of {limits.max_image_pixels:,} (a decompression bomb, or "
                                   "a picture to downscale first)", field=field)
                fmt = img.format or "?"
                img.load()  # decodes the data: truncation shows up here (for a GIF, the first frame)
        except RowError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            pixels = re.search(r"\((\d+) pixels\)", str(e))
            size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
            raise RowError("image_too_large", f"image '{label}' is {size}, over the limit of "
                           f"{limits.max_image_pixels:,}: a decompression bomb, refused before decoding",
                           field=field) from None
        except UnidentifiedImageError:
            raise RowError("image_format", f"'{label}' is not a {ACCEPTED_TEXT} image: it is {_sniff(head)}",
                           field=field) from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise RowError("image_corrupt", f"image '{label}' is truncated or corrupt: its data ends early or is "
                           f"damaged ({e})", field=field) from None
    return ImageInfo(fmt, width, height)


@dataclass
class ImageResolver:
    """Resolves relative image paths against ``bases`` (the data file's folder first, then its parents up to
    ``root``), never outside ``root``. A path none of them holds is retried without its leading folders
    (LLaMA-Factory writes 'data/mllm_demo_data/1.jpg' relative to its repo root), still inside ``root``."""

    root: Path
    bases: list[Path]
    stripped: dict[str, int] = field(default_factory=dict)  # dropped leading folders -> how many paths needed it
    shown: Callable[[Path], str] = str  # a folder as the person knows it (inside their zip), for messages

    def __post_init__(self):
        self.root = self.root.resolve()
        self.bases = [b.resolve() for b in self.bases] or [self.root]

    def _inside(self, path: Path) -> bool:
        return path.is_relative_to(self.root)

    def resolve(self, ref: str, field: str) -> Path:
        if "\x00" in ref:
            raise RowError("image_path", f"image path {shorten_ref(ref)!r} contains a NUL character", field=field)
        try:
            return self._resolve(ref, field)
        except OSError as e:
            raise RowError("image_path", f"image path '{shorten_ref(ref)}' cannot be used: {e.strerror or e}",
                           field=field) from None

    def _resolve(self, ref: str, field: str) -> Path:
        text = ref.strip()
        if re.match(r"^(https?|s3|gs|ftp)://", text, re.IGNORECASE):
            raise RowError("unsupported", f"image '{shorten_ref(text)}' is a URL; images are not downloaded: put the "
                           "files beside the dataset and use relative paths", field=field)
        if text.lower().startswith("file://"):
            text = text[7:]
        text = text.replace("\\", "/")
        outside = f"image path '{shorten_ref(ref)}' resolves outside the image root {self.shown(self.root)}; " \
                  "paths must stay inside the dataset's folder or the image root you give"
        if text.startswith("/") or re.match(r"^[A-Za-z]:/", text):
            candidate = Path(text).resolve()
            if not self._inside(candidate):
                raise RowError("image_path", outside, field=field)
            if candidate.is_file():
                return candidate
            raise RowError("image_missing", f"image '{shorten_ref(ref)}' not found", field=field)
        rel = PurePosixPath(text)
        escaped = False
        for base in self.bases:
            candidate = (base / rel).resolve()
            if not self._inside(candidate):
                escaped = True
                continue
            if candidate.is_file():
                return candidate
        if escaped or ".." in rel.parts:
            raise RowError("image_path", outside, field=field)
        for k in range(1, len(rel.parts)):
            for base in self.bases:
                candidate = (base / PurePosixPath(*rel.parts[k:])).resolve()
                if self._inside(candidate) and candidate.is_file():
                    prefix = "/".join(rel.parts[:k]) + "/"
                    self.stripped[prefix] = self.stripped.get(prefix, 0) + 1
                    return candidate
        looked = ", ".join(self.shown(b) for b in self.bases[:4])
        raise RowError("image_missing", f"image file '{shorten_ref(ref)}' not found (looked in {looked})",
                       field=field)

    def note(self) -> str:
        """A line for the report when some paths were found only after dropping leading folders."""
        if not self.stripped:
            return ""
        parts = [f"'{prefix}' ({count})" for prefix, count in sorted(self.stripped.items(), key=lambda kv: -kv[1])]
        return "some image paths were found after dropping leading folders that do not exist under the root: " + \
            ", ".join(parts)


def shorten_ref(ref: str, limit: int = 80) -> str:
    return ref if len(ref) <= limit else ref[:limit - 3] + "..."


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^\w.\-]+", "_", name)[-60:].lstrip(".") or "image"
    return stem


@dataclass
class ImageStore:
    """Checks each distinct image once and copies it into ``images_dir`` (None: check only). Memory per distinct
    image is a 12-byte key and a number, so a dataset with a million images stays well under the RSS target."""

    images_dir: Path | None
    limits: ImportLimits
    prefix: str = "images"
    count: int = 0
    _by_path: dict[bytes, int | tuple[str, str]] = field(default_factory=dict)
    _by_hash: dict[str, str] = field(default_factory=dict)

    def _name(self, number: int, original: str, fmt: str | None) -> str:
        name = _safe_name(Path(original).name)
        if fmt is not None and Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            name += FORMAT_SUFFIX.get(fmt, ".img")  # embedded images get a suffix; files keep their own name
        return f"{self.prefix}/{number:06d}_{name}"

    def add_file(self, path: Path, label: str, field: str) -> str:
        key = hashlib.blake2b(str(path).encode("utf-8", "surrogateescape"), digest_size=12).digest()
        cached = self._by_path.get(key)
        if isinstance(cached, int):
            return self._name(cached, path.name, None)
        if isinstance(cached, tuple):
            raise RowError(cached[0], cached[1], field=field)
        try:
            check_image(path, self.limits, label, field)
        except RowError as e:
            self._by_path[key] = (e.kind, e.message)
            raise
        self.count += 1
        stored = self._name(self.count, path.name, None)
        if self.images_dir is not None:
            shutil.copyfile(path, self.images_dir.parent / stored)
        self._by_path[key] = self.count
        return stored

    def add_bytes(self, data: bytes, label: str, field: str) -> str:
        digest = hashlib.sha1(data).hexdigest()
        if digest in self._by_hash:
            return self._by_hash[digest]
        info = check_image(data, self.limits, label, field)
        self.count += 1
        stored = self._name(self.count, digest[:12], info.format)
        if self.images_dir is not None:
            (self.images_dir.parent / stored).write_bytes(data)
        self._by_hash[digest] = stored
        return stored


def store_image(ref: object, field: str, resolver: ImageResolver, store: ImageStore) -> str:
    """Resolve, check and store one image reference: a path, a data: URI, raw bytes, or {bytes, path}."""
    if isinstance(ref, dict):
        data = ref.get("bytes")
        if data:
            return store.add_bytes(bytes(data), str(ref.get("path") or "embedded image"), field)
        ref = ref.get("path") or ref.get("url") or ref.get("image") or ""
    if isinstance(ref, (bytes, bytearray)):
        return store.add_bytes(bytes(ref), "embedded image", field)
    if not isinstance(ref, str) or not ref.strip():
        raise RowError("wrong_type", f"expected an image path, found {ref!r}", field=field)
    if DATA_URI.match(ref):
        try:
            data = base64.b64decode(ref.split(",", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            raise RowError("image_corrupt", "the data: URI holds invalid base64", field=field) from None
        return store.add_bytes(data, "data: URI image", field)
    path = resolver.resolve(ref, field)
    return store.add_file(path, ref, field)
