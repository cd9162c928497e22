"""A split read as one source: its files in order (Parquet, Arrow, JSON or CSV shards, fetched when first needed),
or rows handed over by the ``datasets`` library (a ``save_to_disk`` folder, a Hub stream)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.datasets.limits import ImportLimits, human_size
from core.datasets.problem_log import ProblemLog, RowError
from core.datasets.readers import DATA_SUFFIXES, read_rows
from core.datasets.rows import Progress, RawRow

StatusCallback = Callable[[float | None, str], None]  # (fraction of the import or None, message)
Fetch = Callable[[Callable[[int, int | None], None]], Path]  # fetch(on_bytes(done, total)) -> the local file


@dataclass
class TablePart:
    """One file of a split: ``path`` when it is on disk already, else ``fetch`` downloads it (into a cache)."""

    name: str  # as the person knows it: the path inside the repo or folder
    size: int = 0  # bytes, 0 when unknown
    path: Path | None = None
    fetch: Fetch | None = None
    cached: bool = True  # False: reading it means downloading ``size`` bytes first


@dataclass
class Table:
    """A split made of ``parts`` read in order, or of the rows ``stream`` yields."""

    display: str
    parts: list[TablePart] = field(default_factory=list)
    stream: Callable[[], Iterable[dict]] | None = None
    num_rows: int | None = None  # as the dataset's metadata says, when it says
    note: str = ""
    config: str | None = None  # the config (subset) and split chosen, for the registry
    split: str | None = None

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def unsupported_parts(self) -> list[str]:
        return [p.name for p in self.parts if not p.name.lower().endswith(DATA_SUFFIXES)]


def _plain(value: object) -> object:
    """Rows from ``datasets`` as the readers give them: dicts, lists, strings, numbers and bytes."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (bytes, bytearray, str)):
        return value.tolist()  # numpy arrays and scalars
    return value


def _stream_rows(table: Table, progress: Progress, row_limit: int | None) -> Iterator[RawRow]:
    progress.total = max(min(n for n in (table.num_rows, row_limit) if n) if (table.num_rows or row_limit) else 1, 1)
    for number, row in enumerate(table.stream(), 1):
        progress.done = number
        if not isinstance(row, dict):
            yield RawRow(number, None, RowError("wrong_type", "expected a row object"), file=table.display)
            continue
        try:
            yield RawRow(number, _plain(row), file=table.display)
        except RecursionError:
            yield RawRow(number, None, RowError("too_deep", "the row nests too deeply to read"), file=table.display)


def table_rows(table: Table, progress: Progress, log: ProblemLog, limits: ImportLimits, encoding: str,
               row_limit: int | None = None, status: StatusCallback | None = None) -> Iterator[RawRow]:
    """Every row of the split, each naming the file it came from; a part is fetched only when its rows are needed,
    so a row limit that the first files satisfy never downloads the others."""
    if table.stream is not None:
        yield from _stream_rows(table, progress, row_limit)
        return
    total = max(table.size, 1)
    progress.total = total
    before = 0
    for index, part in enumerate(table.parts, 1):
        path = part.path
        if path is None:
            def on_bytes(done: int, size: int | None, part: TablePart = part, index: int = index) -> None:
                if status is not None:
                    shown = f"{human_size(done)} of {human_size(size)}" if size else human_size(done)
                    status(None, f"downloading {part.name} ({index} of {len(table.parts)}): {shown}")

            path = part.fetch(on_bytes)
        size = part.size or path.stat().st_size
        sub = Progress(size)
        for raw in read_rows(path, part.name, sub, log, limits, encoding):
            if raw.file is None:
                raw.file = part.name
            progress.done = before + int(sub.fraction * size)
            yield raw
        before += size
