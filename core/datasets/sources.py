"""Where the rows come from: a data file, a folder (data file or captioned images), or a zip unpacked safely."""

from __future__ import annotations

import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath

from core.datasets.images import IMAGE_SUFFIXES
from core.datasets.limits import ImportLimits, human_size
from core.datasets.problem_log import ProblemLog, RowError
from core.datasets.readers import DATA_SUFFIXES, read_rows
from core.datasets.rows import Progress, RawRow
from core.datasets.tables import StatusCallback, Table, table_rows
from core.problems import Problem, ProblemsError

IGNORED_NAMES = {"dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json", "report.json",
                 "split.json", "package.json"}
METADATA_STEMS = ("metadata",)
EVAL_STEMS = ("eval", "val", "valid", "validation", "dev")


@dataclass
class SourcePlan:
    """What to read and which folders images may come from."""

    data_file: Path | None  # None: a table (below), or an image folder with a .txt caption beside each image
    display: str  # the data file's name as shown in problems
    folder: Path  # the dataset's own folder (a zip's unpacked top folder, the given folder, or the file's folder)
    root: Path  # images must resolve inside this folder
    bases: list[Path] = field(default_factory=list)  # folders relative image paths are tried against, in order
    eval_file: Path | None = None
    note: str = ""
    root_label: str = ""
    table: Table | None = None  # a split of several files, or rows from the datasets library
    origin: dict = field(default_factory=dict)  # a Hub dataset's id, revision, config and split
    preflight: dict | None = None  # a Hub dataset: its size and what the import downloads, shown before it starts
    shown_base: Path | None = None  # paths under it are shown relative to it, as the person knows them
    shown_in: str = ""  # where shown_base is for the person: "inside llava.zip", "among the uploaded files"

    @property
    def caption_folder(self) -> bool:
        return self.data_file is None and self.table is None

    def caption_images(self) -> list[Path]:
        return sorted(p for p in _files(self.folder) if p.suffix.lower() in IMAGE_SUFFIXES)

    def show(self, path: Path) -> str:
        """A folder or file as the person knows it: inside their zip or upload, never the studio's staging path."""
        if self.shown_base is None:
            return str(path)
        try:
            rel = Path(path).resolve().relative_to(self.shown_base.resolve()).as_posix()
        except ValueError:
            return str(path)
        where = f" {self.shown_in}" if self.shown_in else ""
        return f"the top folder{where}" if rel == "." else f"{rel}{where}"


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
            try:
                with zf.open(m) as src, target.open("xb") as out:
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        if written > limits.max_extracted_bytes:
                            raise ProblemsError([Problem("the zip unpacks to more than its declared size and over "
                                                         "the limit", file=name)])
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                raise ProblemsError([Problem(_damaged(m.filename, e), file=name)]) from None
            except FileExistsError:
                raise ProblemsError([Problem(f"zip member {m.filename!r} appears twice in the archive", file=name)]) \
                    from None


def _damaged(member: str, error: Exception) -> str:
    if isinstance(error, NotImplementedError):
        return f"zip member {member!r} uses a compression method the studio cannot unpack ({error}); re-create the " \
            "zip with the standard Deflate compression"
    what = "its checksum (CRC) does not match" if "CRC" in str(error) else "its compressed data is damaged"
    return f"zip member {member!r} cannot be unpacked: {what}. The zip is corrupt (an interrupted download or " \
        "copy?); create it again"


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
    pair = _pair(files)
    if pair is not None:
        return pair[0], pair[1], f"{pair[0].name} for training and {pair[1].name} for evaluation"
    names = ", ".join(str(p.relative_to(folder)) for p in files[:10])
    raise ProblemsError([Problem(f"{label} holds {len(files)} data files ({names}); choose which one to import",
                                 field="data_file")])


def _bases(start: Path, root: Path) -> list[Path]:
    """``start``, an ``images/`` folder beside it, then its parents up to ``root`` (just ``root`` when ``start`` is
    not inside it): the places people put a dataset's images."""
    start, root = start.resolve(), root.resolve()
    if not start.is_relative_to(root):
        return [root]
    bases = [start]
    if (start / "images").is_dir():
        bases.append(start / "images")
    parent = start
    while parent != root:
        parent = parent.parent
        bases.append(parent)
    return bases


def _image_root(image_root: Path, folder: Path, kind: str, label: str) -> tuple[Path, str]:
    """The root images must stay in, and how to name it. A relative root is looked for inside the dataset's own
    folder first (the zip or upload), then, for a server path, as given."""
    root = Path(image_root).expanduser()
    if not root.is_absolute():
        inside = (folder / root).resolve()
        if inside.is_relative_to(folder.resolve()) and inside.is_dir():
            return inside, f"{root.as_posix()} inside {label}" if kind == "zip" else str(inside)
        if kind == "zip":
            raise ProblemsError([Problem(f"no folder {root.as_posix()!r} inside {label}", field="image_root")])
    if not root.is_dir():
        raise ProblemsError([Problem(f"the image root {root} is not a folder", field="image_root")])
    return root.resolve(), str(root.resolve())


