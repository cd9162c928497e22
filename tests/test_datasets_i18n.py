"""The Datasets tab's messages in the page's language: reports, inspection, Hub plan, statistics, preview and the
tab's own notes in Chinese with the values (file names, counts, core's problems) as they are, English as before."""

from __future__ import annotations

import json
from pathlib import Path

from test_dataset_hub import SECRET, SHA, fake_hub, hub_cache  # noqa: F401 - fixtures used by name
from test_dataset_support import FORMATS, bad_inputs_copy
from test_datasets_tab import app as app  # the running studio, shared with the tab tests
from test_datasets_tab import import_via_api, row_of

from core.datasets.catalog import ImportRequest
from core.train_config import TINY_MODEL
from webui import dataset_views as views

ZH = "zh-CN"


def test_a_validation_report_in_chinese_keeps_the_values_and_english_stays_as_it_was(studio, tmp_path: Path) -> None:
    corpus = bad_inputs_copy(tmp_path)
    summary = studio.validate_dataset(ImportRequest(server_path=str(corpus / "roles_and_order.jsonl")))
    english, chinese = views.report_markdown(summary), views.report_markdown(summary, locale=ZH)
    assert english == views.report_markdown(summary, locale="en") == views.report_markdown(summary, locale=None)
    assert english.startswith("🔎 Checked (nothing registered): 1 row,") and "**3 of 4 rows were excluded**" in english
    assert "**3 problems, by kind** (the first ones in full):" in english and "**unknown role**: 1" in english
    assert chinese.startswith("🔎 已校验（未注册）：1 行，") and "- 数据文件：`roles_and_order.jsonl`" in chinese
    assert "**4 行中有 3 行被排除**，原因见下方的问题。" in chinese
    assert "**共 3 个问题，按类别列出**" in chinese and "**unknown role**：1" in chinese  # core's kind, as it says it
    assert "`roles_and_order.jsonl:2, field 'messages[1].role'` — unknown role 'bot'" in chinese  # core's message
    for words in ("Checked", "rows were excluded", "by kind", "Data file", "problems"):
        assert words not in chinese, words
    assert views.validation_summary(summary) .startswith("3 rows excluded: ")
    assert views.validation_summary(summary, ZH).startswith("排除 3 行：")


