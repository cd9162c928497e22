"""Import a dataset source (a file, folder or zip, a datasets folder, or a Hub dataset) into a dataset folder in the
internal form, validating as it streams.

The folder gets ``samples.jsonl`` (training rows), optionally ``eval.jsonl`` and ``split.json``, ``images/``,
``report.json`` and, for a Hub dataset, ``source.json``. Everything is written into a staging folder beside
``dest_dir`` and renamed into place at the end, so a failed import leaves nothing behind. Bad rows are excluded and
counted; problems are grouped by kind.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import IO

from core.datasets.detect import Detection, detect_format
from core.datasets.fields import RowView, TypeMemo
from core.datasets.formats import FORMATS, ConvertOptions
from core.datasets.formats.base import DEFAULT_CAPTION_PROMPT
from core.datasets.hub_source import HubSource
from core.datasets.images import ImageResolver, ImageStore, store_image
from core.datasets.limits import ImportLimits
from core.datasets.problem_log import ProblemLog, RowError
from core.datasets.readers import read_rows
from core.datasets.records import SAMPLES_FILE, Sample
from core.datasets.report import MAX_PROBLEMS_SHOWN, DatasetImportError, ImportReport, ProgressCallback
from core.datasets.report import Ticker as _Ticker
from core.datasets.rows import Progress, RawRow
from core.datasets.sources import SourcePlan, plan_source, source_rows
from core.datasets.split import EVAL_FILE, check_ratio, split_samples, write_split_info
from core.datasets.turns import check_turns, place_images
from core.problems import Problem, ProblemsError

__all__ = ["DatasetImportError", "HubSource", "ImportReport", "ProgressCallback", "import_dataset",
           "plan_any", "validate_dataset"]
REPORT_FILE = "report.json"
SOURCE_FILE = "source.json"
DETECT_ROWS = 50
MAX_TRACKED_IDS = 1_000_000  # sample ids checked for repeats (about 100 bytes each)
DUPLICATE_ID = "sample id {id!r} is used again (first at {first}); ids should be unique, or a run's records and " \
    "the preview cannot tell the rows apart"


@dataclass
class _Job:
    """The state shared by the files of one import."""

    limits: ImportLimits
    options: ConvertOptions
    log: ProblemLog
    store: ImageStore
    encoding: str
    ticker: _Ticker
    memo: TypeMemo = field(default_factory=TypeMemo)
    ids: dict[int, tuple[str, int | None]] = field(default_factory=dict)  # id hash -> where it was first seen

    def note_id(self, sample_id: str, file: str, line: int | None) -> None:
        """Warn (the row is kept) when an id given by the data repeats an earlier row's, train and eval alike."""
        digest = hashlib.blake2b(sample_id.encode("utf-8", "surrogateescape"), digest_size=8).digest()
        key = int.from_bytes(digest, "little")
        first = self.ids.get(key)
        if first is None:
            if len(self.ids) < MAX_TRACKED_IDS:
                self.ids[key] = (file, line)
            return
        where = f"line {first[1]}" if first[0] == file and first[1] is not None else \
            f"{first[0]}:{first[1]}" if first[1] is not None else first[0]
        self.log.warn("duplicate_id", DUPLICATE_ID.format(id=sample_id[:80], first=where), file=file, line=line,
                      field="id")


def _detect(rows: Iterator[RawRow], display: str, job: _Job, fmt: str | None, columns: dict | None,
            caption_folder: bool) -> tuple[Detection, Iterator[RawRow]]:
    head: list[RawRow] = []
    good: list[dict] = []
    for raw in rows:
        head.append(raw)
        if raw.data is not None:
            good.append(raw.data)
        if len(good) >= DETECT_ROWS or len(head) >= 4 * DETECT_ROWS:
            break
    if not good:
        problems = [Problem(r.error.message, field=r.error.field, file=r.file or display, line=r.line)
                    for r in head if r.error is not None][:MAX_PROBLEMS_SHOWN]
        raise ProblemsError(problems or [Problem("the file has no rows", file=display)])
    if caption_folder:
        detection = detect_format(good, override=fmt or "captions", columns=columns or {"image": "file_name",
                                                                                        "text": "text"}, file=display)
        if not fmt:
            detection.reason = "an image folder with a .txt caption beside each image"
    else:
        detection = detect_format(good, override=fmt, columns=columns, file=display)
    return detection, chain(head, rows)


