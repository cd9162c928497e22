"""Every family encodes through its own processor: image tokens per image as the processor and the model count
them, labels on the answers only, the processor's other inputs in the batch, and rows that cannot train named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from family_cases import ALL_MODELS, ANSWERS, TWO_IMAGES, encoder_for, samples_for, write_images
from family_models import FAMILIES, TEXT_MODELS

from core.datasets.records import Message, Sample, write_samples
from core.models.encoding import IGNORE_INDEX
from core.models.families import ImageSettings, all_families, family_for
from core.models.loading import load_processor
from jobs.batches import Collator, encode_dataset


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"))


def test_every_family_is_described_once_and_each_tiny_model_finds_its_own(family_model) -> None:
    from transformers import AutoConfig

    described = [f.name for f in all_families()]
    assert sorted(described) == sorted([*FAMILIES, "text"])
    for name in ALL_MODELS:
        family = family_for(AutoConfig.from_pretrained(family_model(name)))
        assert family.name == (name if name in FAMILIES else "text"), name


@pytest.mark.parametrize("name", ALL_MODELS)
def test_two_turn_sample_encodes_with_image_tokens_and_answer_labels(family_model, images: Path, name: str) -> None:
    from PIL import Image

    path = family_model(name)
    encoder = encoder_for(path)
    sample = samples_for(name)[0]
    encoded = encoder.encode(sample, images)
    assert encoded.problem == "" and encoder.is_trainable(encoded)
    trained = encoder.tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True)
                                        if label != IGNORE_INDEX], skip_special_tokens=True)
    assert [a in trained for a in ANSWERS] == [True, True] and "colour" not in trained and "sea" not in trained
    masked = encoder.tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True)
                                       if label == IGNORE_INDEX], skip_special_tokens=True)
    assert ANSWERS[0] not in masked and ANSWERS[1] not in masked
    if name in TEXT_MODELS:
        assert not encoder.vision and encoded.image_tokens == []
        return
    # image tokens: as many in the ids as the model makes features, per image, by the family's rule
    counted = sum(1 for t in encoded.input_ids if t == encoder.image_token_id)
    made = [encoder.family.consumed(encoder.model_config, e.meta) for e in encoder.expansions(
        [Image.open(images / p).size for p in sample.images] if encoder.family.size_dependent else [(64, 64)] * 2)]
    assert counted == sum(encoded.image_tokens) == sum(made) and encoded.image_tokens == made
    if name != "paligemma":  # PaliGemma's processor adds <bos> and "\n" around a prompt: checked on its own below
        text = "".join(piece for piece, _ in encoder.segments(sample.messages))
        pictures = [[Image.open(images / p).convert("RGB") for p in sample.images]]
        reference = encoder.processor(text=[text], images=pictures, add_special_tokens=False)
        assert list(reference["input_ids"][0]) == encoded.input_ids  # exactly the processor's own expansion


@pytest.mark.parametrize("name", FAMILIES)
def test_the_batch_carries_what_the_family_model_takes(family_model, images: Path, name: str) -> None:
    encoder = encoder_for(family_model(name))
    batch = Collator(encoder)([encoder.encode(s, images) for s in samples_for(name)])
    expected = set(encoder.family.batch_keys) | {"input_ids", "attention_mask", "labels"}
    expected |= {"qwen2_vl": {"mm_token_type_ids"}, "qwen2_5_vl": {"mm_token_type_ids"},
                 "qwen3_vl": {"mm_token_type_ids"}, "gemma3": {"token_type_ids"}, "paligemma": {"token_type_ids"},
                 "mllama": {"cross_attention_mask"}}.get(name, set())
    assert set(batch) == expected
    if name == "mllama":  # the second row has no image: it attends to none
        assert batch["cross_attention_mask"][0].any() and not batch["cross_attention_mask"][1].any()


def test_dynamic_families_give_different_images_different_token_counts(family_model, images: Path) -> None:
    for name in ("qwen2_vl", "llava_next"):
        encoded = encoder_for(family_model(name)).encode(TWO_IMAGES, images)
        wide, tall = encoded.image_tokens
        assert wide > 0 and tall > 0
    wide = Sample("w", [Message("user", "<image>Hi"), Message("assistant", "Yes.")], ["wide.png"])
    square_size = encoder_for(family_model("llava_next")).encode(wide, images).image_tokens[0]
    assert square_size != encoder_for(family_model("llava_next")).encode(TWO_IMAGES, images).image_tokens[1]


def test_image_settings_change_the_tokens_as_the_family_says(family_model, images: Path) -> None:
    qwen = family_model("qwen2_vl")
    small, large = (encoder_for(qwen, settings=ImageSettings(max_pixels=p)).encode(TWO_IMAGES, images).image_tokens
                    for p in (28 * 28 * 2, 28 * 28 * 16))
    assert sum(small) < sum(large)
    idefics = family_model("idefics3")
    split, whole = (encoder_for(idefics, settings=ImageSettings(tiling=t)).encode(TWO_IMAGES, images).image_tokens
                    for t in ("on", "off"))
    assert whole == [4, 4] and all(s > 4 for s in split)  # off: one global tile of 4 tokens per image
    from PIL import Image

    Image.new("RGB", (1200, 300), (30, 200, 30)).save(images / "banner.png")  # pan and scan crops from 256 px
    banner = Sample("b", [Message("user", "<image>Read it."), Message("assistant", "Yes.")], ["banner.png"])
    gemma = family_model("gemma3")
    plain, scanned = (encoder_for(gemma, settings=ImageSettings(tiling=t)).encode(banner, images).image_tokens
                      for t in ("off", "on"))
    assert plain == [4] and scanned == [4 * 5]  # the whole image and four 300 px crops, 4 tokens each


def test_paligemma_lays_out_prefix_and_suffix_as_its_processor_does(family_model, images: Path) -> None:
    from PIL import Image

    encoder = encoder_for(family_model("paligemma"))
    sample = Sample("p", [Message("user", "<image>What colour is it?"), Message("assistant", ANSWERS[0])],
                    ["wide.png"])
    encoded = encoder.encode(sample, images)
    picture = Image.open(images / "wide.png").convert("RGB")
    reference = encoder.processor(text="<image>What colour is it?", images=[picture], suffix=ANSWERS[0])
    assert encoded.input_ids == list(reference["input_ids"][0])
    assert encoded.labels == list(reference["labels"][0])
    batch = Collator(encoder)([encoded])
    assert batch["token_type_ids"][0].tolist() == list(reference["token_type_ids"][0])


def test_truncation_never_cuts_an_image_and_the_row_is_named(family_model, images: Path, tmp_path: Path) -> None:
    import shutil

    path = family_model("qwen2_vl")
    dataset = tmp_path / "data"
    shutil.copytree(images, dataset)
    rows = [TWO_IMAGES, Sample("short", [Message("user", "<image>Hi"), Message("assistant", "Yes.")],
                                ["wide.png"])]
    write_samples(dataset / "samples.jsonl", rows)
    full = encoder_for(path).encode(TWO_IMAGES, dataset)
    second_image_end = full.image_ends[1]
    data = encode_dataset(dataset, encoder_for(path, max_length=second_image_end - 2))
    assert [s.image_paths[0].name for s in data.samples] == ["wide.png"] and data.skipped == 1
    (row, why), = data.skipped_rows
    assert row == "two-images" and "cuts image 2" in why and f"at least {second_image_end}" in why
    assert "skipped row two-images: max length" in data.report()


def test_a_processor_that_disagrees_with_its_model_is_caught_before_training(family_model, images: Path) -> None:
    from transformers import AutoConfig

    path = family_model("gemma3")
    encoder = encoder_for(path)
    config = AutoConfig.from_pretrained(path)
    config.mm_tokens_per_image = 9  # the model would make 9 features per image; the processor writes 4 tokens
    encoder.model_config = config
    encoded = encoder.encode(TWO_IMAGES, images)
    assert "gives 4 image tokens but the model makes 9" in encoded.problem and not encoder.is_trainable(encoded)


@pytest.mark.parametrize("name", ["qwen2_5_vl", "llava_onevision", "smolvlm"])
def test_processors_with_a_video_part_load_without_torchvision_and_save_as_themselves(
        family_model, tmp_path: Path, name: str) -> None:
    processor = load_processor(str(family_model(name)))
    assert not hasattr(processor, "video_processor")  # torchvision is not installed here
    assert type(processor).__name__ == family_for(json.loads((family_model(name) / "config.json").read_text())
                                                  ).processor_class
    processor.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text((family_model(name) / "config.json").read_text())
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["processor_class"] == type(processor).__name__  # AutoProcessor loads it where torchvision is
    again = load_processor(str(tmp_path))
    assert again.image_token == processor.image_token and again.chat_template == processor.chat_template
    assert torch.equal(torch.tensor(again.tokenizer("<image> hi")["input_ids"]),
                       torch.tensor(processor.tokenizer("<image> hi")["input_ids"]))


def test_a_llava_with_a_dinov2_tower_encodes_and_trains(tmp_path: Path, images: Path) -> None:
    """The starter model's shape: LlavaConfig with a Dinov2Config vision tower (class token dropped by 'default')."""
    import transformers as T
    from family_models import text_config, tokenizer
    from family_templates import LLAVA

    tok = tokenizer(["<pad>", "<s>", "</s>", "<image>"], LLAVA, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                    extra_special_tokens={"image_token": "<image>"})
    image = T.CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = T.LlavaProcessor(image_processor=image, tokenizer=tok, patch_size=14, chat_template=LLAVA,
                                 vision_feature_select_strategy="default", num_additional_image_tokens=1)
    vision = T.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=28,
                            patch_size=14)
    config = T.LlavaConfig(vision_config=vision, text_config={"model_type": "llama", **text_config(len(tok), tok)},
                           image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1)
    T.LlavaForConditionalGeneration(config).save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    encoder = encoder_for(tmp_path)
    encoded = encoder.encode(TWO_IMAGES, images)
    assert encoded.problem == "" and encoded.image_tokens == [4, 4]  # (28 / 14)^2 patches each
    from core.models.loading import load_model

    batch = Collator(encoder)([encoded])
    assert torch.isfinite(load_model(str(tmp_path))(**batch).loss)
