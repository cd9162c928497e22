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
from webui.i18n import say
from webui.messages import code, esc, failure_markdown

SHOWN_PER_GROUP = 5  # problems shown in full per kind
TABLE_COLUMNS = ["name", "format", "train", "eval", "images", "excluded", "validation", "source", "added"]
PLEASE_FIX = "**Please fix these first:**"  # failure_markdown's title for problems (webui/messages.py)


def counted(key: str, n: int, locale: str | None = "en", **values: object) -> str:
    """A catalogue sentence about ``n`` things: ``<key>_one`` for exactly one, ``<key>_other`` otherwise; ``n`` goes
    in with thousands separators."""
    return say(f"{key}_one" if n == 1 else f"{key}_other", locale, n=f"{n:,}", **values)


def failure_text(error: BaseException, locale: str | None = "en") -> str:
    """failure_markdown with its title in ``locale``; core's messages stay as they are."""
    return failure_markdown(error, say("ds_please_fix", locale))


def validation_summary(summary: dict, locale: str | None = "en") -> str:
    """One line for the table: clean, or how many rows were excluded and the most frequent kinds of problem."""
    groups = summary.get("problem_groups") or []
    excluded = summary.get("rows_excluded", 0)
    if not groups and not excluded:
        return say("ds_summary_clean", locale)
    kinds = ", ".join(f"{g['count']} {g['title']}" for g in groups[:3]) + (", …" if len(groups) > 3 else "")
    head = say("ds_summary_excluded", locale, n=excluded) if excluded else say("ds_summary_warnings", locale)
    return say("ds_summary", locale, head=head, kinds=kinds) if kinds else head


def dataset_table(records: list[DatasetRecord], locale: str | None = "en") -> pd.DataFrame:
    rows = []
    for d in records:
        s = d.summary
        rows.append({"name": d.name, "format": d.format, "train": s.get("rows_train") or d.rows,
                     "eval": s.get("rows_eval", 0), "images": d.images, "excluded": s.get("rows_excluded", 0),
                     "validation": validation_summary(s, locale), "source": d.source,
                     "added": dt.datetime.fromtimestamp(d.created_at).strftime("%Y-%m-%d %H:%M")})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _problem_line(p: dict) -> str:
    problem = Problem(**p)
    where = problem.where()
    icon = "⚠️" if problem.severity == "warning" else "❌"
    return f"  - {icon} {code(where) + ' — ' if where else ''}{esc(problem.message)}"


def problems_section(summary: dict, locale: str | None = "en") -> list[str]:
    groups = summary.get("problem_groups") or []
    if not groups:
        return []
    total = summary.get("problem_count", sum(g["count"] for g in groups))
    lines = ["\n" + counted("ds_problems_by_kind", total, locale)]
    for g in groups:
        icon = "⚠️" if g["severity"] == "warning" else "❌"
        lines.append(f"- {icon} " + say("ds_group_count", locale, title=esc(g["title"]), n=f"{g['count']:,}"))
        lines += [_problem_line(p) for p in g["problems"][:SHOWN_PER_GROUP]]
        if g["count"] > SHOWN_PER_GROUP:
            more = g["count"] - min(g["shown"], SHOWN_PER_GROUP)
            lines.append("  - " + say("ds_more_of_kind", locale, n=f"{more:,}"))
    return lines


def _data_file_line(found: dict, locale: str | None) -> str:
    note = say("ds_paren", locale, text=esc(found["source_note"])) if found.get("source_note") else ""
    return "- " + say("ds_data_file_line", locale, file=code(found["source_file"]), note=note)


def _where(found: dict, locale: str | None) -> list[str]:
    """The config and split a Hub dataset was read from, each as "config `x`"."""
    return [say(f"ds_where_{k}", locale, value=code(found[k])) for k in ("config", "split") if found.get(k)]


