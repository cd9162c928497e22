"""One row as the model sees it: the chat-templated text with the tokens the loss trains on marked apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from core.datasets.records import SAMPLES_FILE, Message, Sample, read_samples
from core.models.encoding import IGNORE_INDEX, EncodedSample, SampleEncoder
from core.problems import Problem, ProblemsError

TRAINED, MASKED, CUT = "trained", "masked", "cut"  # CUT: past max length, never seen by the model


@dataclass
class PreviewRow:
    """A row's conversation and images, its rendered text, and every token with what the loss does with it."""

    index: int
    id: str
    messages: list[Message]
    images: list[Path]  # absolute paths
    rendered: str  # the chat template's output, image placeholders as the template writes them
    tokens: list[tuple[int, str]] = field(default_factory=list)  # (token id, TRAINED | MASKED | CUT), in order
    spans: list[tuple[str, str]] = field(default_factory=list)  # (text, kind): runs of tokens, image runs collapsed
    max_length: int = 0
    trainable: bool = True
    problem: str = ""

    @property
    def length(self) -> int:
        return len(self.tokens)

    @property
    def kept(self) -> int:
        return sum(1 for _, kind in self.tokens if kind != CUT)

    @property
    def trained(self) -> int:
        return sum(1 for _, kind in self.tokens if kind == TRAINED)

    @property
    def truncated(self) -> bool:
        return self.length > self.max_length


def token_kinds(input_ids: list[int], labels: list[int], max_length: int) -> list[tuple[int, str]]:
    """Each token of an untruncated encoding with its fate under ``max_length``: trained, masked, or cut."""
    return [(token, CUT if i >= max_length else TRAINED if label != IGNORE_INDEX else MASKED)
            for i, (token, label) in enumerate(zip(input_ids, labels, strict=True))]


def spans_of(tokens: list[tuple[int, str]], encoder: SampleEncoder) -> list[tuple[str, str]]:
    """Runs of tokens of one kind as decoded text; a run of image tokens becomes one ``<image ×N>`` marker."""
    image_id = encoder.image_token_id if encoder.vision else None
    spans: list[tuple[str, str]] = []
    for (is_image, kind), run in groupby(tokens, key=lambda t: (t[0] == image_id, t[1])):
        ids = [token for token, _ in run]
        if is_image:
            spans.append((f"<image ×{len(ids)}>", kind))
        else:
            spans.append((encoder.tokenizer.decode(ids, skip_special_tokens=False,
                                                   clean_up_tokenization_spaces=False), kind))
    return spans


def read_row(dataset_dir: Path, index: int) -> tuple[Sample, int]:
    """The sample at ``index`` (0-based) of a dataset's training rows, and how many rows there are up to it."""
    if index < 0:
        raise ProblemsError([Problem("the row number starts at 0", field="row")])
    seen = 0
    for i, sample in enumerate(read_samples(Path(dataset_dir) / SAMPLES_FILE)):
        seen = i + 1
        if i == index:
            return sample, seen
    raise ProblemsError([Problem(f"row {index} does not exist: the dataset has {seen} training rows", field="row")])


def preview_sample(sample: Sample, dataset_dir: Path, encoder: SampleEncoder, max_length: int,
                   index: int = 0) -> PreviewRow:
    """The preview of one sample; ``encoder`` must not truncate (the cut is marked here, as the trainer makes it)."""
    folder = Path(dataset_dir)
    row = PreviewRow(index=index, id=sample.id, messages=sample.messages, images=[folder / p for p in sample.images],
                     rendered="", max_length=max_length)
    try:
        row.rendered = encoder.render(sample.messages)
        encoded = encoder.encode(sample, folder)
    except Exception as e:  # noqa: BLE001 - a template that cannot render this row is shown, not raised
        row.problem = f"the chat template cannot render this row: {e}"
        row.trainable = False
        return row
    row.tokens = token_kinds(encoded.input_ids, encoded.labels, max_length)
    row.spans = spans_of(row.tokens, encoder)
    kept_ids = encoded.input_ids[:max_length]
    kept_labels = encoded.labels[:max_length]
    row.trainable = encoder.is_trainable(EncodedSample(kept_ids, kept_labels, encoded.image_paths, row.truncated))
    return row


def preview_row(dataset_dir: Path, encoder: SampleEncoder, max_length: int, index: int) -> tuple[PreviewRow, int]:
    """The preview of training row ``index`` and how many rows were read to reach it."""
    if max_length < 1:
        raise ProblemsError([Problem("max length must be at least 1", field="max_length")])
    sample, seen = read_row(dataset_dir, index)
    return preview_sample(sample, dataset_dir, encoder, max_length, index), seen
