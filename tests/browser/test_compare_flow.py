"""Comparing LoRA, QLoRA and LISA in a real browser: upload a dataset, launch the three runs, watch a chart grow in
the Runs tab, then in Compare check the table against the runs' metrics files, ask A/B chat and export the CSV."""

from __future__ import annotations

import csv
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from conftest import ARTIFACTS, ROOT

from core.runs.files import read_metrics

DATASET = "shapes-compare"
STEPS = 24
FINISHED = ("completed", "stopped", "failed", "failed_oom", "lost")


def launch_comparison(page, studio) -> list[int]:
    """LoRA, QLoRA and LISA on the same data and budget, with the Train tab's "Launch a comparison" (the queue
    runs them one after another); returns the new runs' ids in launch order."""
    before = {r.id for r in studio.list_runs()}
    page.get_by_role("tab", name="Train").click()
    field(page, "textbox", "Run name").fill("compare")  # the form's labels carry their help text too
    field(page, "combobox", "Dataset").click()
    page.get_by_role("option", name=DATASET, exact=True).click()
    for label, value in (("Max steps", STEPS), ("Micro-batch size", 2)):
        box = field(page, "spinbutton", label)
        box.fill(str(value))
        box.press("Tab")
    page.get_by_text("Launch a comparison").first.click()  # open its accordion (its content renders when opened)
    page.get_by_text("Queues one run per chosen method").wait_for()
    page.get_by_role("button", name="Launch a comparison").last.click()
    page.get_by_text("Queued a comparison").wait_for(timeout=60_000)
    return sorted(r.id for r in studio.list_runs() if r.id not in before)


def upload_dataset(page, tmp_path: Path) -> None:
    """The bundled sample as a zip, uploaded in the Datasets tab with a quarter held out for evaluation."""
    archive = tmp_path / "shapes.zip"
    source = ROOT / "assets" / "sample_dataset"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(source))
    page.get_by_role("tab", name="Datasets").click()
    page.locator("input[type=file]").first.set_input_files(str(archive))
    page.get_by_label("Name", exact=True).fill(DATASET)
    share = page.get_by_label("number input for Eval share")
    share.fill("0.25")
    share.press("Enter")
    page.get_by_role("button", name="Validate and register").click()
    page.get_by_text(f"Registered {DATASET}").wait_for(timeout=60_000)


RUNS_LOSS_CHART = "Loss: training"


# Every one of the first three A/B columns shows `turns` answers, none of them empty.
ANSWERED = ("turns => [0, 1, 2].every(i => { const a = [...document.querySelectorAll(`#compare-ab-answer-${i} "
            "[data-testid=\"bot\"]`)]; return a.length === turns && a.every(m => m.innerText.trim().length > 0); })")

ASKED = "document.querySelector('#compare-ab-question textarea').value === ''"


def line_points(chart) -> int:
    """How many points the longest line of a chart (a locator) has, read from its drawn SVG paths."""
    paths = chart.locator("g.mark-line path").all()
    counts = [len(re.findall(r"[ML]", p.get_attribute("d") or "")) for p in paths]
    return max(counts, default=0)


def settled(page) -> None:
    """Wait until no component shows Gradio's progress overlay (a screenshot otherwise catches it faded)."""
    page.wait_for_function("[...document.querySelectorAll('[data-testid=status-tracker]')]"
                           ".every(t => t.classList.contains('hide'))", timeout=30_000)


def field(page, role: str, label: str):
    """The visible input of a role whose name (its label, then its help text) starts with ``label``."""
    return page.get_by_role(role, name=re.compile("^" + re.escape(label))).filter(visible=True)


def pick(page, dropdown_label: str, option: re.Pattern) -> None:
    page.get_by_label(dropdown_label, exact=True).filter(visible=True).click()
    page.get_by_role("option", name=option).click()


