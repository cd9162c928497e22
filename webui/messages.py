"""Formats problems and failures as readable Markdown, so no traceback reaches a person."""

from __future__ import annotations

from core.problems import Problem, ProblemsError

MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]#|~"} | {"<": "&lt;", ">": "&gt;", "&": "&amp;"})


def esc(text: object) -> str:
    """Text from a dataset or a message, safe inside Markdown: no markup, no HTML, one line."""
    return str(text).translate(MD_SPECIAL).replace("\n", " ")


def code(text: object) -> str:
    """Text shown as inline code: only a backtick could break out of it."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def problems_markdown(problems: list[Problem], title: str = "Please fix these first:",
                      labels: dict[str, str] | None = None) -> str:
    """Every problem on its own line; a field named in ``labels`` is shown by its label, as the form shows it."""
    if not problems:
        return ""
    lines = [f"**{title}**", ""]
    for p in problems:
        icon = "⚠️" if p.severity == "warning" else "❌"
        if labels and p.field in labels and not p.file:
            lines.append(f"- {icon} **{esc(labels[p.field])}**: {esc(p.message)}")
            continue
        where = p.where()
        where_code = "`" + where.replace("`", "'") + "` — " if where else ""
        lines.append(f"- {icon} {where_code}{esc(p.message)}")
    return "\n".join(lines)


def failure_markdown(error: BaseException, title: str = "Please fix these first:") -> str:
    """A sentence for any exception: problems listed one per line under ``title``, anything else as its type and
    message."""
    if isinstance(error, ProblemsError):
        return problems_markdown(error.problems, title)
    if isinstance(error, KeyError):
        return f"❌ {esc(error.args[0] if error.args else error)}"
    return f"❌ {esc(type(error).__name__)}: {esc(error)}"
