"""The studio opens in a real browser: every tab is there, and Check answers in the Train tab."""

from __future__ import annotations


def test_every_tab_opens_and_check_answers(page) -> None:
    for name in ("Datasets", "Train", "Runs", "Chat", "Export"):
        page.get_by_role("tab", name=name).click()
        assert page.get_by_role("tab", name=name).get_attribute("aria-selected") == "true"
    page.get_by_role("tab", name="Train").click()
    page.get_by_role("button", name="Check", exact=True).click()
    page.get_by_text("Ready to start").wait_for(timeout=30_000)


def test_the_datasets_tabs_messages_follow_the_pages_language(zh_page) -> None:
    from pathlib import Path

    source = Path(__file__).resolve().parents[1] / "data" / "bad_inputs" / "roles_and_order.jsonl"
    tab = zh_page
    tab.get_by_text("个参与训练").first.wait_for(timeout=30_000)  # the row preview, built on the server at load
    tab.get_by_role("tab", name="服务器上的路径").click()
    tab.get_by_label("服务器上的文件、文件夹或 zip").fill(str(source))
    tab.get_by_role("button", name="仅校验", exact=True).click()
    tab.get_by_text("已校验（未注册）").wait_for(timeout=60_000)
    assert tab.get_by_text("行被排除").count() and tab.get_by_text("按类别列出").count()
    # (the preview's legend, trained / masked / cut, is the highlighter's category names and stays English)
    assert tab.get_by_text("rows were excluded").count() == 0 and tab.get_by_text("(highlighted)").count() == 0
