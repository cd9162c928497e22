"""Dataset statistics agree with the trainer's own encoding: lengths, truncation, skipped rows, duplicates."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from test_dataset_support import FORMATS, solid

from core.datasets.catalog import ImportRequest
from core.datasets.records import SAMPLES_FILE, read_samples
from core.datasets.stats import EncoderCache, compute_stats, histogram, nice_width, percentile
from core.models.encoding import SampleEncoder
from core.problems import ProblemsError
from core.train_config import TINY_MODEL


def conversation(question: str, answer: str, image: str | None = None) -> dict:
    return {"messages": [{"role": "user", "content": ("<image>" if image else "") + question},
                         {"role": "assistant", "content": answer}], "images": [image] if image else []}


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Seven rows: short and long answers, one exact duplicate, one prompt asked twice with different answers."""
    solid(tmp_path / "red.png")
    rows = [conversation("Colour?", "Red.", "red.png"),
            conversation("Colour?", "Red.", "red.png"),  # duplicate of row 1
            conversation("Colour?", "Crimson.", "red.png"),  # same prompt, other answer
            conversation("Tell me a long story.", " ".join(["once upon a time"] * 40)),  # cut, still trainable
            conversation(" ".join(["why is the sky blue"] * 30), "Air."),  # cut before its answer: skipped
            conversation("Hello", "Hi."),
            {"messages": [{"role": "system", "content": "Be brief."}, *conversation("Two?", "One.")["messages"],
                          {"role": "user", "content": "And?"}, {"role": "assistant", "content": "Two."}],
             "images": []}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_counts_lengths_truncation_and_duplicates_match_the_trainer(studio, mixed: Path) -> None:
    from jobs.batches import encode_dataset

    record, _ = studio.register_dataset(ImportRequest(server_path=str(mixed)), "mixed")
    folder = Path(record.path)
    processor = EncoderCache(studio.paths).processor(TINY_MODEL)
    full = [len(SampleEncoder(processor, 10**9).encode(s, folder).input_ids)
            for s in read_samples(folder / SAMPLES_FILE)]
    max_length = 40  # cuts the long story inside its answer and the long question before its answer
    stats = studio.dataset_stats("mixed", TINY_MODEL, max_length)

    assert (stats.rows, stats.turns, stats.max_turns, stats.messages) == (7, 8, 2, 17)
    assert (stats.images, stats.distinct_images, stats.rows_with_images) == (3, 1, 3)
    assert stats.tokenized == 7 and stats.unencodable == 0
    assert stats.lengths["min"] == min(full) and stats.lengths["max"] == max(full)
    assert stats.lengths["median"] == statistics.median(full)
    assert stats.truncated == sum(n > max_length for n in full) == 2
    trainer = encode_dataset(folder, SampleEncoder(processor, max_length))  # what training would do
    assert stats.truncated == trainer.truncated
    assert stats.untrainable == trainer.skipped == 1
    assert (stats.duplicates, stats.conflicting) == (1, 1)
    assert stats.duplicate_examples == [("mixed-2", "mixed-1")]
    assert sum(b["fits"] + b["cut"] for b in stats.histogram) == 7
    assert sum(b["cut"] for b in stats.histogram) == stats.truncated
    assert 0 < stats.trained_tokens < stats.total_tokens <= 7 * max_length


def test_a_longer_max_length_truncates_nothing(studio) -> None:
    stats = studio.dataset_stats("sample", TINY_MODEL, 4096)
    assert stats.rows == 24 and stats.images == 24 and stats.truncated == stats.untrainable == 0
    assert stats.duplicates == 0 and all(b["cut"] == 0 for b in stats.histogram)
    assert stats.lengths["min"] <= stats.lengths["median"] <= stats.lengths["p95"] <= stats.lengths["max"]


def test_eval_rows_are_counted_apart(studio, tmp_path: Path) -> None:
    record, summary = studio.register_dataset(ImportRequest(server_path=str(FORMATS / "llava.json"), eval_ratio=0.34),
                                              "split")
    stats = studio.dataset_stats("split", TINY_MODEL, 512)
    assert (stats.rows, stats.rows_eval) == (summary["rows_train"], summary["rows_eval"]) == (2, 1)


def test_only_the_first_rows_are_tokenized_when_asked(studio, mixed: Path) -> None:
    record, _ = studio.register_dataset(ImportRequest(server_path=str(mixed)), "mixed")
    encoder = EncoderCache(studio.paths).encoder(TINY_MODEL)
    seen: list[float] = []
    stats = compute_stats(Path(record.path), encoder, 512, token_rows=2, progress=lambda f, m: seen.append(f))
    assert stats.rows == 7 and stats.tokenized == 2 and seen[-1] == 1.0


def test_unknown_model_and_bad_max_length_are_problems(studio) -> None:
    with pytest.raises(ProblemsError) as e:
        studio.dataset_stats("sample", "no-such-org/no-such-model", 512)
    assert e.value.problems[0].field == "model" and "no-such-org/no-such-model" in e.value.problems[0].message
    with pytest.raises(ProblemsError) as e:
        studio.dataset_stats("sample", TINY_MODEL, 0)
    assert e.value.problems[0].field == "max_length"
    with pytest.raises(ProblemsError):
        studio.dataset_stats("nothing-by-this-name", TINY_MODEL, 512)


def test_histogram_and_percentiles() -> None:
    import numpy as np

    values = sorted([3, 9, 9, 17, 40, 41, 100, 250])
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert nice_width(1000, 24) == 50 and nice_width(5, 24) == 1
    bins = histogram(values, max_length=40)
    assert bins[0]["start"] <= 3 and bins[-1]["end"] > 250
    assert sum(b["fits"] for b in bins) == 5 and sum(b["cut"] for b in bins) == 3
    assert all(b["end"] - b["start"] == bins[0]["end"] - bins[0]["start"] for b in bins)
    assert histogram([], 10) == []