def report_markdown(summary: dict, name: str | None = None, locale: str | None = "en") -> str:
    """The validation report; ``name`` when the dataset was registered, None for a check only."""
    kept, total = summary["rows_kept"], summary["rows_total"]
    values = {"rows": counted("ds_n_row", kept, locale), "images": counted("ds_n_image", summary["images"], locale),
              "format": esc(summary.get("format_title") or summary["format"]), "reason": esc(summary["format_reason"])}
    lines = [say("ds_report_registered", locale, name=esc(name), **values) if name
             else say("ds_report_checked", locale, **values)]
    if summary.get("source_file"):
        lines.append(_data_file_line(summary, locale))
    origin = summary.get("origin") or {}
    if origin.get("hub_id"):
        where = "".join(say("ds_sep", locale) + part for part in _where(origin, locale))
        lines.append("- " + say("ds_report_hub", locale, id=code(origin["hub_id"]),
                                revision=code(origin.get("revision") or "?"), where=where))
    if summary.get("row_limit"):
        limit = f"{summary['row_limit']:,}"
        lines.append("- " + (say("ds_report_row_limit_of", locale, limit=limit,
                                 available=f"{summary['rows_available']:,}") if summary.get("rows_available")
                             else say("ds_report_row_limit", locale, limit=limit)))
    if summary.get("image_root"):
        root = code(summary["image_root"])
        lines.append("- " + (say("ds_report_image_root_note", locale, root=root, note=esc(summary["image_note"]))
                             if summary.get("image_note") else say("ds_report_image_root", locale, root=root)))
    if summary.get("rows_eval"):
        origin = say("ds_split_from", locale, file=code(summary["eval_file"])) if summary.get("eval_file") \
            else say("ds_split_random", locale)
        lines.append("- " + say("ds_report_split", locale, train=f"{summary['rows_train']:,}",
                                eval=f"{summary['rows_eval']:,}", origin=origin))
    excluded = total - kept
    lines.append("- ⚠️ " + say("ds_report_excluded", locale, excluded=f"{excluded:,}", total=f"{total:,}")
                 if excluded else "- " + say("ds_report_all_passed", locale, total=f"{total:,}"))
    return "\n".join(lines + problems_section(summary, locale))


def hub_lines(hub: dict | None, locale: str | None = "en") -> list[str]:
    """What a Hub import will read and download, said before it starts: revision, split, rows, files, bytes."""
    if not hub:
        return []
    rows = say("ds_hub_rows", locale, n=f"{hub['rows']:,}") if hub.get("rows") else say("ds_hub_rows_unknown", locale)
    lines = [say("ds_hub_head", locale, repo=code(hub["repo_id"]), revision=code(hub["revision"][:12]),
                 asked=esc(hub["revision_asked"]), where=say("ds_sep", locale).join(_where(hub, locale)), rows=rows,
                 files=counted("ds_n_file", hub["files"], locale), size=human_size(hub["total_bytes"]))]
    others = [f"{esc(name)} ({n:,})" if n else esc(name) for name, n in (hub.get("splits") or {}).items()
              if name != hub.get("split")]
    if others:
        lines.append("- " + say("ds_hub_other_splits", locale, splits=", ".join(others)))
    limit = hub.get("row_limit")
    reads = say("ds_hub_reads_first", locale, limit=f"{limit:,}") if limit else say("ds_hub_reads_all", locale)
    cache = code(hub["cache_dir"])
    if hub["mode"] == "stream":
        lines.append("- " + say("ds_hub_streams", locale, reads=reads))
    elif hub.get("download_bytes"):
        lines.append("- " + say("ds_hub_downloads", locale, reads=reads, size=human_size(hub["download_bytes"]),
                                files=counted("ds_n_file", hub["files_needed"], locale),
                                needed=f"{hub['files_needed']:,}", total=hub["files"], cache=cache))
    else:
        lines.append("- " + say("ds_hub_cached", locale, reads=reads, cache=cache))
    token = say("ds_hub_token", locale, source=esc(hub["token"])) if hub.get("token") \
        else say("ds_hub_no_token", locale)
    access = say("ds_hub_gated", locale) if hub.get("gated") else say("ds_hub_private", locale) \
        if hub.get("private") else ""
    lines.append("- " + say("ds_hub_access", locale, access=access, token=token))
    return lines


def _first_row(info: dict, locale: str | None) -> list[str]:
    if not info.get("rows"):
        return []
    first = json.dumps(info["rows"][0], ensure_ascii=False, indent=1)[:1500].replace("```", "'''")
    return [f"\n{say('ds_first_row', locale)}\n```json\n{first}\n```"]


