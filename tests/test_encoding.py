"""Encoding trains exactly the assistant's tokens and expands each image into the model's image tokens."""

from __future__ import annotations

from pathlib import Path

from core.datasets.records import Message, Sample
from core.models.encoding import IGNORE_INDEX, SampleEncoder
from core.models.loading import load_processor

SAMPLE = Sample("s1", [
    Message("system", "Be brief."),
    Message("user", "<image>\nWhat colour is it?"),
    Message("assistant", "Red."),
    Message("user", "And the shape?"),
    Message("assistant", "A circle."),
], ["images/a.png"])


def encoder(tiny_model_cache: Path, max_length: int = 512) -> SampleEncoder:
    return SampleEncoder(load_processor(str(tiny_model_cache / "tiny-random-llava")), max_length)


def test_only_assistant_answers_are_trained(tiny_model_cache: Path) -> None:
    enc = encoder(tiny_model_cache)
    encoded = enc.encode(SAMPLE, Path("/data"))
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert enc.tokenizer.decode(trained) == "Red.<|end|>\nA circle.<|end|>\n"
    masked = enc.tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels, strict=True)
                                   if label == IGNORE_INDEX and t != enc.image_token_id])
    assert "What colour is it?" in masked and "Be brief." in masked and "Red." not in masked
    assert encoded.image_paths == [Path("/data/images/a.png")]


def test_each_image_becomes_the_models_image_tokens(tiny_model_cache: Path) -> None:
    enc = encoder(tiny_model_cache)
    encoded = enc.encode(SAMPLE)
    assert enc.tokens_per_image == 16  # (32 px / 8 px patches)^2 for the tiny CLIP tower
    assert encoded.input_ids.count(enc.image_token_id) == 16
    assert enc.is_trainable(encoded)


def test_truncation_inside_the_image_makes_the_row_untrainable(tiny_model_cache: Path) -> None:
    enc = encoder(tiny_model_cache, max_length=10)
    encoded = enc.encode(SAMPLE)
    assert encoded.truncated and len(encoded.input_ids) == 10
    assert not enc.is_trainable(encoded)


def test_chat_prompt_carries_earlier_turns(tiny_model_cache: Path) -> None:
    enc = encoder(tiny_model_cache)
    prompt = enc.render(SAMPLE.messages[:4], add_generation_prompt=True)
    assert prompt.index("What colour is it?") < prompt.index("Red.") < prompt.index("And the shape?")
    assert prompt.endswith("<|assistant|>\n")


def test_the_tiny_model_builds_once_when_threads_ask_together(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from core.models.tiny_llava import ensure_tiny_llava

    with ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda _: ensure_tiny_llava(tmp_path), range(4)))
    assert len(set(folders)) == 1 and (folders[0] / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-random-llava"]  # no staging folder left behind