def _to_sample(raw: RawRow, detection: Detection, resolver: ImageResolver, job: _Job, file: str,
               default_id: str) -> Sample:
    spec = FORMATS[detection.format]
    data = raw.data
    for key in ("videos", "audios", "video", "audio"):
        if data.get(key):
            raise RowError("unsupported", f"'{key}' is not supported: only images and text", field=key)
    view = RowView(data, raw.line, detection.columns, job.memo, what=f"the {spec.title} format",
                   fallbacks=detection.fallbacks())
    draft = spec.convert(view, job.options)
    if not draft.messages:
        raise RowError("missing_field", "the row has no turns", field=draft.messages_field)
    place_images(draft.messages, len(draft.images), draft.images_field, draft.messages_field)
    check_turns(draft.messages, draft.fields)
    stored = [store_image(ref, where, resolver, job.store) for ref, where in draft.images]
    if draft.id is not None:
        job.note_id(draft.id, file, raw.line)
    return Sample(id=draft.id or default_id, messages=draft.messages, images=stored)


def _convert(rows: Iterator[RawRow], display: str, detection: Detection, resolver: ImageResolver, job: _Job,
             out: IO[str] | None, progress: Progress, report: ImportReport) -> int:
    kept = 0
    for raw in rows:
        report.rows_total += 1
        file = raw.file or display
        stem = Path(file).stem  # a split's shards each number their rows from 1: the file keeps default ids apart
        try:
            if raw.error is not None:
                raise raw.error
            sample = _to_sample(raw, detection, resolver, job, file, f"{stem}-{raw.line or report.rows_total}")
        except RowError as e:
            job.log.add_row_error(e, file, raw.line)
            continue
        except RecursionError:
            job.log.add_row_error(RowError("too_deep", "the row nests too deeply to read"), file, raw.line)
            continue
        if out is not None:
            out.write(json.dumps(sample.to_dict(), ensure_ascii=False) + "\n")
        kept += 1
        job.ticker(progress.fraction, f"checked {report.rows_total:,} rows of {display}")
    return kept


def plan_any(source: Path | HubSource, workdir: Path, limits: ImportLimits, *, data_file: str | None = None,
             image_root: Path | None = None, config: str | None = None, split: str | None = None,
             row_limit: int | None = None, shown_as: str | None = None, peek: bool = False) -> SourcePlan:
    """``plan_source`` for a path, ``plan_hub`` for a Hub dataset (``peek``: only its first rows are wanted)."""
    if isinstance(source, HubSource):
        from core.datasets.hub import plan_hub

        return plan_hub(source, limits, workdir=workdir, row_limit=row_limit, image_root=image_root, peek=peek)
    return plan_source(Path(source), workdir, limits, data_file=data_file, image_root=image_root, config=config,
                       split=split, shown_as=shown_as)


def _check_options(eval_ratio: float, encoding: str, row_limit: int | None) -> None:
    check_ratio(eval_ratio)
    problems = []
    try:
        codecs.lookup(encoding)
    except LookupError:
        problems.append(Problem(f"unknown text encoding {encoding!r}; for example utf-8, cp1252, latin-1 or gb18030",
                                field="encoding"))
    if row_limit is not None and (not isinstance(row_limit, int) or row_limit < 0):
        problems.append(Problem(f"the row limit must be a whole number of rows (0: all), got {row_limit!r}",
                                field="row_limit"))
    if problems:
        raise ProblemsError(problems)