def _hf_table(folder: Path, files: list[Path], label: str, config: str | None, split: str | None) -> Table | None:
    """A save_to_disk folder, or a folder laid out as a Hub dataset repo, read through the datasets library; a
    plain train file with an eval file beside it stays a pair of data files."""
    from core.datasets import hf_folders

    if hf_folders.is_saved_dataset(folder):
        return hf_folders.saved_table(folder, split, label)
    if (config or split) and files or hf_folders.has_repo_card(folder) or \
            (hf_folders.looks_like_repo(folder, files) and _pair(files) is None):
        return hf_folders.repo_table(folder, config, split, label)
    return None


def _pair(files: list[Path]) -> tuple[Path, Path] | None:
    """One training file and one eval file (val*, eval*, dev*), and nothing else."""
    train = [p for p in files if p.stem.lower().startswith("train")]
    evals = [p for p in files if p.stem.lower().split("_")[0].split("-")[0] in EVAL_STEMS]
    return (train[0], evals[0]) if len(train) == 1 and len(evals) == 1 and len(files) == 2 else None


def plan_source(source: Path, workdir: Path, limits: ImportLimits, *, data_file: str | None = None,
                image_root: Path | None = None, config: str | None = None, split: str | None = None,
                shown_as: str | None = None, name: str | None = None) -> SourcePlan:
    """Locate the data file (unpacking a zip into ``workdir``), or the split of a datasets folder, and decide the
    image root. ``shown_as`` names a staging folder for the person ("the uploaded files"), ``name`` the source."""
    source = Path(source).expanduser()
    if not source.exists():
        raise ProblemsError([Problem(f"{source} does not exist", field="source")])
    label = name or f"'{source.name}'"
    if source.is_file() and (source.suffix.lower() == ".zip" or zipfile.is_zipfile(source)) and \
            source.suffix.lower() not in DATA_SUFFIXES:
        folder = workdir / "unpacked"
        safe_extract(source, folder, limits)
        kind = "zip"
        tops = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        if len(tops) == 1 and tops[0].is_dir() and not data_file and _hf_marker(tops[0]):
            folder = tops[0]  # a zipped datasets folder: its one top folder is the dataset
    elif source.is_dir():
        folder, kind = source, "folder"
    else:
        folder, kind = source.parent, "file"
    shown_base, shown_in = (folder, f"inside {source.name}") if kind == "zip" else \
        ((source if kind == "folder" else folder), f"among {shown_as}") if shown_as else (None, "")
    table = None
    if kind == "file":
        chosen, eval_file, note = source, None, ""
    else:
        files = _data_files(folder)
        table = None if data_file else _hf_table(folder, files, label, config, split)
        if table is not None:
            chosen, eval_file, note = None, None, table.note
        else:
            chosen, eval_file, note = _choose(folder, data_file, label)
    if image_root is not None:
        root, root_label = _image_root(image_root, folder, kind, source.name)
    else:
        root = folder if kind != "file" else source.parent
        root_label = f"the top folder of {source.name}" if kind == "zip" else shown_as or str(root.resolve())
    start = chosen.parent if chosen is not None else folder
    if table is not None:
        display = table.display
    else:
        display = str(chosen.relative_to(folder)) if chosen is not None and kind != "file" else source.name
    return SourcePlan(chosen, display, folder, root.resolve(), _bases(start, root), eval_file, note, root_label,
                      table=table, shown_base=shown_base, shown_in=shown_in)


def _hf_marker(folder: Path) -> bool:
    from core.datasets import hf_folders

    return hf_folders.is_saved_dataset(folder) or hf_folders.has_repo_card(folder)


def source_rows(plan: SourcePlan, progress: Progress, log: ProblemLog, limits: ImportLimits, encoding: str,
                row_limit: int | None = None, status: StatusCallback | None = None) -> Iterator[RawRow]:
    """The rows of the plan's main source, in order; with ``row_limit``, only the first that many (a split's later
    files are then never read, nor downloaded)."""
    if plan.table is not None:
        if plan.table.stream is None and not plan.table.parts:
            raise ProblemsError([Problem(f"{plan.display} has no data files", file=plan.display)])
        rows = table_rows(plan.table, progress, log, limits, encoding, row_limit, status)
    elif plan.data_file is None:
        rows = caption_rows(plan, progress, encoding)
    else:
        progress.total = max(plan.data_file.stat().st_size, 1)
        rows = read_rows(plan.data_file, plan.display, progress, log, limits, encoding)
    return islice(rows, row_limit) if row_limit else rows


def caption_rows(plan: SourcePlan, progress: Progress, encoding: str = "utf-8") -> Iterator[RawRow]:
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
            text = txt.read_bytes().decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8")
                                            else encoding).strip()
        except UnicodeDecodeError:
            yield RawRow(None, None, RowError("encoding", f"the caption file is not {encoding} text; choose its "
                                              "encoding"),
                         file=str(txt.relative_to(plan.folder)))
            continue
        yield RawRow(None, {"file_name": rel, "text": text}, file=str(txt.relative_to(plan.folder)))
