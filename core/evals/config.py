"""The settings of an evaluation job, with their labels and help: the form, the record and the command use them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.config_fields import check_field, coerce, option
from core.problems import Problem, ProblemsError
from core.train_config import TINY_MODEL, merge_problems

RESULTS = ("last", "best")
SPLITS = ("auto", "eval", "train")


@dataclass
class EvalConfig:
    """What to score, on which rows, and how long each answer may be."""

    run_id: int = option(0, "Run", "The run whose result is scored beside its base; 0 scores a base model alone.",
                         min=0, max=2**31 - 1)
    result: str = option("last", "Result", "last: the run's final result; best: the one at its lowest eval loss.",
                         choices=RESULTS)
    model: str = option(TINY_MODEL, "Base model", "The model scored when no run is chosen (a hub id, a local "
                        f"folder or {TINY_MODEL}); a run is always compared with its own base.")
    dataset: str = option("sample", "Dataset", "Any registered dataset.")
    split: str = option("auto", "Rows", "auto: the dataset's eval split when it has one, else its training rows; "
                        "eval or train to choose.", choices=SPLITS)
    max_samples: int = option(50, "Samples", "Score at most this many rows (always the first ones, so every "
                              "evaluation of a dataset sees the same); 0 scores them all.", min=0, max=10_000_000)
    max_new_tokens: int = option(64, "Max new tokens", "The longest answer generated per sample.", min=1,
                                 max=8192)
    batch_size: int = option(4, "Batch size", "Samples generated and scored together.", min=1, max=1024)
    max_length: int = option(2048, "Max length", "Tokens per sample (image tokens included) for the loss on the "
                             "reference; longer ones are scored on answers only.", min=16, max=131072)

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> tuple[EvalConfig, list[Problem]]:
        """A config from loose values (form, JSON, command line) and every problem with them."""
        known = {f.name: f for f in cls.fields()}
        problems = [Problem(f"unknown setting; known settings are {', '.join(known)}", field=k)
                    for k in data if k not in known]
        values = {}
        for name, f in known.items():
            if name in data:
                values[name], problem = coerce(f, data[name])
                if problem:
                    problems.append(problem)
        config = cls(**values)
        return config, merge_problems(problems, config.validate())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        config, problems = cls.parse(data)
        if problems:
            raise ProblemsError(problems)
        return config

    def validate(self) -> list[Problem]:
        problems = [p for f in self.fields() for p in check_field(f, getattr(self, f.name))]
        if not self.run_id and not self.model.strip():
            problems.append(Problem("choose a run or a base model", field="model"))
        if not self.dataset.strip():
            problems.append(Problem("choose a dataset", field="dataset"))
        if not self.run_id and self.result == "best":
            problems.append(Problem("only a run has a best result; choose last for a base model", field="result"))
        return problems

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def command_args(self) -> list[str]:
        """The flags of ``python -m jobs.evaluate`` that give this config (defaults left out)."""
        args = ["--run", str(self.run_id)] if self.run_id else ["--model", self.model]
        args += ["--dataset", self.dataset]
        for f in self.fields():
            if f.name in ("run_id", "model", "dataset") or getattr(self, f.name) == f.default:
                continue
            args += [f"--{f.name.replace('_', '-')}", str(getattr(self, f.name))]
        return args
