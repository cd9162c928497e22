"""Parquet and Arrow files (what the Hub and ``datasets`` write), read in batches; image features come as
``{"bytes", "path"}`` objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.datasets.rows import Progress, RawRow
from core.problems import Problem, ProblemsError

BATCH_ROWS = 256


def _pyarrow(name: str):
    try:
        import pyarrow
    except ImportError:
        raise ProblemsError([Problem("reading Parquet and Arrow files needs the pyarrow package (pip install "
                                     "pyarrow)", file=name)]) from None
    return pyarrow


def _batches_rows(batches, total: int, progress: Progress) -> Iterator[RawRow]:
    row = 0
    for batch in batches:
        for data in batch.to_pylist():
            row += 1
            progress.done = int(progress.total * row / max(total, 1))
            yield RawRow(row, data)


def read_parquet(path: Path, name: str, progress: Progress) -> Iterator[RawRow]:
    """A Parquet file, in batches; the row number stands in for the line."""
    _pyarrow(name)
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several error types for bad files
        raise ProblemsError([Problem(f"not a readable Parquet file: {e}", file=name)]) from None
    yield from _batches_rows(pf.iter_batches(batch_size=BATCH_ROWS), pf.metadata.num_rows, progress)


def read_arrow(path: Path, name: str, progress: Progress) -> Iterator[RawRow]:
    """An Arrow file, in the stream format ``datasets`` writes (or the random-access file format)."""
    pa = _pyarrow(name)
    import pyarrow.ipc as ipc

    source = pa.memory_map(str(path))
    try:
        try:
            reader = ipc.open_stream(source)
            batches = iter(reader)
            total = None
        except pa.ArrowInvalid:
            reader = ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            total = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
    except Exception as e:  # noqa: BLE001 - pyarrow raises several error types for bad files
        source.close()
        raise ProblemsError([Problem(f"not a readable Arrow file: {e}", file=name)]) from None
    with source:
        if total is None:  # the stream format has no row count up front: go by bytes
            size = max(path.stat().st_size, 1)
            row = 0
            for batch in batches:
                for data in batch.to_pylist():
                    row += 1
                    yield RawRow(row, data)
                progress.done = int(progress.total * min(source.tell() / size, 1.0))
        else:
            yield from _batches_rows(batches, total, progress)
