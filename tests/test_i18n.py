"""The catalogues: both languages have every key, every key the code uses exists, Check's templates translate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webui.i18n import catalogues, problem_text, resolve, t, text

WEBUI = Path(__file__).resolve().parents[1] / "webui"
USED = re.compile(r"""\b(?:t|text|i18n_text)\(\s*["']([A-Za-z0-9_]+)["']""")


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