def inspection_markdown(info: dict, locale: str | None = "en") -> str:
    """What the Inspect step found: the format and why, the data file, the image root, the first rows."""
    hub = hub_lines(info.get("hub"), locale)
    if not info.get("format"):
        problems = [Problem(**p) for p in info.get("problems", [])]
        head = say("ds_undetected", locale)
        text = failure_markdown(ProblemsError(problems)).replace(PLEASE_FIX, head, 1) if problems else head
        keys = ", ".join(code(k) for k in info.get("keys") or [])
        columns = [f"\n{say('ds_file_columns', locale, keys=keys)}"] if keys else []
        return "\n".join([*hub, *([""] if hub else []), text, *columns, *_first_row(info, locale)])
    lines = [*hub, *([""] if hub else []),
             say("ds_detected", locale, title=esc(info["title"]), reason=esc(info["reason"]))]
    if info.get("source_file"):
        lines.append(_data_file_line(info, locale))
    if info.get("columns"):
        mapped = ", ".join(f"{esc(slot)} ← {code(col)}" for slot, col in info["columns"].items())
        lines.append("- " + say("ds_columns", locale, mapped=mapped))
    others = [c for c in info.get("candidates", []) if c["format"] != info["format"]]
    if others:
        lines.append("- " + say("ds_also_possible", locale, formats=", ".join(esc(c["format"]) for c in others)))
    if info.get("image_root"):
        lines.append("- " + say("ds_images_under", locale, root=code(info["image_root"])))
    lines += _first_row(info, locale)
    for p in info.get("problems", [])[:5]:
        lines.append(_problem_line(p))
    return "\n".join(lines)


def stats_markdown(stats: DatasetStats, locale: str | None = "en") -> str:
    lengths = stats.lengths
    shown = {"min": f"{lengths['min']:,}", "median": f"{lengths['median']:,.0f}", "p95": f"{lengths['p95']:,.0f}",
             "max": f"{lengths['max']:,}"} if lengths else {}
    lines = [say("ds_stats_head", locale, rows=f"{stats.rows:,}",
                 eval=say("ds_stats_eval", locale, n=f"{stats.rows_eval:,}") if stats.rows_eval else "",
                 turns=f"{stats.turns:,}", max_turns=stats.max_turns, images=f"{stats.images:,}",
                 distinct=f"{stats.distinct_images:,}", with_images=f"{stats.rows_with_images:,}"),
             "- " + say("ds_stats_tokens", locale, model=code(stats.model),
                        over=say("ds_stats_over", locale, n=f"{stats.tokenized:,}")
                        if stats.tokenized < stats.rows else "",
                        lengths=say("ds_stats_lengths", locale, **shown) if lengths
                        else say("ds_stats_uncounted", locale))]
    if stats.total_tokens:
        lines.append("- " + say("ds_stats_loss", locale, trained=f"{stats.trained_tokens:,}",
                                total=f"{stats.total_tokens:,}",
                                percent=f"{100 * stats.trained_tokens / stats.total_tokens:.0f}"))
    cut = "⚠️ " if stats.truncated else "✅ "
    lines.append(f"- {cut}" + say("ds_stats_cuts", locale, max_length=f"{stats.max_length:,}",
                                  truncated=f"{stats.truncated:,}", untrainable=f"{stats.untrainable:,}"))
    if stats.unencodable:
        lines.append("- ❌ " + say("ds_stats_unencodable", locale, n=f"{stats.unencodable:,}",
                                   problem=esc(stats.encode_problem)))
    if stats.duplicates or stats.conflicting:
        examples = ", ".join(f"{code(a)} = {code(b)}" for a, b in stats.duplicate_examples)
        lines.append("- ⚠️ " + say(
            "ds_stats_duplicates", locale, n=f"{stats.duplicates:,}",
            examples=say("ds_stats_examples", locale, examples=examples) if examples else "",
            conflicting=say("ds_stats_conflicting", locale, n=f"{stats.conflicting:,}") if stats.conflicting else ""))
    else:
        lines.append("- " + say("ds_stats_no_duplicates", locale))
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


def preview_info(row: PreviewRow, rows_label: str = "", locale: str | None = "en") -> str:
    if row.problem:
        return "❌ " + say("ds_preview_problem", locale, index=row.index, id=code(row.id), problem=esc(row.problem))
    cut = say("ds_preview_cut", locale, n=f"{row.length - row.kept:,}", max_length=f"{row.max_length:,}") \
        if row.truncated else ""
    return say("ds_preview_row", locale, index=row.index, label=rows_label, id=code(row.id), length=f"{row.length:,}",
               trained=f"{row.trained:,}", masked=f"{row.kept - row.trained:,}", cut=cut,
               skipped="" if row.trainable else say("ds_preview_skipped", locale))


def highlighted(row: PreviewRow | None) -> list[tuple[str, str | None]]:
    """Spans for gr.HighlightedText: trained and cut text labelled, masked text plain."""
    return [(text, kind) for text, kind in row.spans] if row else []
