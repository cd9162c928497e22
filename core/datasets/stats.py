"""Statistics of a registered dataset through a model's processor: rows, turns, images, token lengths, duplicates."""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.datasets.records import SAMPLES_FILE, Sample, read_samples
from core.datasets.split import read_split_info
from core.models.encoding import IGNORE_INDEX, EncodedSample, SampleEncoder, TemplateError
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError

TOKEN_ROWS = 10_000  # rows tokenized for the length statistics (all rows are counted for the rest)
HISTOGRAM_BINS = 24
NO_LIMIT = 1 << 40  # an encoder "max length" that never truncates, to measure full lengths
ProgressCallback = Callable[[float, str], None]


class EncoderCache:
    """One processor per model folder, loaded on first use and kept (the stats and the preview ask often)."""

    def __init__(self, paths: StudioPaths, keep: int = 3):
        self.paths = paths
        self.keep = keep
        self._processors: dict[str, Any] = {}
        self._lock = threading.Lock()

    def processor(self, model: str) -> Any:
        from core.models.loading import load_processor, resolve_model

        model = (model or "").strip()
        if not model:
            raise ProblemsError([Problem("choose a model whose processor counts the tokens", field="model")])
        with self._lock:
            try:
                path = resolve_model(model, self.paths)
                if path not in self._processors:
                    if len(self._processors) >= self.keep:
                        self._processors.pop(next(iter(self._processors)))
                    self._processors[path] = load_processor(path)
                return self._processors[path]
            except ProblemsError:
                raise
            except Exception as e:  # noqa: BLE001 - a model that cannot be read is the person's problem to fix
                raise ProblemsError([Problem(f"could not load the processor of {model!r}: {type(e).__name__}: "
                                             f"{str(e).splitlines()[0] if str(e) else ''}", field="model")]) from None

    def encoder(self, model: str, max_length: int = NO_LIMIT) -> SampleEncoder:
        return SampleEncoder(self.processor(model), max_length)


def truncate(encoded: EncodedSample, max_length: int) -> EncodedSample:
    """What ``SampleEncoder.encode`` returns with ``max_length`` for a sample encoded without a limit."""
    return EncodedSample(encoded.input_ids[:max_length], encoded.labels[:max_length], encoded.image_paths,
                         len(encoded.input_ids) > max_length)


