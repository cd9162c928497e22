"""Registered datasets: importing a source into the data directory, the bundled ones, and name resolution."""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.datasets.detect import format_choices
from core.datasets.hub_source import HubSource
from core.datasets.importer import ImportReport, ProgressCallback, import_dataset, validate_dataset
from core.datasets.limits import ImportLimits, human_size, upload_size
from core.datasets.peek import inspect_source
from core.datasets.records import SAMPLES_FILE
from core.datasets.server_samples import check_samples_file
from core.datasets.uploads import stage_uploads
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.store.registry import DatasetRecord, Registry

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SAMPLE_NAME = "sample"
SAMPLE_SOURCE = ASSETS / "sample_dataset" / "data.json"
SAMPLE_MARKER = ".sample-offered"  # in datasets/: the sample was registered once; deleting it sticks
SHAPES_QA_NAME = "shapes-qa"  # the image-QA set starter-vlm learns from; its eval.json is the held-out split
# Registered on first listing: name -> (source, label in the registry, marker in datasets/).
BUNDLED = {
    SAMPLE_NAME: (SAMPLE_SOURCE, "bundled sample (assets/sample_dataset)", SAMPLE_MARKER),
    SHAPES_QA_NAME: (ASSETS / "shapes_qa", "bundled image-QA set (assets/shapes_qa)", ".shapes-qa-offered"),
}
NAME_PATTERN = re.compile(r"^[\w .\-]{1,100}$")
LIMIT_HINT = "raise the studio's --max-upload (or STUDIO_MAX_UPLOAD_MB) to accept it"
UPLOADED = "the uploaded files"


def hub_label(origin: dict) -> str:
    """The registry's source for a Hub dataset: id, short commit, config and split."""
    if not origin.get("hub_id"):
        return ""
    inside = ", ".join(v for v in (origin.get("config"), origin.get("split")) if v)
    return f"hub: {origin['hub_id']}@{(origin.get('revision') or '')[:12]}" + (f" ({inside})" if inside else "")


@dataclass
class ImportRequest:
    """Where a dataset comes from and how to read it: browser uploads, a server path or a Hub dataset id, plus the
    form's options."""

    files: list[Path] = field(default_factory=list)  # uploaded files (one zip or data file, or a file plus images)
    server_path: str = ""  # a file, folder or zip on the server (used when no files are given)
    hub_id: str = ""  # a Hugging Face Hub dataset ("owner/name"), or a local folder laid out as one
    config: str | None = None  # the Hub dataset's (or datasets folder's) config, that is its subset
    split: str | None = None  # None: train, or the only split
    revision: str | None = None  # a branch, tag or commit of the Hub dataset; None: main
    row_limit: int = 0  # import only the first this many rows (0: all); a Hub split's later files are not fetched
    stream: bool = False  # read a Hub dataset's rows over the network without storing its files in the cache
    encoding: str = "utf-8"  # of JSON, JSONL, CSV and caption files
    data_file: str | None = None  # which data file inside a zip or folder
    format: str | None = None  # None: detect
    columns: dict[str, str] | None = None  # slot -> column, only the slots the user changed
    image_root: str | None = None
    eval_ratio: float = 0.0
    eval_source: str | None = None  # a server path, or the name of one of the uploaded files
    seed: int = 0


