"""The catalogues: both languages have every key, every key the code uses exists, Check's templates translate."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from core.memory import estimate, read_architecture
from core.memory.inputs import inputs_from_train_config
from core.train_config import TrainConfig
from webui.i18n import catalogues, problem_text, resolve, t, term_label, text
from webui.train_tab import applied_markdown, breakdown_frame, estimate_markdown, fit_markdown

WEBUI = Path(__file__).resolve().parents[1] / "webui"
USED = re.compile(r"""\b(?:t|text|i18n_text|say)\(\s*["']([A-Za-z0-9_]+)["']""")


def test_every_key_has_a_translation_in_both_catalogues() -> None:
    en, zh = catalogues()["en"], catalogues()["zh-CN"]
    assert sorted(set(en) - set(zh)) == [], "keys missing from webui/i18n/zh-CN.json"
    assert sorted(set(zh) - set(en)) == [], "keys in zh-CN.json that en.json (or core's field metadata) lacks"
    assert [k for k, v in {**en, **zh}.items() if not v.strip()] == []


def test_every_key_the_code_uses_is_in_the_catalogue() -> None:
    en = catalogues()["en"]
    used = {key for path in WEBUI.rglob("*.py") if "i18n" not in path.parts
            for key in USED.findall(path.read_text(encoding="utf-8"))}
    assert used, "the scan found no keys: the pattern no longer matches how the code calls t()"
    assert sorted(used - set(en)) == []
    with pytest.raises(KeyError, match="no_such_key"):
        t("no_such_key")


def test_fields_are_translated_by_name_and_chinese_differs_from_english() -> None:
    zh = catalogues()["zh-CN"]
    assert zh["field_lora_r"] == "LoRA 秩" and zh["tab_train"] == "训练"
    assert resolve(text("field_max_steps")) == "Max steps" and resolve(text("field_max_steps"), "zh-CN") == "最大步数"


def test_checks_templates_translate_around_the_values() -> None:
    shown = problem_text("must be at least 1; got -5")
    assert resolve(shown) == "must be at least 1; got -5"
    assert resolve(shown, "zh-CN") == "不能小于 1; 当前为 -5"
    assert problem_text("something core says only in English") == "something core says only in English"


def test_every_memory_term_has_a_label_in_both_catalogues() -> None:
    arch = read_architecture(Path(__file__).parent / "fixtures" / "model_configs" / "llava-1.5-7b.json")
    train = inputs_from_train_config(TrainConfig(method="qlora", grad_accum=4), arch)
    labels = {term.label for inp in (train, replace(train, mode="inference")) for term in estimate(inp).terms}
    assert len(labels) == 20  # every term core can name: a new one needs its two catalogue entries
    assert {label: term_label(label) for label in labels} == {label: label for label in labels}
    untranslated = sorted(label for label in labels if term_label(label, "zh-CN") == label)
    assert untranslated == [], "memory terms without a Chinese label in webui/i18n/zh-CN.json"


def test_the_memory_panel_speaks_the_pages_language(studio) -> None:
    values = TrainConfig(method="full", max_length=4096).to_dict()
    result = studio.memory.estimate(values, "0.001")  # a card far too small: the verdict and advice both show
    english, chinese = estimate_markdown(result), estimate_markdown(result, "zh-CN")
    assert "❌ Will not fit" in english and "Predicted peak" in english
    assert "❌ 放不下" in chinese and "预计峰值" in chinese and "PyTorch 峰值：已分配" in chinese
    assert "Predicted peak" not in chinese and "to spare" not in chinese
    assert "CUDA 上下文与内核" in list(breakdown_frame(result, "zh-CN")["term"])
    assert "CUDA context and kernels" in list(breakdown_frame(result)["term"])
    fitted = fit_markdown(studio.memory.fit(values, "24"), "zh-CN")
    assert fitted.startswith("✅ 已经放得下") and "无需修改" in fitted
    applied = applied_markdown({"ok": True, "changes": {"gradient_checkpointing": True}, "after_gb": 3.2,
                                "after_verdict": "fits"}, "zh-CN")
    assert applied == "已应用：梯度检查点 → 开。现在预计峰值 3.20 GB（✅ 放得下）。"


def test_a_field_to_fix_before_the_estimate_is_named_by_its_label_in_the_pages_language(studio) -> None:
    values = {**TrainConfig().to_dict(), "lora_r": -5}
    result = studio.memory.estimate(values, "24")
    assert result["reason"] == "Fix LoRA rank (must be at least 1; got -5) to see the memory estimate."  # core's
    assert estimate_markdown(result).endswith(result["reason"])
    chinese = estimate_markdown(result, "zh-CN")
    assert chinese == "**无法估计显存。** 修正 LoRA 秩（不能小于 1; 当前为 -5）后即可看到显存估计。"
    assert "修正 LoRA 秩（不能小于 1; 当前为 -5）" in fit_markdown(studio.memory.fit(values, "24"), "zh-CN")


def test_checks_fixed_messages_translate_as_core_says_them(studio) -> None:
    configs = [TrainConfig(run_name="x" * 130, model=" ", lora_targets="custom", lora_custom_targets="", device="cuda"),
               TrainConfig(precision="fp16", early_stopping_patience=2)]
    said = {p.field: p.message for config in configs for p in studio.launcher.check(config)}
    assert set(said) == {"run_name", "model", "lora_custom_targets", "device", "dataset", "precision",
                         "early_stopping_patience"}
    shown = {field: resolve(problem_text(message), "zh-CN") for field, message in said.items()}
    assert [field for field, message in said.items() if shown[field] == message] == []  # none left in English
    assert shown["model"] == "请选择模型：Hub id、本地文件夹或 tiny-random-llava"
    assert shown["dataset"].startswith("该数据集没有评测划分")
    assert {field: resolve(problem_text(message)) for field, message in said.items()} == said


def test_a_tabs_own_catalogue_joins_its_language_and_a_key_in_two_catalogues_is_refused(tmp_path, monkeypatch) -> None:
    import webui.i18n as i18n_module

    (tmp_path / "en.json").write_text('{"a": "A"}', encoding="utf-8")
    (tmp_path / "runs.en.json").write_text('{"runs_x": "X"}', encoding="utf-8")
    (tmp_path / "runs.zh-CN.json").write_text('{"runs_x": "叉"}', encoding="utf-8")
    monkeypatch.setattr(i18n_module, "CATALOGUE_DIR", tmp_path)
    assert i18n_module.read_catalogue("en") == {"a": "A", "runs_x": "X"}
    (tmp_path / "chat.en.json").write_text('{"a": "again"}', encoding="utf-8")
    with pytest.raises(ValueError, match="chat.en.json: keys already in another en catalogue: a"):
        i18n_module.read_catalogue("en")
