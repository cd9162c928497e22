"""The rows an evaluation scores: each sample's conversation up to its last answer, that answer as the reference,
and the images the question shows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.datasets.records import IMAGE_PLACEHOLDER, SAMPLES_FILE, Message, Sample, read_samples
from core.datasets.split import EVAL_FILE
from core.problems import Problem, ProblemsError

NO_EVAL_SPLIT = ("this dataset has no eval split, so its training rows are scored: that measures memorisation, "
                 "not generalisation; register it with an eval share or file to score unseen rows")


@dataclass
class EvalItem:
    index: int  # 0-based position in the rows scored
    id: str
    sample: Sample  # the whole conversation (its loss is measured on every answer, as in training)
    prompt: list[Message]  # up to the user's last turn
    reference: str  # the last answer
    images: list[Path]  # absolute paths, those the prompt shows
    dataset_dir: Path  # where the sample's image paths start

    @property
    def question(self) -> str:
        """The last user turn without its image placeholders, for tables."""
        last = next((m.content for m in reversed(self.prompt) if m.role == "user"), "")
        return last.replace(IMAGE_PLACEHOLDER, "").strip()


def has_eval_split(dataset_dir: Path) -> bool:
    return (Path(dataset_dir) / EVAL_FILE).is_file()


def rows_file(dataset_dir: Path, split: str) -> tuple[Path, str]:
    """The file of the rows to score and the split they are ("eval" or "train")."""
    if split == "eval" or (split == "auto" and has_eval_split(dataset_dir)):
        if not has_eval_split(dataset_dir):
            raise ProblemsError([Problem("this dataset has no eval split; choose auto or train, or register it "
                                         "with an eval share or file", field="split")])
        return Path(dataset_dir) / EVAL_FILE, "eval"
    return Path(dataset_dir) / SAMPLES_FILE, "train"


def item_of(index: int, sample: Sample, dataset_dir: Path) -> EvalItem | None:
    """The sample as an item; None when it has no answer to compare with."""
    last = max((i for i, m in enumerate(sample.messages) if m.role == "assistant"), default=None)
    if last is None or not sample.messages[last].content.strip():
        return None
    prompt = sample.messages[:last]
    shown = sum(m.content.count(IMAGE_PLACEHOLDER) for m in prompt)
    images = [Path(dataset_dir) / p for p in sample.images[:shown]]
    return EvalItem(index, sample.id, sample, prompt, sample.messages[last].content.strip(), images,
                    Path(dataset_dir))


def load_items(dataset_dir: Path, split: str, max_samples: int) -> tuple[list[EvalItem], str]:
    """The first ``max_samples`` rows with an answer (all when 0) and the split they come from."""
    path, which = rows_file(dataset_dir, split)
    items: list[EvalItem] = []
    for sample in _samples(path):
        item = item_of(len(items), sample, dataset_dir)
        if item is not None:
            items.append(item)
            if max_samples and len(items) >= max_samples:
                break
    if not items:
        raise ProblemsError([Problem(f"{path.name} has no row with an answer to score", field="dataset")])
    return items, which


def _samples(path: Path) -> Iterator[Sample]:
    yield from read_samples(path)
