"""Markdown and tables for the Datasets tab: inspection, validation report, registered list, statistics, preview."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from core.datasets.limits import human_size
from core.datasets.preview import PreviewRow
from core.datasets.stats import DatasetStats
from core.problems import Problem, ProblemsError
from core.store.registry import DatasetRecord
from webui.messages import code, esc, failure_markdown

SHOWN_PER_GROUP = 5  # problems shown in full per kind
TABLE_COLUMNS = ["name", "format", "train", "eval", "images", "excluded", "validation", "source", "added"]


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def validation_summary(summary: dict) -> str:
    """One line for the table: clean, or how many rows were excluded and the most frequent kinds of problem."""
    groups = summary.get("problem_groups") or []
    excluded = summary.get("rows_excluded", 0)
    if not groups and not excluded:
        return "clean"
    kinds = ", ".join(f"{g['count']} {g['title']}" for g in groups[:3]) + (", …" if len(groups) > 3 else "")
    head = f"{excluded} rows excluded" if excluded else "warnings"
    return f"{head}: {kinds}" if kinds else head


def dataset_table(records: list[DatasetRecord]) -> pd.DataFrame:
    rows = []
    for d in records:
        s = d.summary
        rows.append({"name": d.name, "format": d.format, "train": s.get("rows_train") or d.rows,
                     "eval": s.get("rows_eval", 0),
                     "images": d.images, "excluded": s.get("rows_excluded", 0), "validation": validation_summary(s),
                     "source": d.source, "added": dt.datetime.fromtimestamp(d.created_at).strftime("%Y-%m-%d %H:%M")})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _problem_line(p: dict) -> str:
    problem = Problem(**p)
    where = problem.where()
    icon = "⚠️" if problem.severity == "warning" else "❌"
    return f"  - {icon} {code(where) + ' — ' if where else ''}{esc(problem.message)}"


def problems_section(summary: dict) -> list[str]:
    groups = summary.get("problem_groups") or []
    if not groups:
        return []
    total = summary.get("problem_count", sum(g["count"] for g in groups))
    lines = [f"\n**{total:,} problem{'s' if total != 1 else ''}, by kind** (the first ones in full):"]
    for g in groups:
        icon = "⚠️" if g["severity"] == "warning" else "❌"
        lines.append(f"- {icon} **{esc(g['title'])}**: {g['count']:,}")
        lines += [_problem_line(p) for p in g["problems"][:SHOWN_PER_GROUP]]
        if g["count"] > SHOWN_PER_GROUP:
            lines.append(f"  - … and {g['count'] - min(g['shown'], SHOWN_PER_GROUP):,} more of this kind")
    return lines


def report_markdown(summary: dict, name: str | None = None) -> str:
    """The validation report; ``name`` when the dataset was registered, None for a check only."""
    kept, total = summary["rows_kept"], summary["rows_total"]
    title = f"✅ Registered **{esc(name)}**: " if name else "🔎 Checked (nothing registered): "
    lines = [f"{title}{plural(kept, 'row')}, {plural(summary['images'], 'image')} "
             f"(format: {esc(summary.get('format_title') or summary['format'])} — {esc(summary['format_reason'])})."]
    if summary.get("source_file"):
        note = f" ({esc(summary['source_note'])})" if summary.get("source_note") else ""
        lines.append(f"- Data file: {code(summary['source_file'])}{note}")
    origin = summary.get("origin") or {}
    if origin.get("hub_id"):
        lines.append(f"- Hub dataset {code(origin['hub_id'])} at revision {code(origin.get('revision') or '?')}"
                     + "".join(f", {k} {code(origin[k])}" for k in ("config", "split") if origin.get(k))
                     + " (recorded with the dataset).")
    if summary.get("row_limit"):
        available = f" of {summary['rows_available']:,}" if summary.get("rows_available") else ""
        lines.append(f"- Only the first {summary['row_limit']:,} rows{available} were read (the row limit).")
    if summary.get("image_root"):
        lines.append(f"- Images were resolved against {code(summary['image_root'])}"
                     + (f"; {esc(summary['image_note'])}" if summary.get("image_note") else "") + ".")
    if summary.get("rows_eval"):
        origin = f"from {code(summary['eval_file'])}" if summary.get("eval_file") else "split off at random"
        lines.append(f"- Split: {summary['rows_train']:,} rows to train on, {summary['rows_eval']:,} for "
                     f"evaluation ({origin}).")
    excluded = total - kept
    lines.append(f"- ⚠️ **{excluded:,} of {total:,} rows were excluded** because of the problems below."
                 if excluded else f"- All {total:,} rows passed validation.")
    return "\n".join(lines + problems_section(summary))


def hub_lines(hub: dict | None) -> list[str]:
    """What a Hub import will read and download, said before it starts: revision, split, rows, files, bytes."""
    if not hub:
        return []
    where = ", ".join(f"{k} {code(hub[k])}" for k in ("config", "split") if hub.get(k))
    rows = f"{hub['rows']:,} rows" if hub.get("rows") else "rows not stated by the dataset"
    lines = [f"**Hub dataset {code(hub['repo_id'])}** at revision {code(hub['revision'][:12])} "
             f"({esc(hub['revision_asked'])}) — {where}: {rows} in {plural(hub['files'], 'file')}, "
             f"{human_size(hub['total_bytes'])}."]
    others = [f"{esc(name)} ({n:,})" if n else esc(name) for name, n in (hub.get("splits") or {}).items()
              if name != hub.get("split")]
    if others:
        lines.append(f"- Other splits: {', '.join(others)}")
    limit = hub.get("row_limit")
    reads = f"the first {limit:,} rows" if limit else "every row"
    if hub["mode"] == "stream":
        lines.append(f"- The import streams {reads}: nothing is stored in the cache.")
    elif hub.get("download_bytes"):
        lines.append(f"- The import reads {reads}: it downloads about {human_size(hub['download_bytes'])} "
                     f"({plural(hub['files_needed'], 'file')} of {hub['files']}) into {code(hub['cache_dir'])}.")
    else:
        lines.append(f"- The import reads {reads} from the files already in {code(hub['cache_dir'])}.")
    token = f"your token from {esc(hub['token'])} (not shown)" if hub.get("token") else \
        "no token (public datasets only)"
    access = "gated, " if hub.get("gated") else "private, " if hub.get("private") else ""
    lines.append(f"- Access: {access}{token}.")
    return lines


def _first_row(info: dict) -> list[str]:
    if not info.get("rows"):
        return []
    first = json.dumps(info["rows"][0], ensure_ascii=False, indent=1)[:1500].replace("```", "'''")
    return [f"\nFirst row:\n```json\n{first}\n```"]


def inspection_markdown(info: dict) -> str:
    """What the Inspect step found: the format and why, the data file, the image root, the first rows."""
    hub = hub_lines(info.get("hub"))
    if not info.get("format"):
        problems = [Problem(**p) for p in info.get("problems", [])]
        head = "**The format could not be detected.** Choose it below and map the columns, or fix the file:"
        text = failure_markdown(ProblemsError(problems)).replace("**Please fix these first:**", head, 1) \
            if problems else head
        keys = ", ".join(code(k) for k in info.get("keys") or [])
        return "\n".join([*hub, *([""] if hub else []), text, *([f"\nColumns in the file: {keys}"] if keys else []),
                          *_first_row(info)])
    lines = [*hub, *([""] if hub else []), f"**Detected format: {esc(info['title'])}** — {esc(info['reason'])}."]
    if info.get("source_file"):
        note = f" ({esc(info['source_note'])})" if info.get("source_note") else ""
        lines.append(f"- Data file: {code(info['source_file'])}{note}")
    if info.get("columns"):
        mapped = ", ".join(f"{esc(slot)} ← {code(col)}" for slot, col in info["columns"].items())
        lines.append(f"- Columns: {mapped}")
    others = [c for c in info.get("candidates", []) if c["format"] != info["format"]]
    if others:
        lines.append("- Also possible: " + ", ".join(esc(c["format"]) for c in others))
    if info.get("image_root"):
        lines.append(f"- Images will be looked up under {code(info['image_root'])}")
    lines += _first_row(info)
    for p in info.get("problems", [])[:5]:
        lines.append(_problem_line(p))
    return "\n".join(lines)


def stats_markdown(stats: DatasetStats) -> str:
    lengths = stats.lengths
    lines = [f"**{stats.rows:,} training rows**" + (f" (+{stats.rows_eval:,} for evaluation)" if stats.rows_eval
                                                   else "")
             + f", {stats.turns:,} answers to learn (up to {stats.max_turns} per row), "
               f"{stats.images:,} images ({stats.distinct_images:,} distinct; {stats.rows_with_images:,} rows "
               f"have any).",
             f"- Tokens with {code(stats.model)}"
             + (f" over the first {stats.tokenized:,} rows" if stats.tokenized < stats.rows else "")
             + (": min {min:,} · median {median:,.0f} · p95 {p95:,.0f} · max {max:,}".format(**lengths)
                if lengths else ": none could be counted")]
    if stats.total_tokens:
        lines.append(f"- The loss trains on {stats.trained_tokens:,} of {stats.total_tokens:,} tokens kept "
                     f"({100 * stats.trained_tokens / stats.total_tokens:.0f}%): the assistant's answers.")
    cut = "⚠️ " if stats.truncated else "✅ "
    lines.append(f"- {cut}Max length {stats.max_length:,} cuts **{stats.truncated:,}** rows; "
                 f"**{stats.untrainable:,}** would have nothing left to learn (or a cut image) and are skipped "
                 "by the trainer.")
    if stats.unencodable:
        lines.append(f"- ❌ {stats.unencodable:,} rows cannot be rendered by this model's chat template: "
                     f"{esc(stats.encode_problem)}")
    if stats.duplicates or stats.conflicting:
        examples = ", ".join(f"{code(a)} = {code(b)}" for a, b in stats.duplicate_examples)
        lines.append(f"- ⚠️ {stats.duplicates:,} duplicate rows" + (f" (e.g. {examples})" if examples else "")
                     + (f"; {stats.conflicting:,} rows repeat an earlier prompt with a different answer"
                        if stats.conflicting else "") + ".")
    else:
        lines.append("- No duplicate rows.")
    return "\n".join(lines)


def histogram_frame(stats: DatasetStats | None) -> pd.DataFrame:
    """Rows per token-length bin, split into those that fit the max length and those it cuts. The plot orders its
    bars by label, so labels are right-aligned with spaces: "  90–99" sorts before "100–109"."""
    labels = [str(b["start"]) if b["end"] - b["start"] == 1 else f"{b['start']}–{b['end'] - 1}"
              for b in (stats.histogram if stats else [])]
    width = max(map(len, labels), default=0)
    rows = []
    for label, b in zip(labels, stats.histogram if stats else [], strict=True):
        rows.append({"tokens": label.rjust(width), "start": b["start"], "rows": b["fits"], "max length": "fits"})
        rows.append({"tokens": label.rjust(width), "start": b["start"], "rows": b["cut"], "max length": "cut"})
    frame = pd.DataFrame(rows, columns=["tokens", "start", "rows", "max length"])
    return frame.astype({"tokens": str, "start": int, "rows": int, "max length": str})


def conversation_frame(row: PreviewRow | None) -> pd.DataFrame:
    rows = [{"role": m.role, "text": m.content} for m in (row.messages if row else [])]
    return pd.DataFrame(rows, columns=["role", "text"])


def preview_info(row: PreviewRow, rows_label: str = "") -> str:
    if row.problem:
        return f"❌ Row {row.index} ({code(row.id)}): {esc(row.problem)}"
    parts = [f"Row **{row.index}** {rows_label}({code(row.id)}): {row.length:,} tokens, **{row.trained:,} trained** "
             f"(highlighted), {row.kept - row.trained:,} masked"]
    if row.truncated:
        parts.append(f", ⚠️ {row.length - row.kept:,} cut by max length {row.max_length:,}")
    if not row.trainable:
        parts.append(" — ❌ the trainer skips this row: nothing left to learn or an image cut in half")
    return "".join(parts) + "."


def highlighted(row: PreviewRow | None) -> list[tuple[str, str | None]]:
    """Spans for gr.HighlightedText: trained and cut text labelled, masked text plain."""
    return [(text, kind) for text, kind in row.spans] if row else []
