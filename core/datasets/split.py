"""Train/eval split stored beside samples.jsonl: eval.jsonl and split.json, deterministic by seed."""

from __future__ import annotations

import json
import random
from pathlib import Path

from core.datasets.records import SAMPLES_FILE
from core.problems import Problem, ProblemsError

EVAL_FILE = "eval.jsonl"
SPLIT_FILE = "split.json"
MAX_EVAL_RATIO = 0.5


def check_ratio(ratio: float) -> None:
    if not 0 <= ratio <= MAX_EVAL_RATIO:
        raise ProblemsError([Problem(f"the eval share must be between 0 and {MAX_EVAL_RATIO}, got {ratio}",
                                     field="eval_ratio")])


def choose_eval_rows(n: int, ratio: float, seed: int) -> set[int]:
    """Indexes (0-based) of the rows that go to eval: round(n * ratio) of them, at least 1, never all."""
    if n < 2 or ratio <= 0:
        return set()
    k = min(max(1, round(n * ratio)), n - 1)
    return set(random.Random(seed).sample(range(n), k))


def split_samples(folder: Path, ratio: float, seed: int) -> tuple[int, int]:
    """Move a seeded share of ``folder/samples.jsonl`` into ``folder/eval.jsonl``; returns (train, eval) counts."""
    samples = Path(folder) / SAMPLES_FILE
    with samples.open("rb") as f:
        n = sum(1 for line in f if line.strip())
    chosen = choose_eval_rows(n, ratio, seed)
    if not chosen:
        return n, 0
    tmp = samples.with_name(samples.name + ".tmp")
    index = 0
    with samples.open("rb") as src, tmp.open("wb") as train, (Path(folder) / EVAL_FILE).open("wb") as evals:
        for line in src:
            if not line.strip():
                continue
            (evals if index in chosen else train).write(line)
            index += 1
    tmp.replace(samples)
    return n - len(chosen), len(chosen)


def write_split_info(folder: Path, info: dict) -> None:
    (Path(folder) / SPLIT_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")


def read_split_info(folder: Path) -> dict:
    """What split.json says (empty when the dataset has no eval part)."""
    path = Path(folder) / SPLIT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
