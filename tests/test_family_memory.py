"""The memory estimator reads each family's config.json at its common size (tests/fixtures/model_configs): parts
and sizes as transformers builds them, and image tokens by the family's rule at the form's image settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.memory import estimate, inputs_from_train_config, read_architecture
from core.models.families import ImageSettings, family_for
from core.train_config import TrainConfig

CONFIGS = Path(__file__).parent / "fixtures" / "model_configs"
COMMON = {  # fixture -> family
    "qwen2-vl-7b-instruct": "qwen2_vl", "qwen2.5-vl-7b-instruct": "qwen2_5_vl", "qwen3-vl-8b-instruct": "qwen3_vl",
    "llava-1.5-7b": "llava", "llava-v1.6-mistral-7b": "llava_next", "llava-onevision-qwen2-7b": "llava_onevision",
    "gemma-3-4b-it": "gemma3", "smolvlm-instruct": "smolvlm", "idefics3-8b-llama3": "idefics3",
    "paligemma2-3b-448": "paligemma", "llama-3.2-11b-vision-instruct": "mllama", "llama-3-8b-instruct": "text",
    "qwen2.5-7b-instruct": "text", "qwen3-8b": "text", "gemma-3-1b-it": "text", "smollm2-1.7b-instruct": "text",
}


def built_parts(name: str) -> dict[str, int]:
    """Parameters per part of the real transformers model for a fixture, built on the meta device (no memory)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    config = AutoConfig.for_model(**json.loads((CONFIGS / f"{name}.json").read_text()))
    family = family_for(config)
    with torch.device("meta"):
        model = (AutoModelForImageTextToText if family.vision else AutoModelForCausalLM).from_config(config)
    parts: dict[str, int] = {}
    for param_name, param in model.named_parameters():
        part = family.part_of(param_name)
        parts[part] = parts.get(part, 0) + param.numel()
    return parts


@pytest.mark.parametrize("name", COMMON)
def test_each_family_config_is_read_part_by_part_as_transformers_builds_it(name: str) -> None:
    arch = read_architecture(CONFIGS / f"{name}.json")
    assert arch.family == COMMON[name]
    built, read = built_parts(name), arch.parts()
    assert set(read) == set(built)
    for part, count in built.items():
        assert read[part] == pytest.approx(count, rel=0.005), (part, read[part], count)


def tokens(name: str, **settings: object) -> int:
    arch = read_architecture(CONFIGS / f"{name}.json", ImageSettings(**settings))
    return arch.vision.image_tokens


def test_image_tokens_follow_each_family_rule_and_the_chosen_settings() -> None:
    assert tokens("llava-1.5-7b") == 576  # (336 / 14)^2
    assert tokens("qwen2-vl-7b-instruct") == 1280  # the processor's own limit: 28 x 28 x 1280 pixels
    assert tokens("qwen2-vl-7b-instruct", max_pixels=768 * 768) == 752  # one token per 28 x 28 pixels
    assert tokens("qwen3-vl-8b-instruct", max_pixels=768 * 768) == 576  # 32 x 32 pixels per token
    assert tokens("llava-v1.6-mistral-7b") == 2928  # 576 + 2x2 tiles of 24 rows of 24 + a newline each
    assert tokens("gemma-3-4b-it") == 256 and tokens("gemma-3-4b-it", tiling="on") == 5 * 256  # 4 crops
    assert tokens("idefics3-8b-llama3") == 17 * 169  # 4x4 tiles of 364 px and the whole image
    assert tokens("idefics3-8b-llama3", tiling="off") == 169
    assert tokens("idefics3-8b-llama3", image_size=728) == 5 * 169  # 2x2 tiles
    assert tokens("smolvlm-instruct") == 17 * 81  # 384 px tiles, pixel shuffle by 3
    assert tokens("paligemma2-3b-448") == 1024
    arch = read_architecture(CONFIGS / "llama-3.2-11b-vision-instruct.json")
    assert arch.vision.image_tokens == 1 and arch.vision.tower_tokens == 4 * 1601  # cross-attention, not text


def test_the_estimate_grows_with_the_image_setting_when_the_tower_trains() -> None:
    arch = CONFIGS / "qwen2.5-vl-7b-instruct.json"
    base = {"method": "freeze", "freeze_layers": 0, "train_vision_tower": True, "precision": "bf16",
            "gradient_checkpointing": False, "batch_size": 1, "max_length": 4096}
    small, large = (estimate(inputs_from_train_config(TrainConfig(**base, image_max_pixels=p), arch)).total_gb
                    for p in (448 * 448, 1792 * 1792))
    assert large > small + 0.5


def test_the_advisor_names_family_parts_and_warns_when_images_outgrow_the_max_length(studio, tmp_path: Path) -> None:
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text((CONFIGS / "qwen2-vl-7b-instruct.json").read_text())
    values = TrainConfig(model=str(folder), max_length=512, image_max_pixels=768 * 768).to_dict()
    result = studio.memory.estimate(values, "24")
    assert result["ok"] and result["family"] == "Qwen2-VL" and result["image_tokens"] == 752
    assert set(result["parts"]) == {"vision tower", "merger", "language model", "head"}
    assert "752 tokens, more than the max length of 512" in result["image_warning"]
    assert not studio.memory.estimate({**values, "max_length": 1024}, "24")["image_warning"]


def test_the_train_tab_shows_the_family_its_parts_and_an_images_tokens(studio, tmp_path: Path) -> None:
    from webui.train_tab import estimate_markdown

    folder = tmp_path / "idefics"
    folder.mkdir()
    (folder / "config.json").write_text((CONFIGS / "idefics3-8b-llama3.json").read_text())
    values = TrainConfig(model=str(folder), max_length=4096, image_tiling="off").to_dict()
    text = estimate_markdown(studio.memory.estimate(values, "24"))
    assert "**Idefics3**: vision tower 412.9M · connector 18.9M · language model 7.5B · head 525.3M." in text
    assert "Each image adds up to 169 tokens" in text and "⚠️" not in text
