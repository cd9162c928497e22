"""The memory advisor: estimates for form values and cards, fit and apply, sentences instead of tracebacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.memory.advisor import CARD_SIZES_GB, MemoryAdvisor, config_summary, nominal_card_gb
from core.train_config import TrainConfig

CONFIGS = Path(__file__).resolve().parent / "fixtures" / "model_configs"


@pytest.fixture
def llama7b(tmp_path: Path) -> Path:
    folder = tmp_path / "llama-2-7b"
    folder.mkdir()
    shutil.copyfile(CONFIGS / "llama-2-7b.json", folder / "config.json")
    return folder


def test_tiny_model_estimate_adds_up_and_has_a_verdict(studio) -> None:
    result = studio.memory.estimate({}, "24")
    assert result["ok"], result
    assert sum(result["breakdown"].values()) == pytest.approx(result["total_gb"], rel=1e-9)
    assert result["allocated_gb"] <= result["reserved_gb"] <= result["total_gb"]
    assert result["verdict"] == "fits" and result["card"]["gb"] == pytest.approx(24 * 2**30 / 1e9)
    assert result["model"] == "tiny-random-llava" and 0 < result["params"] < 1e6
    assert {"Language model weights", "Vision tower weights", "CUDA context and kernels"} <= set(result["breakdown"])


def test_verdict_follows_the_card(studio, llama7b: Path) -> None:
    values = {"model": str(llama7b), "precision": "bf16"}
    small, large = studio.memory.estimate(values, "8"), studio.memory.estimate(values, 80)
    assert small["total_gb"] == large["total_gb"] > 8
    assert (small["verdict"], large["verdict"]) == ("will not fit", "fits")
    assert studio.memory.estimate(values, "24 GB")["card"]["label"] == "a 24 GiB card"


def test_fit_then_apply_brings_a_7b_lora_under_a_24gb_card(studio, llama7b: Path) -> None:
    values = {"model": str(llama7b), "method": "lora", "max_length": 2048, "batch_size": 4}
    assert studio.memory.estimate(values, "24")["verdict"] == "will not fit"
    fit = studio.memory.fit(values, "24")
    assert fit["ok"] and fit["proposals"] and fit["after_verdict"] != "will not fit"
    assert all(p["saving_gb"] > 0 and p["sentence"] for p in fit["proposals"])
    assert fit["before_gb"] - sum(p["saving_gb"] for p in fit["proposals"]) == pytest.approx(fit["after_gb"])
    applied = studio.memory.apply(values, "24")
    after = studio.memory.estimate({**values, **applied["changes"]}, "24")
    assert after["total_gb"] == pytest.approx(fit["after_gb"]) and after["total_gb"] < after["card"]["gb"]
    TrainConfig.from_dict({**values, **applied["changes"]})  # every proposed value is a valid form value


def test_a_fitting_config_needs_no_changes(studio) -> None:
    fit = studio.memory.fit({}, "8")
    assert fit["ok"] and fit["proposals"] == [] and fit["changes"] == {}


def test_unreadable_models_and_bad_values_give_a_sentence(studio, tmp_path: Path) -> None:
    offline = studio.memory.estimate({"model": "no-such-org/no-such-model"}, "24")
    assert not offline["ok"] and "Hugging Face cache" in offline["reason"]
    assert not studio.memory.fit({"model": "no-such-org/no-such-model"}, "24")["ok"]
    (tmp_path / "empty").mkdir()
    empty = studio.memory.estimate({"model": str(tmp_path / "empty")}, "24")
    assert not empty["ok"] and "no config.json" in empty["reason"]
    bad = studio.memory.estimate({"batch_size": 0, "max_length": "long"}, "24")
    assert not bad["ok"] and "Micro-batch size" in bad["reason"] and "Max length" in bad["reason"]
    assert not studio.memory.estimate({"model": " "}, "24")["ok"]


def test_architectures_are_cached_per_resolved_path(studio, llama7b: Path, monkeypatch) -> None:
    first = studio.memory.architecture(str(llama7b))
    calls = []
    monkeypatch.setattr(MemoryAdvisor, "_read", staticmethod(lambda resolved: calls.append(resolved)))
    assert studio.memory.architecture(str(llama7b) + "/") is first and calls == []


def test_cards_without_cuda(studio) -> None:
    choices = studio.memory.card_choices()
    assert [value for _, value in choices] == [str(s) for s in CARD_SIZES_GB]
    assert studio.memory.default_card() == "24"
    assert studio.memory.card("in use")["gb"] == pytest.approx(nominal_card_gb(24))  # no CUDA here: 24 GB
    assert studio.memory.card("nonsense")["label"] == "a 24 GiB card"


def test_config_summary_names_what_sets_memory() -> None:
    summary = config_summary({"model": "/models/llama-2-7b/", "method": "qlora", "lora_r": 16,
                              "quantization": "4bit", "precision": "bf16", "batch_size": 4, "max_length": 2048,
                              "optimizer": "paged_adamw_8bit", "gradient_checkpointing": True})
    assert summary == "llama-2-7b · qlora r16 4bit · bf16 · batch 4×2048 · paged_adamw_8bit · checkpointing"


def test_the_card_in_use_comes_first_when_there_is_one(studio, monkeypatch) -> None:
    import core.memory.advisor as advisor_module

    monkeypatch.setattr(advisor_module, "card_in_use", lambda: {"name": "Fake GPU", "gb": 25.4})
    assert studio.memory.card_choices()[0] == ("This machine: Fake GPU (25.4 GB)", "in use")
    assert studio.memory.default_card() == "in use"
    for choice in (None, "in use"):
        assert studio.memory.card(choice) == {"label": "this machine's Fake GPU", "gb": 25.4, "in_use": True}
    assert studio.memory.card("8")["gb"] == pytest.approx(nominal_card_gb(8))
    assert studio.memory.estimate({}, None)["card"]["in_use"]


def test_on_a_card_that_is_too_small_fit_never_offers_apply_and_says_what_would_have_to_change(studio) -> None:
    fit = studio.memory.fit({"model": "tiny-random-llava"}, "0.1")
    assert fit["ok"] and not fit["applicable"] and fit["after_verdict"] == "will not fit"
    assert "smaller model" in fit["instead"] and "GiB" in fit["instead"]
    assert all(p["saving_gb"] >= 0.01 for p in fit["proposals"])  # nothing that saves "0.00 GB"
    savings = [p["saving_gb"] for p in fit["proposals"]]
    assert savings == sorted(savings, reverse=True)  # largest saving first
    refused = studio.memory.apply({"model": "tiny-random-llava"}, "0.1")
    assert not refused["ok"] and refused["reason"] == fit["instead"]
    assert studio.memory.card("0.4")["label"] == "a 0.4 GiB card"  # one unit per figure, never "0.4 GB (0.43 GB)"


def test_proposals_come_largest_saving_first_and_add_up(studio, llama7b: Path) -> None:
    values = {"model": str(llama7b), "method": "lora", "max_length": 4096, "batch_size": 8}
    fit = studio.memory.fit(values, "16")
    savings = [p["saving_gb"] for p in fit["proposals"]]
    assert len(savings) >= 2 and savings == sorted(savings, reverse=True) and min(savings) >= 0.01
    assert fit["before_gb"] - sum(savings) == pytest.approx(fit["after_gb"])
