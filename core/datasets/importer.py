"""Import a dataset source (file, folder or zip) into a registered dataset folder in the internal form."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from core.datasets.records import IMAGE_PLACEHOLDER, SAMPLES_FILE, Message, Sample, write_samples
from core.problems import Problem, ProblemsError

ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
MAX_PROBLEMS_SHOWN = 50


@dataclass
class ImportReport:
    """What an import found: the format, counts, and every problem (the first ones in full)."""

    format: str
    format_reason: str
    rows_total: int = 0
    rows_kept: int = 0
    images: int = 0
    image_root: str = ""
    problems: list[Problem] = field(default_factory=list)

    @property
    def rows_excluded(self) -> int:
        return self.rows_total - self.rows_kept

    def summary(self) -> dict:
        return {
            "format": self.format,
            "format_reason": self.format_reason,
            "rows_total": self.rows_total,
            "rows_kept": self.rows_kept,
            "rows_excluded": self.rows_excluded,
            "images": self.images,
            "image_root": self.image_root,
            "problems": [p.to_dict() for p in self.problems[:MAX_PROBLEMS_SHOWN]],
            "problem_count": len(self.problems),
        }


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a zip, refusing members that would land outside ``dest``."""
    dest = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = (dest / member.filename).resolve()
            if not target.is_relative_to(dest):
                raise ProblemsError([Problem(f"zip member {member.filename!r} points outside the archive",
                                             file=archive.name)])
        zf.extractall(dest)


def find_dataset_file(folder: Path) -> Path:
    candidates = sorted(p for p in folder.rglob("*.json") if "__MACOSX" not in p.parts)
    if not candidates:
        raise ProblemsError([Problem("no .json dataset file found in the upload", file=folder.name)])
    return candidates[0]


def resolve_image(name: str, root: Path) -> Path | None:
    """The image path under ``root``, or None if it would escape it."""
    candidate = (root / name).resolve()
    return candidate if candidate.is_relative_to(root.resolve()) else None


def check_image(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
        return f"image cannot be read ({type(e).__name__}: {e})"
    return None


def _convert_llava_row(row: object, index: int, file: str, root: Path) -> tuple[Sample | None, list[Problem], Path | None]:
    line = index + 1
    if not isinstance(row, dict):
        return None, [Problem("expected an object with 'conversations'", file=file, line=line)], None
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        return None, [Problem("expected a non-empty list of turns", file=file, line=line, field="conversations")], None
    messages = []
    for t, turn in enumerate(turns):
        where = f"conversations[{t}]"
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            return None, [Problem("expected {from, value}", file=file, line=line, field=where)], None
        role = ROLE_NAMES.get(str(turn["from"]).lower())
        if role is None:
            return None, [Problem(f"unknown speaker {turn['from']!r}; expected human or gpt",
                                  file=file, line=line, field=where + ".from")], None
        messages.append(Message(role, str(turn["value"])))
    if not any(m.role == "assistant" and m.content.strip() for m in messages):
        return None, [Problem("no non-empty answer from gpt", file=file, line=line, field="conversations")], None
    image_path = None
    images = []
    if row.get("image"):
        image_path = resolve_image(str(row["image"]), root)
        if image_path is None:
            return None, [Problem(f"image path {row['image']!r} leaves the dataset folder",
                                  file=file, line=line, field="image")], None
        if not image_path.is_file():
            return None, [Problem(f"image {row['image']!r} not found under {root}", file=file, line=line,
                                  field="image")], None
        error = check_image(image_path)
        if error:
            return None, [Problem(error, file=file, line=line, field="image")], None
        images = [image_path.name]
        first_user = next((m for m in messages if m.role == "user"), None)
        if first_user and IMAGE_PLACEHOLDER not in first_user.content:
            first_user.content = IMAGE_PLACEHOLDER + "\n" + first_user.content
    sample = Sample(id=str(row.get("id", index)), messages=messages, images=images)
    if sample.placeholder_count() != len(images):
        return None, [Problem(f"{sample.placeholder_count()} <image> placeholders but {len(images)} images",
                              file=file, line=line, field="conversations")], None
    return sample, [], image_path


def import_dataset(source: Path, dest_dir: Path, *, image_root: Path | None = None) -> ImportReport:
    """Read ``source`` and write ``dest_dir`` (samples.jsonl + images/) atomically; bad rows are excluded."""
    source = Path(source)
    dest_dir = Path(dest_dir)
    if dest_dir.exists():
        raise ProblemsError([Problem(f"a dataset folder already exists at {dest_dir}")])
    with tempfile.TemporaryDirectory(prefix="import-", dir=dest_dir.parent) as tmp:
        tmp_path = Path(tmp)
        if source.suffix.lower() == ".zip":
            safe_extract(source, tmp_path / "unpacked")
            data_file = find_dataset_file(tmp_path / "unpacked")
        elif source.is_dir():
            data_file = find_dataset_file(source)
        else:
            data_file = source
        root = Path(image_root) if image_root else data_file.parent
        try:
            rows = json.loads(data_file.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as e:
            raise ProblemsError([Problem(f"not valid JSON: {e.msg}", file=data_file.name, line=e.lineno)]) from e
        if not isinstance(rows, list):
            raise ProblemsError([Problem("expected a JSON list of rows", file=data_file.name, line=1)])
        report = ImportReport("llava", "rows have 'conversations' with 'from'/'value'", rows_total=len(rows),
                              image_root=str(root))
        staging = tmp_path / "dataset"
        (staging / "images").mkdir(parents=True)
        samples = []
        for index, row in enumerate(rows):
            sample, problems, image_path = _convert_llava_row(row, index, data_file.name, root)
            report.problems.extend(problems)
            if sample is None:
                continue
            if image_path is not None:
                stored = f"images/{index:06d}_{image_path.name}"
                shutil.copyfile(image_path, staging / stored)
                sample.images = [stored]
                report.images += 1
            samples.append(sample)
        if not samples:
            raise ProblemsError(report.problems or [Problem("the dataset has no rows", file=data_file.name)])
        report.rows_kept = write_samples(staging / SAMPLES_FILE, samples)
        (staging / "report.json").write_text(json.dumps(report.summary(), indent=2), encoding="utf-8")
        staging.rename(dest_dir)
    return report
