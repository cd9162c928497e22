"""The comparison taken away: the summary (with the differing config fields) as CSV, each chart as PNG, written
into a fresh folder of their own under the exports folder."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

from core.compare.charts import draw_chart
from core.compare.config_diff import DiffRow
from core.compare.curves import CHARTS, X_AXES, Y_LABELS, Curve
from core.compare.summary import Summary
from core.export import default_zip_dir
from core.problems import Problem, ProblemsError

COMPARE_EXPORTS = "compare"
BEST_IN = "best in"


def export_folder(dest_dir: Path | None, run_ids: list[int]) -> Path:
    """A new, empty folder for one export (names are ours, never the user's); a link in place of the exports
    folder is refused rather than written through."""
    root = Path(dest_dir) if dest_dir is not None else default_zip_dir() / COMPARE_EXPORTS
    root.mkdir(parents=True, exist_ok=True)
    if root.is_symlink() or not root.is_dir():
        raise ProblemsError([Problem(f"{root} is not a plain folder; remove the link or file there", file=str(root))])
    prefix = "runs-" + "-".join(str(i) for i in run_ids) + "-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def _cell(value: object) -> object:
    """Spreadsheets run a cell that starts with = + - @ as a formula; a quote in front keeps it text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_rows(summary: Summary, diff: list[DiffRow]) -> list[list[object]]:
    """Header, then one row per run: raw values (seconds, GB, bytes), the differing config fields, and the
    columns where the run holds the best value."""
    header = ["run id", "run", *(f"{c.label} ({c.unit})" if c.unit else c.label for c in summary.columns),
              *(f"config: {d.label}" for d in diff), BEST_IN]
    rows: list[list[object]] = [header]
    for i, run_id in enumerate(summary.run_ids):
        values = summary.rows[i]
        best = [c.label for c in summary.columns if summary.is_best(c.key, run_id)]
        rows.append([run_id, summary.labels[i], *(values.get(c.key) for c in summary.columns),
                     *(d.values[i] for d in diff), "; ".join(best)])
    return rows


def write_csv(summary: Summary, diff: list[DiffRow], dest_dir: Path | None = None) -> Path:
    """The comparison as CSV (UTF-8 with a byte-order mark, so spreadsheets read accents right)."""
    folder = export_folder(dest_dir, summary.run_ids)
    path = folder / ("comparison-runs-" + "-".join(str(i) for i in summary.run_ids) + ".csv")
    tmp = folder / (".tmp-" + path.name)
    with tmp.open("x", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        for row in csv_rows(summary, diff):
            writer.writerow([_cell(v) for v in row])
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


def write_pngs(charts: dict[str, list[Curve]], x: str, run_ids: list[int], dest_dir: Path | None = None
               ) -> list[Path]:
    """One PNG per chart (``charts`` maps a CHARTS key to its curves), against the x-axis ``x``."""
    folder = export_folder(dest_dir, run_ids)
    return [draw_chart(lines, CHARTS[name], X_AXES[x], Y_LABELS[name], folder / f"{name}-by-{x}.png")
            for name, lines in charts.items()]