class DatasetCatalog:
    def __init__(self, paths: StudioPaths, registry: Registry, limits: ImportLimits | None = None):
        self.paths = paths
        self.registry = registry
        self.limits = limits

    def import_limits(self) -> ImportLimits:
        return self.limits or ImportLimits.from_env()

    def check_name(self, name: str) -> str:
        name = name.strip()
        if not NAME_PATTERN.match(name):
            raise ProblemsError([Problem("use 1-100 letters, digits, spaces, '.', '_' or '-'", field="name")])
        if self.registry.find_dataset(name):
            raise ProblemsError([Problem(f"a dataset named {name!r} exists already; pick another name",
                                         field="name")])
        return name

    # --- sources ------------------------------------------------------------------------------------------
    def _check_size(self, paths: list[Path], what: str, field_name: str) -> None:
        limit = self.import_limits().max_upload_bytes
        total = upload_size(paths, stop_after=limit)
        if total > limit:
            raise ProblemsError([Problem(f"{what} is {human_size(total)}, over the studio's limit of "
                                         f"{human_size(limit)}; {LIMIT_HINT}", field=field_name)])

    @contextmanager
    def source_of(self, request: ImportRequest) -> Iterator[tuple[Path | HubSource, str]]:
        """The request's data as one path (or a Hub source) and a label for the registry; several uploaded files
        are gathered into one staging folder (``stage_uploads``: two files with one name are refused), removed
        afterwards."""
        files = [Path(f) for f in request.files if f]
        hub_id = (request.hub_id or "").strip()
        if not files and hub_id:
            if (request.server_path or "").strip():
                raise ProblemsError([Problem("give either a path on the server or a Hub dataset id, not both",
                                             field="hub_id")])
            local = Path(hub_id).expanduser()
            if local.exists() and local.resolve().is_relative_to(self.paths.root):
                raise ProblemsError([Problem("that path is inside the studio's data directory; give the original "
                                             "dataset instead", field="hub_id")])
            label = str(local.resolve()) if local.is_dir() else f"hub: {hub_id}"
            yield HubSource(hub_id, (request.config or "").strip() or None, (request.split or "").strip() or None,
                            (request.revision or "").strip() or None, bool(request.stream)), label
            return
        if not files:
            raw = (request.server_path or "").strip()
            if not raw:
                raise ProblemsError([Problem("upload the dataset's files, or give a path on the server or a Hub "
                                             "dataset id", field="files")])
            path = Path(raw).expanduser()
            if not path.exists():
                raise ProblemsError([Problem(f"{raw} does not exist on the server", field="server_path")])
            path = path.resolve()
            if path.is_relative_to(self.paths.root):
                raise ProblemsError([Problem("that path is inside the studio's data directory; give the original "
                                             "dataset instead", field="server_path")])
            self._check_size([path], f"the dataset at {path}", "server_path")
            yield path, str(path)
            return
        self._check_size(files, "the upload", "files")
        staging = self.paths.uploads_dir / f"upload-{uuid.uuid4().hex[:12]}"
        staging.mkdir(parents=True)
        try:
            staged = stage_uploads(files, staging)
            names = ", ".join(f.name for f in staged[:3]) + (f" and {len(staged) - 3} more" if len(staged) > 3 else "")
            yield (staged[0] if len(staged) == 1 else staging), f"upload: {names}"
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _eval_source(self, request: ImportRequest, source: Path) -> Path | None:
        raw = (request.eval_source or "").strip()
        if not raw:
            return None
        if source.is_dir() and (source / raw).is_file() and (source / raw).resolve().is_relative_to(source.resolve()):
            return source / raw  # one of the uploaded files
        path = Path(raw).expanduser()
        if not path.exists():
            raise ProblemsError([Problem(f"the eval file {raw} is neither an uploaded file nor a path on the "
                                         "server", field="eval_source")])
        self._check_size([path], f"the eval file {raw}", "eval_source")
        return path

    def _root(self, request: ImportRequest) -> Path | None:
        raw = (request.image_root or "").strip()
        return Path(raw).expanduser() if raw else None

    def _options(self, request: ImportRequest, label: str) -> dict:
        """The reading options every step shares: inspect, validate and register see the same rows."""
        row_limit = request.row_limit
        if isinstance(row_limit, float) and row_limit.is_integer():
            row_limit = int(row_limit)
        return {"data_file": request.data_file or None, "image_root": self._root(request),
                "format": request.format or None, "columns": request.columns or None,
                "encoding": (request.encoding or "").strip() or "utf-8", "config": (request.config or "").strip()
                or None, "split": (request.split or "").strip() or None, "row_limit": row_limit or None,
                "limits": self.import_limits(), "shown_as": UPLOADED if label.startswith("upload:") else None}

    # --- inspect, validate, register ----------------------------------------------------------------------
    def inspect(self, request: ImportRequest) -> dict:
        """``inspect_source`` for a request; problems (including a missing source) come back in ``problems``."""
        try:
            with self.source_of(request) as (source, label):
                info = inspect_source(source, **self._options(request, label))
                info["source"] = label
                return info
        except ProblemsError as e:
            return {"problems": [p.to_dict() for p in e.problems], "format": None, "formats": format_choices(),
                    "rows": [], "columns": {}, "keys": [], "source": ""}

    def validate(self, request: ImportRequest, progress: ProgressCallback | None = None) -> ImportReport:
        with self.source_of(request) as (source, label):
            return validate_dataset(source, eval_source=self._eval_source(request, source), progress=progress,
                                    workdir=self.paths.uploads_dir, **self._options(request, label))

    def register_request(self, request: ImportRequest, name: str, progress: ProgressCallback | None = None
                         ) -> tuple[DatasetRecord, ImportReport]:
        name = self.check_name(name)
        with self.source_of(request) as (source, label):
            options = self._options(request, label)
            options.pop("limits")
            return self.register(source, name, source_label=label, eval_source=self._eval_source(request, source),
                                 eval_ratio=request.eval_ratio, seed=request.seed, progress=progress, **options)

    def register(self, source: Path | HubSource, name: str, *, image_root: Path | None = None,
                 source_label: str | None = None, **options: object) -> tuple[DatasetRecord, ImportReport]:
        """Import ``source`` and record it, a Hub dataset with its id and the commit it was read at; on any problem
        nothing is left behind. ``options`` go to ``import_dataset`` (format, columns, eval_source, eval_ratio,
        seed, data_file, encoding, config, split, row_limit, progress)."""
        name = self.check_name(name)
        folder = self.paths.datasets_dir / f"ds-{uuid.uuid4().hex[:12]}"
        source = source if isinstance(source, HubSource) else Path(source)
        report = import_dataset(source, folder, image_root=image_root, limits=self.import_limits(),
                                **options)  # type: ignore[arg-type]
        origin = report.origin
        try:
            dataset_id = self.registry.add_dataset(
                name=name, source=hub_label(origin) or source_label or str(source), format=report.format,
                path=str(folder), rows=report.rows_kept, images=report.images, summary=report.summary(),
                hub_id=origin.get("hub_id"), hub_revision=origin.get("revision"), hub_config=origin.get("config"),
                hub_split=origin.get("split"))
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            if self.registry.find_dataset(name):  # registered meanwhile, by another import with the same name
                raise ProblemsError([Problem(f"a dataset named {name!r} exists already; pick another name",
                                             field="name")]) from None
            raise
        record = next(d for d in self.registry.list_datasets() if d.id == dataset_id)
        return record, report

    # --- the sample, lookups, rename, delete --------------------------------------------------------------
    def ensure_sample(self, *, again: bool = False) -> DatasetRecord | None:
        """Register the bundled datasets the first time (or whenever ``again``); returns the sample's record."""
        records = {name: self.ensure_bundled(name, again=again) for name in BUNDLED}
        return records[SAMPLE_NAME]

    def ensure_bundled(self, name: str, *, again: bool = False) -> DatasetRecord | None:
        """Register a bundled dataset the first time (or whenever ``again``); once a person deleted or renamed
        it, listing datasets does not bring it back, but asking for it by name does."""
        source, label, marker_name = BUNDLED[name]
        marker = self.paths.datasets_dir / marker_name
        existing = self.registry.find_dataset(name)
        if existing and (Path(existing.path) / SAMPLES_FILE).is_file():
            marker.touch()
            return existing
        if marker.exists() and not again:
            return None
        if existing:
            self.registry.delete_dataset(existing.id)
        record, _ = self.register(source, name, source_label=label)
        marker.touch()
        return record

    def get(self, name: str) -> DatasetRecord:
        record = self.registry.find_dataset(name)
        if record is None and name in BUNDLED:
            record = self.ensure_bundled(name, again=True)
        if record is None:
            raise ProblemsError([Problem(f"no registered dataset named {name!r}", field="dataset")])
        return record

    def resolve_dir(self, name_or_path: str) -> Path:
        """The folder holding samples.jsonl for a registered name or a server path."""
        record = self.registry.find_dataset(name_or_path)
        if record is None and name_or_path in BUNDLED:
            record = self.ensure_bundled(name_or_path, again=True)
        if record is not None:
            return Path(record.path)
        path = Path(name_or_path).expanduser()
        samples = path if path.is_file() and path.name == SAMPLES_FILE else path / SAMPLES_FILE
        if samples.is_file():
            problems = check_samples_file(samples, field="dataset")  # used in place: confined like an import
            if problems:
                raise ProblemsError(problems)
            return samples.parent
        raise ProblemsError([Problem(
            f"no registered dataset named {name_or_path!r} and no {SAMPLES_FILE} at that path; register it in the "
            "Datasets tab first", field="dataset")])

    def rename(self, dataset_id: int, new_name: str) -> None:
        self.registry.rename_dataset(dataset_id, self.check_name(new_name))

    def delete(self, dataset_id: int) -> DatasetRecord:
        """Forget the dataset and remove its folder (only ever a folder inside the data directory)."""
        record = self.registry.delete_dataset(dataset_id)
        folder = Path(record.path).resolve()
        if folder.is_relative_to(self.paths.datasets_dir.resolve()) and folder != self.paths.datasets_dir.resolve():
            shutil.rmtree(folder, ignore_errors=True)
        return record
