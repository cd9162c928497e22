"""Formats problems and failures as readable Markdown, so no traceback reaches a person."""

from __future__ import annotations

from core.problems import Problem, ProblemsError


def problems_markdown(problems: list[Problem], title: str = "Please fix these first:") -> str:
    if not problems:
        return ""
    lines = [f"**{title}**", ""]
    for p in problems:
        where = p.where()
        icon = "⚠️" if p.severity == "warning" else "❌"
        lines.append(f"- {icon} {'`' + where + '` — ' if where else ''}{p.message}")
    return "\n".join(lines)


def failure_markdown(error: BaseException) -> str:
    """A sentence for any exception: problems listed one per line, anything else as its type and message."""
    if isinstance(error, ProblemsError):
        return problems_markdown(error.problems)
    if isinstance(error, KeyError):
        return f"❌ {error.args[0] if error.args else error}"
    return f"❌ {type(error).__name__}: {error}"
