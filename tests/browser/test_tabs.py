"""The studio opens in a real browser: every tab is there, and Check answers in the Train tab."""

from __future__ import annotations


def test_every_tab_opens_and_check_answers(page) -> None:
    for name in ("Datasets", "Train", "Runs", "Chat", "Export"):
        page.get_by_role("tab", name=name).click()
        assert page.get_by_role("tab", name=name).get_attribute("aria-selected") == "true"
    page.get_by_role("tab", name="Train").click()
    page.get_by_role("button", name="Check", exact=True).click()
    page.get_by_text("Ready to start").wait_for(timeout=30_000)