def _run(source: Path | HubSource, workdir: Path, staging: Path | None, *, image_root, fmt, columns, eval_source,
         eval_ratio, seed, data_file, encoding, caption_prompt, limits, progress, config=None, split=None,
         row_limit=None, shown_as=None) -> ImportReport:
    limits = limits or ImportLimits.from_env()
    _check_options(eval_ratio, encoding, row_limit)
    row_limit = row_limit or None
    plan = plan_any(source, workdir, limits, data_file=data_file, image_root=image_root, config=config, split=split,
                    row_limit=row_limit, shown_as=shown_as)
    eval_plan = plan_source(Path(eval_source), workdir / "eval", limits, image_root=image_root) \
        if eval_source is not None else None
    if eval_plan is not None:
        if eval_plan.data_file is None:
            raise ProblemsError([Problem("the eval source must be a data file (or a folder or zip holding one)",
                                         field="eval_source")])
        plan.eval_file = eval_plan.data_file  # an eval source given by the user wins over one found beside the data
    log = ProblemLog(keep_per_kind=limits.max_problems_per_kind)
    images_dir = staging / "images" if staging is not None else None
    if images_dir is not None:
        images_dir.mkdir(parents=True)
    job = _Job(limits, ConvertOptions(caption_prompt=caption_prompt), log, ImageStore(images_dir, limits), encoding,
               _Ticker(progress, 0.0, 0.85 if plan.eval_file else 0.95))
    report = ImportReport("", "", image_root=plan.root_label, source_file=plan.display, source_note=plan.note,
                          origin=dict(plan.origin))
    if plan.table is not None:
        report.rows_available = plan.table.num_rows
    main_progress = Progress(1)
    rows = source_rows(plan, main_progress, log, limits, encoding, row_limit, job.ticker)
    detection, rows = _detect(rows, plan.display, job, fmt, columns, plan.caption_folder)
    report.format, report.format_reason = detection.format, detection.reason
    report.format_title, report.columns = detection.title, dict(detection.columns)
    resolver = ImageResolver(plan.root, plan.bases, shown=plan.show)
    resolvers = [resolver]
    out = (staging / SAMPLES_FILE).open("w", encoding="utf-8") if staging is not None else None
    try:
        report.rows_train = _convert(rows, plan.display, detection, resolver, job, out, main_progress, report)
    finally:
        if out is not None:
            out.close()
    if row_limit and report.rows_total >= row_limit:
        report.row_limit = row_limit
    if plan.eval_file is not None:
        eval_root = eval_plan if eval_plan is not None else plan
        display = eval_root.display if eval_plan is not None else str(plan.eval_file.relative_to(plan.folder))
        report.eval_file = display
        eval_resolver = ImageResolver(eval_root.root, eval_root.bases if eval_plan is not None else
                                      [plan.eval_file.parent, *plan.bases], shown=eval_root.show)
        resolvers.append(eval_resolver)
        job.ticker.start, job.ticker.span = 0.85, 0.1
        eval_progress = Progress(plan.eval_file.stat().st_size)
        eval_rows = read_rows(plan.eval_file, display, eval_progress, log, limits, encoding)
        eval_detection, eval_rows = _detect(eval_rows, display, job, detection.format, detection.columns, False)
        out = (staging / EVAL_FILE).open("w", encoding="utf-8") if staging is not None else None
        try:
            report.rows_eval = _convert(eval_rows, display, eval_detection, eval_resolver, job, out, eval_progress,
                                        report)
        finally:
            if out is not None:
                out.close()
    report.rows_kept = report.rows_train + report.rows_eval
    report.images = job.store.count
    report.image_note = "; ".join(n for n in (r.note() for r in resolvers) if n)
    report.problems = log.problems
    report.problem_counts = dict(log.counts)
    report.problem_groups = log.groups()
    if staging is None:
        return report  # a dry run reports even a dataset with no usable row
    if report.rows_kept == 0:
        raise DatasetImportError(log.problems[:MAX_PROBLEMS_SHOWN] or [Problem("the dataset has no rows",
                                                                               file=plan.display)], report)
    if report.rows_train == 0:
        raise DatasetImportError([Problem("no training rows are left after excluding the bad ones",
                                          file=plan.display), *log.problems[:MAX_PROBLEMS_SHOWN]], report)
    if eval_ratio > 0 and plan.eval_file is None:
        job.ticker(0.96, "splitting train/eval", force=True, absolute=True)
        report.rows_train, report.rows_eval = split_samples(staging, eval_ratio, seed)
    if report.rows_eval:
        write_split_info(staging, {"eval_file": EVAL_FILE, "rows_train": report.rows_train,
                                   "rows_eval": report.rows_eval, "eval_ratio": eval_ratio if not report.eval_file
                                   else None, "seed": seed, "eval_source": report.eval_file or None})
    return report


