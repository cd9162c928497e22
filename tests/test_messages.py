"""Messages shown in the UI keep the person's text visible: quoted data is escaped, never interpreted as markup."""

from __future__ import annotations

from core.problems import Problem, ProblemsError
from webui.messages import failure_markdown, problems_markdown


def test_problem_text_with_markup_characters_is_escaped() -> None:
    text = problems_markdown([Problem("2 <image> placeholders but 1 image; got *bold* `x`", field="messages",
                                      file="data.json", line=3)])
    assert "&lt;image&gt;" in text and "\\*bold\\*" in text
    assert "`data.json:3, field 'messages'`" in text


def test_failures_of_any_kind_become_one_escaped_sentence() -> None:
    assert failure_markdown(RuntimeError("bad <script>")) == "❌ RuntimeError: bad &lt;script&gt;"
    assert "❌" in failure_markdown(ProblemsError([Problem("x")]))
