"""validate() refuses every impossible method/precision combination with a sentence: why, and what instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config_fields import choices_of
from core.methods import get_method, method_names
from core.methods.base import Target
from core.models.loading import TINY_FACTS, ModelFacts, describe_model
from core.train_config import TrainConfig

TEXT_MODEL = Target(ModelFacts("llama", vision=False, text_layers=2, hidden_size=64), cuda=False)
ALL_METHODS = ["lora", "qlora", "full", "freeze", "lisa", "adapter", "prompt", "prefix", "ptuning"]


def problems_of(**settings: object) -> dict[str, str]:
    problems = TrainConfig(**settings).validate(cuda_available=False)
    return {p.field: p.message for p in problems}


def errors_of(**settings: object) -> dict[str, str]:
    problems = TrainConfig(**settings).validate(cuda_available=False)
    return {p.field: p.message for p in problems if p.severity == "error"}


def test_every_method_is_registered_and_its_defaults_are_valid() -> None:
    assert method_names() == ALL_METHODS
    for name in ALL_METHODS:
        extra = {"quantization": "4bit"} if name == "qlora" else {}
        assert errors_of(method=name, **extra) == {}, name


@pytest.mark.parametrize("settings, field, words", [
    ({"method": "qlora"}, "quantization", ["QLoRA loads the base quantized", "4bit", "choose LoRA"]),
    ({"method": "full", "quantization": "4bit"}, "quantization", ["frozen integers", "set quantization to none",
                                                                  "QLoRA"]),
    ({"method": "freeze", "quantization": "8bit"}, "quantization", ["frozen integers", "none"]),
    ({"method": "lisa", "quantization": "4bit"}, "quantization", ["LISA trains whole decoder layers", "none"]),
    ({"method": "lora", "quantization": "4bit"}, "quantization", ["is QLoRA", "choose QLoRA"]),
    ({"method": "adapter", "quantization": "4bit"}, "quantization", ["full-precision base", "none"]),
    ({"method": "prompt", "quantization": "8bit"}, "quantization", ["full-precision base", "none"]),
    ({"method": "qlora", "quantization": "8bit", "use_dora": True}, "use_dora", ["DoRA on an 8-bit", "4-bit",
                                                                               "turn DoRA off"]),
    ({"precision": "fp16"}, "precision", ["needs a CUDA GPU", "choose fp32, bf16 or pure_bf16"]),
    ({"device": "cuda"}, "device", ["no CUDA GPU", "choose auto or cpu"]),
    ({"method": "prefix", "gradient_checkpointing": True}, "gradient_checkpointing", ["turn gradient checkpointing "
                                                                                      "off", "prompt tuning"]),
    ({"method": "lisa", "lisa_layers": 3}, "lisa_layers", ["has 2 decoder layers", "at most 2"]),
    ({"method": "freeze", "freeze_layers": 5}, "freeze_layers", ["has 2 decoder layers", "at most 2"]),
    ({"method": "freeze", "freeze_layers": 0, "train_projector": False}, "freeze_layers", ["nothing would train"]),
    ({"method": "full", "train_language_model": False, "train_projector": False}, "train_language_model",
     ["nothing would train"]),
    ({"method": "adapter", "adapter_size": 64}, "adapter_size", ["narrower than the model", "below 64"]),
    ({"method": "lora", "lora_r": 1, "lora_alpha": 100}, "lora_alpha", ["alpha/r = 100", "at most 64"]),
    ({"method": "lora", "lora_targets": "custom"}, "lora_custom_targets", ["at least one module name"]),
])
def test_impossible_combinations_are_refused_with_a_reason(settings: dict, field: str, words: list[str]) -> None:
    problems = problems_of(**settings)
    assert field in problems, problems
    for word in words:
        assert word in problems[field], (word, problems[field])


def test_the_same_choices_are_fine_where_they_can_run() -> None:
    assert problems_of(method="qlora", quantization="8bit", use_dora=True, device="auto") != {}
    ok = TrainConfig(method="qlora", quantization="8bit", use_dora=True, precision="fp16")
    assert ok.validate(cuda_available=True) == []  # DoRA on 8-bit and fp16 are refused on CPU only
    assert errors_of(method="lisa", lisa_layers=2) == {}
    assert problems_of(method="lisa", lisa_layers=1) == {}
    assert problems_of(method="prompt", lora_targets="custom") == {}  # LoRA's fields do not bind other methods
    assert problems_of(precision="pure_bf16") == problems_of(precision="bf16") == {}


def test_text_only_models_refuse_vision_parts() -> None:
    problems = get_method("freeze").check(TrainConfig(method="freeze", freeze_preset="llava_stage1"), TEXT_MODEL)
    assert [p.field for p in problems] == ["freeze_preset"] and "text-only" in problems[0].message
    problems = get_method("lora").check(TrainConfig(lora_train_projector=True), TEXT_MODEL)
    assert [p.field for p in problems] == ["lora_train_projector"]
    full = TrainConfig(method="full", train_language_model=False)
    assert [p.field for p in get_method("full").check(full, TEXT_MODEL)] == ["train_language_model"]
    assert not get_method("full").check(TrainConfig(method="full"), TEXT_MODEL)


def test_model_facts_come_from_the_config_alone(data_dir: Path) -> None:
    from transformers import AutoConfig

    built = data_dir / "models" / "tiny-random-llava"
    assert describe_model(str(built)) == TINY_FACTS  # the hard-coded facts match the built model
    assert AutoConfig.from_pretrained(built).text_config.num_hidden_layers == TINY_FACTS.text_layers
    assert describe_model("no-such/model-anywhere") is None  # unknown offline: the job checks again after loading


def test_method_fields_are_shown_only_for_their_methods() -> None:
    fields = {f.name: f for f in TrainConfig.fields()}
    for f in fields.values():
        for control, values in (f.metadata["shown_when"] or {}).items():
            assert set(values) <= set(choices_of(fields[control])), f.name
    shown_for = {name: fields[name].metadata["shown_when"].get("method") for name in fields}
    assert shown_for["lisa_layers"] == ["lisa"] and shown_for["adapter_size"] == ["adapter"]
    assert shown_for["use_dora"] == ["lora", "qlora"] and shown_for["prompt_tokens"] == ["prompt", "prefix",
                                                                                            "ptuning"]
    assert choices_of(fields["optimizer"]) == ["adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit",
                                               "adafactor"]
    assert choices_of(fields["precision"]) == ["fp32", "bf16", "fp16", "pure_bf16"]