def _call(source, staging_parent: Path | None, dest_dir: Path | None, **kwargs) -> ImportReport:
    ticker = kwargs.get("progress")
    try:
        with tempfile.TemporaryDirectory(prefix=".import-", dir=staging_parent) as tmp:
            staging = Path(tmp) / "dataset" if dest_dir is not None else None
            report = _run(source, Path(tmp), staging, **kwargs)
            if staging is not None:
                report.written = True
                (staging / REPORT_FILE).write_text(json.dumps(report.summary(), indent=2, ensure_ascii=False),
                                                   encoding="utf-8")
                if report.origin:
                    (staging / SOURCE_FILE).write_text(json.dumps(report.origin, indent=2), encoding="utf-8")
                staging.rename(dest_dir)
    except DatasetImportError:
        raise
    except ProblemsError as e:
        raise DatasetImportError(e.problems) from None
    except OSError as e:
        raise DatasetImportError([Problem(f"could not read or write a file: {e}")]) from None
    if ticker is not None:
        ticker(1.0, f"{report.rows_kept:,} rows kept, {report.rows_excluded:,} excluded")
    return report


def import_dataset(source: Path | HubSource, dest_dir: Path, *, image_root: Path | None = None,
                   format: str | None = None, columns: dict[str, str] | None = None, eval_source: Path | None = None,
                   eval_ratio: float = 0.0, seed: int = 0, data_file: str | None = None, encoding: str = "utf-8",
                   caption_prompt: str = DEFAULT_CAPTION_PROMPT, limits: ImportLimits | None = None,
                   progress: ProgressCallback | None = None, config: str | None = None, split: str | None = None,
                   row_limit: int | None = None, shown_as: str | None = None) -> ImportReport:
    """Read ``source`` (a data file, a folder or a zip, a datasets folder, or a ``HubSource``) and create ``dest_dir``
    with samples.jsonl, images/ and report.json (plus eval.jsonl and split.json with an eval file or ratio; an eval
    file, given or found beside the data as val*/eval*/dev*, wins over the ratio). ``config`` and ``split`` choose
    within a datasets folder; ``row_limit`` reads only the first rows. Bad rows are excluded and counted in the
    report; when no row is usable, or on a fatal problem, DatasetImportError is raised and nothing is left."""
    dest_dir = Path(dest_dir)
    if dest_dir.exists():
        raise DatasetImportError([Problem(f"a dataset folder already exists at {dest_dir}")])
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    return _call(source, dest_dir.parent, dest_dir, image_root=image_root, fmt=format, columns=columns,
                 eval_source=eval_source, eval_ratio=eval_ratio, seed=seed, data_file=data_file, encoding=encoding,
                 caption_prompt=caption_prompt, limits=limits, progress=progress, config=config, split=split,
                 row_limit=row_limit, shown_as=shown_as)


def validate_dataset(source: Path | HubSource, *, image_root: Path | None = None, format: str | None = None,
                     columns: dict[str, str] | None = None, eval_source: Path | None = None,
                     data_file: str | None = None, encoding: str = "utf-8",
                     caption_prompt: str = DEFAULT_CAPTION_PROMPT, limits: ImportLimits | None = None,
                     progress: ProgressCallback | None = None, workdir: Path | None = None, config: str | None = None,
                     split: str | None = None, row_limit: int | None = None,
                     shown_as: str | None = None) -> ImportReport:
    """The same checks as ``import_dataset`` (every row, every image decoded) without writing a dataset; the report
    comes back even when no row is usable (only unreadable sources and undetectable formats raise)."""
    return _call(source, workdir, None, image_root=image_root, fmt=format, columns=columns, eval_source=eval_source,
                 eval_ratio=0.0, seed=0, data_file=data_file, encoding=encoding, caption_prompt=caption_prompt,
                 limits=limits, progress=progress, config=config, split=split, row_limit=row_limit,
                 shown_as=shown_as)
