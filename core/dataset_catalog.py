"""Registered datasets: importing a source into the data directory, the bundled sample, and name resolution."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from core.datasets.importer import ImportReport, import_dataset
from core.datasets.records import SAMPLES_FILE
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.registry import DatasetRecord, Registry

SAMPLE_NAME = "sample"
SAMPLE_SOURCE = Path(__file__).resolve().parents[1] / "assets" / "sample_dataset" / "data.json"
NAME_PATTERN = re.compile(r"^[\w .\-]{1,100}$")


class DatasetCatalog:
    def __init__(self, paths: StudioPaths, registry: Registry):
        self.paths = paths
        self.registry = registry

    def check_name(self, name: str) -> str:
        name = name.strip()
        if not NAME_PATTERN.match(name):
            raise ProblemsError([Problem("use 1-100 letters, digits, spaces, '.', '_' or '-'", field="name")])
        if self.registry.find_dataset(name):
            raise ProblemsError([Problem(f"a dataset named {name!r} exists already; pick another name",
                                         field="name")])
        return name

    def register(self, source: Path, name: str, *, image_root: Path | None = None
                 ) -> tuple[DatasetRecord, ImportReport]:
        """Import ``source`` and record it; on any problem nothing is left behind."""
        name = self.check_name(name)
        folder = self.paths.datasets_dir / f"ds-{uuid.uuid4().hex[:12]}"
        report = import_dataset(Path(source), folder, image_root=image_root)
        try:
            dataset_id = self.registry.add_dataset(
                name=name, source=str(source), format=report.format, path=str(folder), rows=report.rows_kept,
                images=report.images, summary=report.summary())
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        record = next(d for d in self.registry.list_datasets() if d.id == dataset_id)
        return record, report

    def ensure_sample(self) -> DatasetRecord:
        existing = self.registry.find_dataset(SAMPLE_NAME)
        if existing and (Path(existing.path) / SAMPLES_FILE).is_file():
            return existing
        if existing:
            self.registry.delete_dataset(existing.id)
        record, _ = self.register(SAMPLE_SOURCE, SAMPLE_NAME)
        return record

    def resolve_dir(self, name_or_path: str) -> Path:
        """The folder holding samples.jsonl for a registered name or a server path."""
        record = self.registry.find_dataset(name_or_path)
        if record is None and name_or_path == SAMPLE_NAME:
            record = self.ensure_sample()
        if record is not None:
            return Path(record.path)
        path = Path(name_or_path).expanduser()
        if path.is_file() and path.name == SAMPLES_FILE:
            return path.parent
        if (path / SAMPLES_FILE).is_file():
            return path
        raise ProblemsError([Problem(
            f"no registered dataset named {name_or_path!r} and no {SAMPLES_FILE} at that path; register it in the "
            "Datasets tab first", field="dataset")])

    def rename(self, dataset_id: int, new_name: str) -> None:
        self.registry.rename_dataset(dataset_id, self.check_name(new_name))

    def delete(self, dataset_id: int) -> None:
        record = self.registry.delete_dataset(dataset_id)
        folder = Path(record.path)
        if folder.is_relative_to(self.paths.datasets_dir):
            shutil.rmtree(folder, ignore_errors=True)
