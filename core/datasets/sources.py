"""Where the rows come from: a data file, a folder (data file or captioned images), or a zip unpacked safely."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.datasets.images import IMAGE_SUFFIXES
from core.datasets.limits import ImportLimits, human_size
from core.datasets.problem_log import RowError
from core.datasets.readers import DATA_SUFFIXES, Progress, RawRow
from core.problems import Problem, ProblemsError

IGNORED_NAMES = {"dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json", "report.json",
                 "split.json", "package.json"}
METADATA_STEMS = ("metadata",)
EVAL_STEMS = ("eval", "val", "valid", "validation", "dev")


@dataclass
class SourcePlan:
    """What to read and which folders images may come from."""

    data_file: Path | None  # None: an image folder with a .txt caption beside each image
    display: str  # the data file's name as shown in problems
    folder: Path  # the dataset's own folder (a zip's unpacked top folder, the given folder, or the file's folder)
    root: Path  # images must resolve inside this folder
    bases: list[Path] = field(default_factory=list)  # folders relative image paths are tried against, in order
    eval_file: Path | None = None
    note: str = ""
    root_label: str = ""

    def caption_images(self) -> list[Path]:
        return sorted(p for p in _files(self.folder) if p.suffix.lower() in IMAGE_SUFFIXES)


def _files(folder: Path) -> Iterator[Path]:
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).parts
        if p.is_file() and not any(part.startswith(".") or part == "__MACOSX" for part in rel):
            yield p


def safe_extract(archive: Path, dest: Path, limits: ImportLimits) -> None:
    """Unpack a zip into ``dest``, refusing members that escape it, links, and archives over the size limits."""
    name = archive.name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise ProblemsError([Problem(f"not a readable zip file ({e})", file=name)]) from None
    with zf:
        members = zf.infolist()
        if len(members) > limits.max_zip_members:
            raise ProblemsError([Problem(f"the zip holds {len(members):,} entries, over the limit of "
                                         f"{limits.max_zip_members:,}", file=name)])
        total = sum(m.file_size for m in members)
        if total > limits.max_extracted_bytes:
            raise ProblemsError([Problem(f"the zip unpacks to {human_size(total)}, over the limit of "
                                         f"{human_size(limits.max_extracted_bytes)}", file=name)])
        dest = dest.resolve()
        dest.mkdir(parents=True, exist_ok=True)
        refused = []
        for m in members:
            parts = PurePosixPath(m.filename.replace("\\", "/")).parts
            mode = m.external_attr >> 16
            if m.filename.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts:
                refused.append(f"{m.filename!r} points outside the archive")
            elif stat.S_ISLNK(mode):
                refused.append(f"{m.filename!r} is a symbolic link")
            elif m.flag_bits & 0x1:
                refused.append(f"{m.filename!r} is encrypted")
            elif not (dest / m.filename).resolve().is_relative_to(dest):
                refused.append(f"{m.filename!r} points outside the archive")
        if refused:
            raise ProblemsError([Problem(f"zip member {r}; the upload was refused", file=name) for r in refused[:20]])
        written = 0
        for m in members:
            target = dest / m.filename
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(m) as src, target.open("wb") as out:
                while chunk := src.read(1024 * 1024):
                    written += len(chunk)
                    if written > limits.max_extracted_bytes:
                        raise ProblemsError([Problem("the zip unpacks to more than its declared size and over the "
                                                     "limit", file=name)])
                    out.write(chunk)


def _data_files(folder: Path) -> list[Path]:
    return sorted((p for p in _files(folder) if p.suffix.lower() in DATA_SUFFIXES and p.name not in IGNORED_NAMES),
                  key=lambda p: (len(p.relative_to(folder).parts), str(p)))


def _choose(folder: Path, data_file: str | None, label: str) -> tuple[Path | None, Path | None, str]:
    """The data file, an eval file found beside it, and a note on the choice."""
    files = _data_files(folder)
    if data_file:
        chosen = (folder / data_file).resolve()
        if not chosen.is_relative_to(folder.resolve()) or not chosen.is_file():
            names = ", ".join(str(p.relative_to(folder)) for p in files[:10]) or "none"
            raise ProblemsError([Problem(f"no data file {data_file!r} in {label}; the data files are: {names}",
                                         field="data_file")])
        return chosen, None, ""
    metadata = [p for p in files if p.stem.lower() in METADATA_STEMS]
    if metadata:
        return metadata[0], None, f"an image folder with {metadata[0].name}"
    if len(files) == 1:
        return files[0], None, ""
    if not files:
        images = [p for p in _files(folder) if p.suffix.lower() in IMAGE_SUFFIXES]
        if any(p.with_suffix(".txt").is_file() for p in images):
            return None, None, "an image folder with a .txt caption beside each image"
        raise ProblemsError([Problem(f"no dataset file found in {label}: expected a {', '.join(DATA_SUFFIXES)} file, "
                                     "a metadata.jsonl/metadata.csv, or images with a .txt caption each")])
    train = [p for p in files if p.stem.lower().startswith("train")]
    evals = [p for p in files if p.stem.lower().split("_")[0].split("-")[0] in EVAL_STEMS]
    if len(train) == 1 and len(evals) == 1 and len(files) == 2:
        return train[0], evals[0], f"{train[0].name} for training and {evals[0].name} for evaluation"
    names = ", ".join(str(p.relative_to(folder)) for p in files[:10])
    raise ProblemsError([Problem(f"{label} holds {len(files)} data files ({names}); choose which one to import",
                                 field="data_file")])


def _bases(start: Path, root: Path) -> list[Path]:
    """``start`` and its parents up to ``root`` (just ``root`` when ``start`` is not inside it)."""
    start, root = start.resolve(), root.resolve()
    if not start.is_relative_to(root):
        return [root]
    bases = [start]
    while bases[-1] != root:
        bases.append(bases[-1].parent)
    return bases


def plan_source(source: Path, workdir: Path, limits: ImportLimits, *, data_file: str | None = None,
                image_root: Path | None = None) -> SourcePlan:
    """Locate the data file (unpacking a zip into ``workdir``) and decide the image root."""
    source = Path(source).expanduser()
    if not source.exists():
        raise ProblemsError([Problem(f"{source} does not exist", field="source")])
    label = f"'{source.name}'"
    if source.is_file() and (source.suffix.lower() == ".zip" or zipfile.is_zipfile(source)) and \
            source.suffix.lower() not in DATA_SUFFIXES:
        folder = workdir / "unpacked"
        safe_extract(source, folder, limits)
        kind = "zip"
    elif source.is_dir():
        folder, kind = source, "folder"
    else:
        folder, kind = source.parent, "file"
    if kind == "file":
        chosen, eval_file, note = source, None, ""
    else:
        chosen, eval_file, note = _choose(folder, data_file, label)
    if image_root is not None:
        root = Path(image_root).expanduser()
        if not root.is_dir():
            raise ProblemsError([Problem(f"the image root {root} is not a folder", field="image_root")])
        root_label = str(root.resolve())
    else:
        root = folder if kind != "file" else source.parent
        root_label = f"the top folder of {source.name}" if kind == "zip" else str(root.resolve())
    start = chosen.parent if chosen is not None else folder
    display = str(chosen.relative_to(folder)) if chosen is not None and kind != "file" else source.name
    return SourcePlan(chosen, display, folder, root.resolve(), _bases(start, root), eval_file, note, root_label)


def caption_rows(plan: SourcePlan, progress: Progress) -> Iterator[RawRow]:
    """Rows for an image folder whose captions are .txt files beside the images."""
    images = plan.caption_images()
    progress.total = max(len(images), 1)
    for image in images:
        progress.done += 1
        rel = str(image.relative_to(plan.folder))
        txt = image.with_suffix(".txt")
        if not txt.is_file():
            yield RawRow(None, None, RowError("missing_field", f"no caption file '{txt.name}' beside the image"),
                         file=rel)
            continue
        try:
            text = txt.read_bytes().decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            yield RawRow(None, None, RowError("encoding", "the caption file is not UTF-8 text"),
                         file=str(txt.relative_to(plan.folder)))
            continue
        yield RawRow(None, {"file_name": rel, "text": text}, file=str(txt.relative_to(plan.folder)))
