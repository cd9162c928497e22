"""The Chat tab's server-built messages follow the page's language in a real browser (zh-CN)."""

from __future__ import annotations

from conftest import ARTIFACTS


def test_the_chat_tabs_memory_line_and_notice_follow_the_pages_language(zh_page) -> None:
    tab = zh_page
    tab.get_by_role("tab", name="对话").click()
    tab.get_by_label("4 位（NF4）").check()  # another loading: the memory line is written anew
    tab.get_by_text("对话约需").wait_for(timeout=30_000)
    tab.get_by_role("button", name="发送", exact=True).click()  # nothing typed: the notice says so
    tab.get_by_text("请先输入消息。").wait_for(timeout=30_000)
    assert tab.get_by_text("Chat needs about").count() == 0 and tab.get_by_text("Type a message").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "chat-zh-cn.png"), full_page=True)
