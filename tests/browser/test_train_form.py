"""The Train form in a real browser: one message naming the field and no toast for -5 in LoRA rank, QLoRA showing its
4-bit fields at once, and the interface in Chinese, chosen by the browser or by the switch at the top."""

from __future__ import annotations

from conftest import ARTIFACTS

TOAST = '[data-testid="toast-body"]'


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def open_train(page) -> None:
    page.get_by_role("tab", name="Train").click()
    page.get_by_label("LoRA rank", exact=True).wait_for()


def test_minus_five_in_lora_rank_gets_one_message_naming_it_and_no_toast(page) -> None:
    open_train(page)
    page.get_by_text("Predicted peak").first.wait_for(timeout=30_000)
    shot(page, "train-form-en.png")
    rank = page.get_by_label("LoRA rank", exact=True)
    rank.fill("")  # clearing a box to retype it was a toast of its own
    rank.press_sequentially("-5")
    rank.press("Tab")
    page.get_by_role("button", name="Check", exact=True).click()
    page.get_by_text("Please fix these first:").wait_for(timeout=30_000)
    problems = page.locator("li", has_text="LoRA rank")
    assert problems.count() == 1 and "must be at least 1; got -5" in problems.inner_text()
    page.get_by_text("Fix LoRA rank").wait_for(timeout=30_000)  # the memory panel says the same
    assert page.locator(TOAST).count() == 0
    shot(page, "train-lora-rank-minus5.png")
    rank.fill("8")  # fixed: the message goes without pressing Check again
    rank.press("Tab")
    page.get_by_text("Ready to start").wait_for(timeout=30_000)
    assert page.get_by_text("Please fix these first:").count() == 0 and page.locator(TOAST).count() == 0
    assert page.get_by_text("Predicted peak").count() and page.get_by_text("Fix LoRA rank").count() == 0


def test_qlora_shows_its_4bit_nf4_base_at_once_and_hides_lora_only_for_others(page) -> None:
    open_train(page)
    assert not page.get_by_label("4-bit type", exact=True).is_visible()
    page.get_by_label("QLoRA (LoRA on a 4-/8-bit base)").check()
    page.get_by_label("4-bit type", exact=True).wait_for(timeout=10_000)
    assert page.get_by_label("Quantized base (QLoRA)", exact=True).input_value() == "4bit"
    assert page.get_by_label("4-bit type", exact=True).input_value() == "nf4"
    page.get_by_label("Prompt tuning").check()
    page.get_by_label("Virtual tokens", exact=True).wait_for(timeout=10_000)
    assert not page.get_by_label("LoRA rank", exact=True).is_visible()


def test_the_browsers_language_chooses_chinese(zh_page) -> None:
    tab = zh_page
    tab.get_by_role("tab", name="训练").wait_for(timeout=30_000)
    assert tab.get_by_role("tab", name="Train").count() == 0
    tab.get_by_role("tab", name="训练").click()
    tab.get_by_text("预计峰值").first.wait_for(timeout=30_000)  # the memory estimate, built on the server


def test_switching_to_chinese_changes_the_tabs_and_checks_messages_and_is_remembered(page) -> None:
    page.get_by_label("简体中文").check()
    page.get_by_role("tab", name="训练").wait_for(timeout=10_000)
    assert page.get_by_role("tab", name="Datasets").count() == 0 and page.get_by_role("tab", name="数据集").count()
    page.get_by_role("tab", name="训练").click()
    page.get_by_text("预计峰值").first.wait_for(timeout=30_000)  # the estimate is drawn again in Chinese
    assert page.get_by_text("Predicted peak").count() == 0
    rank = page.get_by_label("LoRA 秩", exact=True)
    rank.fill("-5")
    rank.press("Tab")
    page.get_by_role("button", name="检查", exact=True).click()
    page.get_by_text("请先修正以下问题：").wait_for(timeout=30_000)
    assert "不能小于 1; 当前为 -5" in page.locator("li", has_text="LoRA 秩").inner_text()
    shot(page, "ui-zh-cn.png")
    page.reload()
    page.get_by_role("tab", name="运行").wait_for(timeout=30_000)  # the choice outlives the page
    assert page.get_by_role("tab", name="Runs").count() == 0


def test_the_upload_box_clears_after_registering(page, tmp_path) -> None:
    import zipfile
    from pathlib import Path

    sample = Path(__file__).resolve().parents[2] / "assets" / "sample_dataset"
    archive = tmp_path / "colours.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(sample / "data.json", "colours/data.json")
        for image in sorted((sample / "images").iterdir()):
            zf.write(image, f"colours/images/{image.name}")
    upload = page.locator("#dataset-files")
    upload.locator("input[type=file]").set_input_files(str(archive))
    upload.get_by_text("colours.zip").wait_for(timeout=15_000)
    page.get_by_label("Name", exact=True).fill("uploaded-colours")
    page.get_by_role("button", name="Validate and register").click()
    page.get_by_text("Registered").first.wait_for(timeout=60_000)
    upload.get_by_text("Drop File Here").wait_for(timeout=10_000)  # the box is empty again
    assert upload.get_by_text("colours.zip").count() == 0
    assert page.locator(TOAST).count() == 0
