"""The preview marks exactly the tokens the loss trains on (the assistant's answers), and what max length cuts."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_dataset_support import solid

from core.datasets.preview import CUT, MASKED, TRAINED, preview_sample
from core.datasets.records import Message, Sample
from core.datasets.stats import EncoderCache
from core.models.encoding import IGNORE_INDEX, SampleEncoder
from core.problems import ProblemsError
from core.train_config import TINY_MODEL

ANSWERS = ("The shape is red.", "It is a circle.")


@pytest.fixture
def processor(studio):
    return EncoderCache(studio.paths).processor(TINY_MODEL)


@pytest.fixture
def sample(tmp_path: Path) -> Sample:
    solid(tmp_path / "images" / "red.png")
    return Sample("two-turns", [Message("system", "Answer briefly."), Message("user", "<image>\nWhat colour?"),
                                Message("assistant", ANSWERS[0]), Message("user", "Which shape?"),
                                Message("assistant", ANSWERS[1])], ["images/red.png"])


def test_exactly_the_assistant_tokens_are_marked_trained(processor, sample: Sample, tmp_path: Path) -> None:
    encoder = SampleEncoder(processor, 10**6)
    expected = SampleEncoder(processor, 512).encode(sample, tmp_path)  # what the trainer feeds the loss
    row = preview_sample(sample, tmp_path, encoder, 512)

    assert [t for t, _ in row.tokens] == expected.input_ids
    assert [kind == TRAINED for _, kind in row.tokens] == [label != IGNORE_INDEX for label in expected.labels]
    assert [t for t, kind in row.tokens if kind == TRAINED] == [x for x in expected.labels if x != IGNORE_INDEX]
    assert not row.truncated and row.trainable and CUT not in {kind for _, kind in row.tokens}

    trained = [text for text, kind in row.spans if kind == TRAINED]
    assert len(trained) == 2
    for text, answer in zip(trained, ANSWERS, strict=True):
        assert text.startswith(answer)  # the answer and the template's end-of-turn marker, nothing of the prompt
    masked = "".join(text for text, kind in row.spans if kind == MASKED)
    assert "Answer briefly." in masked and "What colour?" in masked and "Which shape?" in masked
    assert not any(answer in masked for answer in ANSWERS)

    tokens_per_image = encoder.tokens_per_image
    assert (f"<image ×{tokens_per_image}>", MASKED) in row.spans  # one marker, not 16 image tokens
    assert "".join(text for text, _ in row.spans).replace(f"<image ×{tokens_per_image}>", "<image>") == row.rendered


def test_max_length_cuts_are_marked_and_decide_trainability(processor, sample: Sample, tmp_path: Path) -> None:
    encoder = SampleEncoder(processor, 10**6)
    full, labels = encoder.encode(sample, tmp_path).input_ids, encoder.encode(sample, tmp_path).labels
    first_answer = next(i for i, x in enumerate(labels) if x != IGNORE_INDEX)
    first_answer_end = labels.index(IGNORE_INDEX, first_answer)  # cut right after the first answer
    for max_length in (first_answer_end, 10, len(full) - 1):
        row = preview_sample(sample, tmp_path, encoder, max_length)
        trainer = SampleEncoder(processor, max_length)
        cut = trainer.encode(sample, tmp_path)
        assert row.kept == len(cut.input_ids) == max_length and row.length == len(full) and row.truncated
        assert [kind == TRAINED for _, kind in row.tokens[:max_length]] == [x != IGNORE_INDEX for x in cut.labels]
        assert all(kind == CUT for _, kind in row.tokens[max_length:])
        assert row.trainable == trainer.is_trainable(cut)
        assert row.trained == sum(1 for x in cut.labels if x != IGNORE_INDEX)
    assert preview_sample(sample, tmp_path, encoder, 10).trainable is False  # cut inside the image tokens


def test_text_only_rows_and_row_lookup(studio, processor, tmp_path: Path) -> None:
    encoder = SampleEncoder(processor, 10**6)
    text = Sample("t", [Message("user", "Hello"), Message("assistant", "Hi there.")])
    row = preview_sample(text, tmp_path, encoder, 512)
    assert not any("×" in t for t, _ in row.spans) and row.images == []
    assert [t for t, k in row.spans if k == TRAINED][0].startswith("Hi there.")

    first = studio.preview_row("sample", 0, TINY_MODEL, 512)
    fifth = studio.preview_row("sample", 4, TINY_MODEL, 512)
    assert first.id == "red-circle-0" and fifth.index == 4 and fifth.images[0].is_file()
    assert first.trained > 0 and first.trainable
    with pytest.raises(ProblemsError, match="the dataset has 24 training rows"):
        studio.preview_row("sample", 24, TINY_MODEL, 512)
