"""The Evaluate tab in a Chinese browser: Check's answer, built on the server, comes back in Chinese."""

from __future__ import annotations


def test_the_evaluate_tabs_check_answers_in_the_pages_language(zh_page) -> None:
    tab = zh_page
    tab.get_by_role("tab", name="评测").click(timeout=30_000)
    tab.get_by_role("button", name="检查", exact=True).click()
    tab.get_by_text("请先修正以下问题").wait_for(timeout=30_000)  # the bundled sample has no eval split
    assert tab.get_by_text("该数据集没有评测划分，因此评分的是训练行").count()
    assert tab.get_by_text("Please fix").count() == 0 and tab.get_by_text("training rows are scored").count() == 0
