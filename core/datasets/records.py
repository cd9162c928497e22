"""The internal form every dataset format is converted into, and its JSONL reader and writer.

A registered dataset is a folder holding ``samples.jsonl`` (one ``Sample`` per line) and the images
it refers to, by paths relative to that folder. Each ``<image>`` placeholder in the messages stands
for the next entry of ``images``, in order; their counts always match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_PLACEHOLDER = "<image>"
ROLES = ("system", "user", "assistant")
SAMPLES_FILE = "samples.jsonl"


@dataclass
class Message:
    role: str  # one of ROLES
    content: str  # text with IMAGE_PLACEHOLDER where an image goes


@dataclass
class Sample:
    id: str
    messages: list[Message]
    images: list[str] = field(default_factory=list)  # paths relative to the dataset folder

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "messages": [{"role": m.role, "content": m.content} for m in self.messages],
            "images": list(self.images),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Sample:
        return cls(
            id=str(data["id"]),
            messages=[Message(m["role"], m["content"]) for m in data["messages"]],
            images=list(data.get("images", [])),
        )

    def placeholder_count(self) -> int:
        return sum(m.content.count(IMAGE_PLACEHOLDER) for m in self.messages)


def write_samples(path: Path, samples: Iterable[Sample]) -> int:
    """Write samples as JSONL to ``path`` atomically; returns how many were written."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as f:
        for sample in samples:
            f.write(json.dumps(sample.to_dict(), ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def read_samples(path: Path) -> Iterator[Sample]:
    """Yield the samples of a ``samples.jsonl`` written by ``write_samples``."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield Sample.from_dict(json.loads(line))