def test_more_of_a_kind_and_thousands_separators_in_both_languages(studio, tmp_path: Path) -> None:
    rows = [{"instruction": f"Say {i}.", "output": str(i)} for i in range(1200)]
    (tmp_path / "many.json").write_text(json.dumps(rows))
    summary = studio.validate_dataset(ImportRequest(server_path=str(tmp_path / "many.json")))
    assert "- All 1,200 rows passed validation." in views.report_markdown(summary)
    chinese = views.report_markdown(summary, locale=ZH)
    assert "1,200 行，0 张图像" in chinese and "- 全部 1,200 行都通过了校验。" in chinese
    assert views.validation_summary(summary, ZH) == "无问题" and views.validation_summary(summary) == "clean"

    (tmp_path / "pics").mkdir()
    lines = [{"image": f"pics/missing-{i}.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                                  {"from": "gpt", "value": "A thing."}]}
             for i in range(8)]
    (tmp_path / "missing.json").write_text(json.dumps(lines))
    summary = studio.validate_dataset(ImportRequest(server_path=str(tmp_path / "missing.json")))
    assert "  - … and 3 more of this kind" in views.report_markdown(summary)
    assert "  - … 此类还有 3 条" in views.report_markdown(summary, locale=ZH)


def test_a_registration_with_a_split_and_its_table_row_in_chinese(studio) -> None:
    request = ImportRequest(server_path=str(FORMATS / "llava.json"), eval_ratio=0.34)
    record, summary = studio.register_dataset(request, "彩色")
    english = views.report_markdown(summary, record.name)
    assert english.startswith("✅ Registered **彩色**: 3 rows, 2 images (format: LLaVA — ")
    assert "rows to train on, 1 for evaluation (split off at random)." in english
    chinese = views.report_markdown(summary, record.name, ZH)
    assert chinese.startswith("✅ 已注册 **彩色**：3 行，2 张图像（格式：LLaVA — ")
    assert "- 划分：2 行用于训练，1 行用于评测（随机划出）。" in chinese
    assert f"- 图像路径相对于 `{FORMATS}` 解析" in chinese and "- 全部 3 行都通过了校验。" in chinese
    table = views.dataset_table(studio.list_datasets(), ZH)
    assert table.loc[table["name"] == "彩色", "validation"].item() == "无问题"


def test_inspection_in_chinese_detected_and_not(studio, tmp_path: Path) -> None:
    info = studio.inspect_dataset(ImportRequest(server_path=str(FORMATS / "llava.json")))
    english, chinese = views.inspection_markdown(info), views.inspection_markdown(info, ZH)
    assert english.startswith("**Detected format: LLaVA** — ") and "\nFirst row:\n```json" in english
    assert chinese.startswith("**识别出的格式：LLaVA**（") and "- 数据文件：`llava.json`" in chinese
    assert "- 列：conversations ← `conversations`" in chinese and "- 也可能是：sharegpt" in chinese
    assert f"- 将在 `{FORMATS}` 下查找图像" in chinese and "\n第一行：\n```json" in chinese
    assert "Detected" not in chinese and "First row" not in chinese

    (tmp_path / "shapes.csv").write_text("picture,desc\npics/red.png,A red square.\n")
    info = studio.inspect_dataset(ImportRequest(server_path=str(tmp_path / "shapes.csv")))
    assert "**The format could not be detected.**" in views.inspection_markdown(info)
    chinese = views.inspection_markdown(info, ZH)
    assert chinese.startswith("**无法识别格式。** 请在下方选择格式并映射各列，或修正文件：")
    assert "文件中的列：`picture`, `desc`" in chinese and "could not be detected" not in chinese


def test_a_hub_plan_and_its_report_in_chinese(studio, fake_hub) -> None:  # noqa: F811 - the fixture
    request = ImportRequest(hub_id="someone/shapes", row_limit=3)
    info = studio.inspect_dataset(request)
    english = views.inspection_markdown(info)
    assert f"**Hub dataset `someone/shapes`** at revision `{SHA[:12]}`" in english
    assert "6 rows in 2 files" in english and "(1 file of 2)" in english
    chinese = views.inspection_markdown(info, ZH)
    assert f"**Hub 数据集 `someone/shapes`**，版本 `{SHA[:12]}`" in chinese and "6 行，共 2 个文件" in chinese
    assert "- 导入读取前 3 行：约下载 " in chinese and "（共 2 个文件，需下载 1 个）到 `" in chinese
    assert "- 访问：你的令牌（来源：the HF\\_TOKEN environment variable，不会显示）。" in chinese
    assert SECRET not in chinese and "Access" not in chinese
    _, summary = studio.register_dataset(request, "online")
    chinese = views.report_markdown(summary, "online", ZH)
    assert f"- Hub 数据集 `someone/shapes`，版本 `{SHA}`，划分 `train`（已随数据集记录）。" in chinese
    assert "- 共 6 行，只读取了前 3 行（行数上限）。" in chinese
    assert "- Only the first 3 rows of 6 were read (the row limit)." in views.report_markdown(summary, "online")


def test_statistics_and_a_row_preview_in_chinese(studio) -> None:
    stats = studio.dataset_stats("sample", TINY_MODEL, 40)
    english, chinese = views.stats_markdown(stats), views.stats_markdown(stats, ZH)
    assert english.startswith("**24 training rows**") and "cuts **12** rows" in english
    assert chinese.startswith("**24 行训练数据**，") and "- ⚠️ 最大长度 40 会截断 **12** 行；" in chinese
    assert f"- 用 `{TINY_MODEL}` 统计的 token 数：最少 " in chinese and "- 没有重复的行。" in chinese
    assert "training rows" not in chinese and "duplicate" not in chinese
    row = studio.preview_row("sample", 2, TINY_MODEL, 40)
    assert views.preview_info(row).startswith("Row **2** (`red-triangle-0`): ")
    chinese = views.preview_info(row, locale=ZH)
    assert chinese.startswith("第 **2** 行（`red-triangle-0`）：") and "个参与训练**（高亮显示）" in chinese
    assert "个被最大长度 40 截断" in chinese and chinese.endswith("。") and "trained" not in chinese


def test_the_tabs_endpoints_take_the_pages_language_last(app, tmp_path: Path) -> None:
    client, _ = app
    corpus = bad_inputs_copy(tmp_path)
    source = str(corpus / "roles_and_order.jsonl")
    report = client.predict([], source, "", "", "", 0, "", None, locale=ZH, api_name="/validate_dataset")
    assert report.startswith("🔎 已校验（未注册）：1 行，") and "**共 3 个问题，按类别列出**" in report
    assert client.predict([], source, "", "", "", 0, "", None, api_name="/validate_dataset").startswith("🔎 Checked")
    text, *_ = client.predict([], str(FORMATS / "llava.json"), "", "", "", locale=ZH, api_name="/inspect_dataset")
    assert text.startswith("**识别出的格式：LLaVA**")
    client.reset_session()  # Inspect's findings are session state: a fresh session imports as detected

    report, table, _ = import_via_api(client, "中文报告", str(FORMATS / "llava.json"), locale=ZH)
    assert report.startswith("✅ 已注册 **中文报告**：3 行，2 张图像")
    assert row_of(table, "中文报告")["validation"] == "无问题"
    report, *_ = import_via_api(client, "中文报告", str(FORMATS / "llava.json"), locale=ZH)
    assert report.startswith("**请先修正以下问题：**") and report.endswith("\n\n没有注册任何数据集。")
    message, *_ = client.predict("中文报告", "sample", ZH, api_name="/rename_dataset")
    assert message.startswith("**请先修正以下问题：**") and "sample" in message
    message, *_ = client.predict("中文报告", "改名", ZH, api_name="/rename_dataset")
    assert message == "✏️ 已将 **中文报告** 重命名为 **改名**。"
    prompt = client.predict("改名", ZH, api_name="/delete_dataset_prompt")
    assert prompt == "要删除 **改名** 及其文件吗？\n\n点击 **确认删除** 以确认。"
    assert client.predict("", ZH, api_name="/delete_dataset_prompt") == "请先选择一个数据集。"
    message, *_ = client.predict("改名", ZH, api_name="/delete_dataset")
    assert message == "🗑️ 已删除 **改名** 及其文件（3 行）。"

    text, _ = client.predict("sample", TINY_MODEL, 40, ZH, api_name="/dataset_stats")
    assert text.startswith("**24 行训练数据**")
    *_, info = client.predict("sample", 2, TINY_MODEL, 512, ZH, api_name="/preview_row")
    assert info.startswith("第 **2** 行（`red-triangle-0`）：")
