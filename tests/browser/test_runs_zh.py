"""The Runs tab in a Chinese browser: a run's details, its raw metrics, Stop's answer and the live refresh come out in
Chinese, and after a switch to English the live refresh keeps drawing English."""

from __future__ import annotations

import time

from test_runs_tab import finished_run

HAS_TEXT = "(text) => document.body.innerText.includes(text)"


def test_the_runs_tabs_messages_follow_the_pages_language(zh_page, studio_server) -> None:
    _url, studio = studio_server
    tab = zh_page
    run_id = finished_run(studio, "颜色-lora", metrics=60)
    tab.get_by_role("tab", name="运行").click()  # (its label carries an invisible mark)
    tab.get_by_role("combobox", name="运行", exact=True).click()
    tab.get_by_role("option", name=f"{run_id}: 颜色-lora（已完成）", exact=True).click()
    tab.get_by_text(f"运行 {run_id} — 颜色-lora").wait_for(timeout=30_000)
    assert tab.get_by_text("命令行方式：").count() and tab.get_by_text("Headless command").count() == 0
    tab.get_by_text("原始指标").first.click()
    tab.get_by_text("第 11–60 行，共 60 行。").wait_for(timeout=30_000)
    tab.get_by_role("button", name="停止运行", exact=True).click()
    tab.get_by_text("该运行当前不在运行中。").wait_for(timeout=30_000)
    tab.wait_for_function(HAS_TEXT, arg="✅ 已完成", timeout=30_000)  # the table, drawn by the timer
    assert tab.get_by_text("That run is not running").count() == 0

    tab.get_by_text("English", exact=True).click()  # the switch redraws; the timer then reads the new language
    tab.get_by_text("Headless command:").wait_for(timeout=30_000)
    time.sleep(2.5)  # at least one more tick of the live refresh
    assert tab.get_by_text("Headless command:").count() and tab.get_by_text("命令行方式").count() == 0
    assert tab.evaluate(HAS_TEXT, "✅ completed") and not tab.evaluate(HAS_TEXT, "✅ 已完成")