def percentile(sorted_values: list[int], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, like numpy's default."""
    if not sorted_values:
        return 0.0
    position = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def nice_width(span: float, bins: int) -> int:
    """A round bin width (1, 2, 5 x 10^k, or 4/8/16...) giving at most ``bins`` bins over ``span``."""
    raw = max(span / bins, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= raw:
            return max(1, int(math.ceil(step * magnitude)))
    return int(10 * magnitude)


def histogram(lengths: list[int], max_length: int, bins: int = HISTOGRAM_BINS) -> list[dict]:
    """Bins of token length from the shortest row to the longest: start, end (exclusive), how many rows fit and
    how many the max length cuts."""
    if not lengths:
        return []
    low, high = min(lengths), max(lengths)
    width = nice_width(high - low + 1, bins)
    first = low // width * width
    out = [{"start": first + i * width, "end": first + (i + 1) * width, "fits": 0, "cut": 0}
           for i in range((high - first) // width + 1)]
    for n in lengths:
        out[(n - first) // width]["cut" if n > max_length else "fits"] += 1
    return out


@dataclass
class DatasetStats:
    """Everything the statistics panel shows; ``to_dict`` gives plain data for the API."""

    model: str
    max_length: int
    rows: int = 0
    rows_eval: int = 0
    messages: int = 0
    turns: int = 0  # assistant answers, i.e. prompt/answer exchanges
    max_turns: int = 0
    images: int = 0  # image references (an image used twice counts twice)
    distinct_images: int = 0
    rows_with_images: int = 0
    tokenized: int = 0  # rows whose tokens were counted (the first TOKEN_ROWS)
    lengths: dict[str, float] = field(default_factory=dict)  # min, median, p95, max, mean
    trained_tokens: int = 0  # tokens the loss trains on within max_length, over the tokenized rows
    total_tokens: int = 0
    histogram: list[dict] = field(default_factory=list)
    truncated: int = 0  # rows longer than max_length
    untrainable: int = 0  # rows the trainer skips: no answer token left, or an image cut in half
    unencodable: int = 0  # rows the chat template could not render
    encode_problem: str = ""
    duplicates: int = 0  # rows identical (conversation and images) to an earlier row
    conflicting: int = 0  # rows with an earlier row's prompt but a different last answer
    duplicate_examples: list[tuple[str, str]] = field(default_factory=list)  # (row id, id of the earlier row)

    def to_dict(self) -> dict:
        return asdict(self)


def _digest(value: object) -> bytes:
    return hashlib.blake2b(json.dumps(value, ensure_ascii=False, sort_keys=True).encode(), digest_size=12).digest()


class _Duplicates:
    def __init__(self, stats: DatasetStats):
        self.stats = stats
        self.rows: dict[bytes, str] = {}
        self.prompts: dict[bytes, bytes] = {}

    def add(self, sample: Sample) -> None:
        turns = [(m.role, m.content) for m in sample.messages]
        whole = _digest([turns, sample.images])
        if whole in self.rows:
            self.stats.duplicates += 1
            if len(self.stats.duplicate_examples) < 5:
                self.stats.duplicate_examples.append((sample.id, self.rows[whole]))
            return
        self.rows[whole] = sample.id
        if turns and turns[-1][0] == "assistant":
            prompt, answer = _digest([turns[:-1], sample.images]), _digest(turns[-1])
            if self.prompts.setdefault(prompt, answer) != answer:
                self.stats.conflicting += 1


def _samples(dataset_dir: Path) -> Iterator[Sample]:
    return read_samples(Path(dataset_dir) / SAMPLES_FILE)


def compute_stats(dataset_dir: Path, encoder: SampleEncoder, max_length: int, *, model: str = "",
                  token_rows: int = TOKEN_ROWS, progress: ProgressCallback | None = None) -> DatasetStats:
    """Statistics of ``dataset_dir``'s training rows. ``encoder`` must not truncate (see ``EncoderCache.encoder``);
    truncation and trainability at ``max_length`` are then decided exactly as the trainer decides them."""
    if max_length < 1:
        raise ProblemsError([Problem("max length must be at least 1", field="max_length")])
    dataset_dir = Path(dataset_dir)
    stats = DatasetStats(model=model, max_length=max_length,
                         rows_eval=int(read_split_info(dataset_dir).get("rows_eval") or 0))
    with (dataset_dir / SAMPLES_FILE).open("rb") as f:
        total = max(sum(1 for line in f if line.strip()), 1)
    duplicates = _Duplicates(stats)
    images: set[str] = set()
    lengths: list[int] = []
    for index, sample in enumerate(_samples(dataset_dir)):
        stats.rows += 1
        stats.messages += len(sample.messages)
        answers = sum(1 for m in sample.messages if m.role == "assistant")
        stats.turns += answers
        stats.max_turns = max(stats.max_turns, answers)
        stats.images += len(sample.images)
        stats.rows_with_images += bool(sample.images)
        images.update(sample.images)
        duplicates.add(sample)
        if index < token_rows:
            _count_tokens(sample, dataset_dir, encoder, max_length, stats, lengths)
        if progress is not None and index % 200 == 0:
            progress(min(index / total, 0.99), f"counted {index:,} of {total:,} rows")
    stats.distinct_images = len(images)
    lengths.sort()
    stats.tokenized = len(lengths) + stats.unencodable
    if lengths:
        stats.lengths = {"min": lengths[0], "median": percentile(lengths, 50), "p95": percentile(lengths, 95),
                         "max": lengths[-1], "mean": sum(lengths) / len(lengths)}
    stats.histogram = histogram(lengths, max_length)
    if progress is not None:
        progress(1.0, f"{stats.rows:,} rows counted")
    return stats


def _count_tokens(sample: Sample, dataset_dir: Path, encoder: SampleEncoder, max_length: int, stats: DatasetStats,
                  lengths: list[int]) -> None:
    try:
        full = encoder.encode(sample, dataset_dir)
    except TemplateError as e:
        stats.unencodable += 1
        stats.encode_problem = stats.encode_problem or f"row {sample.id}: {e}"
        return
    lengths.append(len(full.input_ids))
    cut = truncate(full, max_length)
    stats.truncated += cut.truncated
    stats.untrainable += not encoder.is_trainable(cut)
    stats.total_tokens += len(cut.input_ids)
    stats.trained_tokens += sum(1 for label in cut.labels if label != IGNORE_INDEX)