def test_compare_lora_qlora_lisa(page, studio_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    studio = studio_server[1]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # three tiny jobs share the cores: one thread each is faster
    upload_dataset(page, tmp_path)
    ids = launch_comparison(page, studio)
    assert [studio.registry.get_run(i).method for i in ids] == ["lora", "qlora", "lisa"]
    first = ids[0]  # the queue starts it at once: its chart grows while the page watches

    page.get_by_role("tab", name="Runs").click()
    chart = page.locator("div.vega-embed", has_text=RUNS_LOSS_CHART)
    seen: list[int] = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        if not seen or seen[-1] == 0:
            try:
                pick(page, "Run", re.compile(f"^{first}: "))
            except Exception:  # noqa: BLE001 - the list refreshes every 2 s; try again next round
                pass
        seen.append(line_points(chart))
        if all(studio.registry.get_run(i).status in FINISHED for i in ids) and seen[-1] >= STEPS:
            break
        time.sleep(1)
    runs = [studio.registry.get_run(i) for i in ids]
    assert [r.status for r in runs] == ["completed"] * 3, [(r.status, r.error) for r in runs]
    grown = sorted(set(seen))
    assert len(grown) >= 2 and grown[-1] > grown[0], f"the loss chart never grew: {seen}"

    page.get_by_role("tab", name="Compare").click()
    summary = page.locator("#compare-summary")
    for run in runs:
        summary.locator(f"tr[data-run='{run.id}']").wait_for(timeout=90_000)
    losses = {}
    for run in runs:
        lines = read_metrics(Path(run.run_dir))
        train = [m for m in lines if "loss" in m]
        row = summary.locator(f"tr[data-run='{run.id}']")
        cell = row.locator("td[data-col='final_loss']")
        assert cell.inner_text().lstrip("★ ") == f"{train[-1]['loss']:.4f}"
        best_eval = min(m["eval_loss"] for m in lines if "eval_loss" in m)
        assert row.locator("td[data-col='best_eval_loss']").inner_text().lstrip("★ ") == f"{best_eval:.4f}"
        assert row.locator("td[data-col='steps']").inner_text() == str(STEPS)
        assert row.locator("td[data-col='method']").inner_text() == run.method
        losses[run.id] = train[-1]["loss"]
    best = min(losses, key=losses.get)
    assert "★" in summary.locator(f"tr[data-run='{best}'] td[data-col='final_loss']").inner_text()
    assert summary.locator("td.best[data-col='final_loss']").count() == 1
    assert page.locator("#compare-diff").get_by_text("LISA layers (γ)").count() == 1
    assert page.locator("#compare-diff tr[data-field='method']").count() == 1
    for name in ("loss", "eval_loss", "memory", "tokens_per_s"):
        assert line_points(page.locator(f"#compare-chart-{name}")) > 0, name
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1700, "height": 1000})  # the whole table in the picture for the issue note
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "compare-table-and-charts.png"), full_page=True)

    page.get_by_label("Tokens seen").check()
    page.wait_for_function("document.querySelector('#compare-chart-loss') && "
                           "document.querySelector('#compare-chart-loss').innerText.includes('Tokens seen')",
                           timeout=20_000)

    image = next((ROOT / "assets" / "sample_dataset" / "images").glob("*.png"))
    page.locator("#compare-ab-image input[type=file]").set_input_files(str(image))
    page.get_by_label("Question").fill("What colour is it?")
    tokens = page.locator("#compare-ab-tokens input[type=number]")
    tokens.fill("16")  # short answers: the test reads that they come, not what they say
    tokens.press("Enter")
    page.get_by_role("button", name="Ask them all").click()
    plan = page.locator("#compare-ab-plan")
    plan.get_by_text("fit together").wait_for(timeout=60_000)
    page.wait_for_function(ASKED, timeout=90_000)  # once all have answered, the box is free for the next question
    page.wait_for_function(ANSWERED, arg=1, timeout=10_000)
    page.get_by_label("Question").fill("And its shape?")  # a follow-up: each model goes on in its own column
    page.get_by_role("button", name="Ask them all").click()
    page.wait_for_function(ANSWERED, arg=2, timeout=60_000)
    page.wait_for_function(ASKED, timeout=90_000)
    for i in range(3):
        asked = page.locator(f'#compare-ab-answer-{i} [data-testid="user"]').all_inner_texts()
        assert [q.strip() for q in asked] == ["What colour is it?", "And its shape?"]
    settled(page)
    page.screenshot(path=str(ARTIFACTS / "compare-ab-chat.png"), full_page=True)
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("[0, 1, 2].every(i => document.querySelectorAll("
                           "`#compare-ab-answer-${i} [data-testid=\"bot\"]`).length === 0)", timeout=20_000)

    page.get_by_role("button", name="Export the comparison (CSV)").click()
    downloads = page.locator("#compare-downloads")
    downloads.get_by_text(".csv").wait_for(timeout=30_000)
    with page.expect_download() as download:
        downloads.locator("a").first.click()
    saved = tmp_path / "comparison.csv"
    download.value.save_as(saved)
    with saved.open(encoding="utf-8-sig", newline="") as f:
        rows = {int(r["run id"]): r for r in csv.DictReader(f)}
    assert set(rows) == set(ids)
    for run_id, loss in losses.items():
        assert float(rows[run_id]["Final train loss"]) == pytest.approx(loss)
    shutil.copy(saved, ARTIFACTS / "compare-export.csv")

    page.get_by_role("button", name="Export the charts (PNG)").click()
    names = [f"{name}-by-tokens" for name in ("loss", "eval_loss", "memory", "tokens_per_s")]
    page.wait_for_function("names => names.every(n => document.querySelector('#compare-downloads').innerText"
                           ".includes(n))", arg=names, timeout=30_000)
