"""One evaluation, start to end: the base (and a run's result) answer every item, each answer is scored and the
reference's loss measured, progress is reported, and a stop request ends it early with what was scored kept."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.chat import BEST_SUFFIX, RUN_PREFIX, ChatService, LoadedModel
from core.datasets.catalog import DatasetCatalog
from core.evals.config import EvalConfig
from core.evals.items import EvalItem, load_items
from core.evals.metrics import score_answer, summarise
from core.evals.results import write_results
from core.evals.scoring import generate_answers, model_dtype, row_losses, to_model
from core.models.encoding import SampleEncoder
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.store.registry import Registry

Collate = Callable[[list], dict[str, Any]]


@dataclass
class Outcome:
    stopped: bool
    summary: dict[str, Any]


def phases(config: EvalConfig, registry: Registry) -> tuple[list[tuple[str, str]], str]:
    """(role, chat choice) to score in order, and the base model: the base first, then the run's result."""
    if not config.run_id:
        return [("base", config.model.strip())], config.model.strip()
    run = registry.get_run(config.run_id)
    tuned = f"{RUN_PREFIX}{run.id}{BEST_SUFFIX if config.result == 'best' else ''}"
    return [("base", run.model), ("tuned", tuned)], run.model


def evaluate(config: EvalConfig, paths: StudioPaths, registry: Registry, folder: Path,
             progress: Callable[[int, int], None], stop: threading.Event,
             collator_for: Callable[[SampleEncoder], Collate], log: Callable[[str], None] = print) -> Outcome:
    """Score every phase on the config's items; ``progress(done, total)`` after each batch. Results are written
    to ``folder`` after each batch, so they can be watched as they come and a stopped evaluation keeps what it
    scored."""
    dataset_dir = DatasetCatalog(paths, registry).resolve_dir(config.dataset)
    items, split = load_items(dataset_dir, config.split, config.max_samples)
    plan, base_model = phases(config, registry)
    total = len(items) * len(plan)
    log(f"scoring {len(items)} {split} rows of {config.dataset} with {', '.join(c for _, c in plan)}")
    progress(0, total)
    chat = ChatService(paths, registry)
    scored: dict[str, dict[int, dict[str, Any]]] = {role: {} for role, _ in plan}
    done = 0
    for role, choice in plan:
        if stop.is_set():
            break
        log(f"loading {choice}")
        loaded = chat.load(choice)
        if not loaded.encoder.vision and any(item.sample.images for item in items):
            raise ProblemsError([Problem(f"{choice} reads text only, and the rows of {config.dataset} have "
                                         "images; evaluate a vision-language model on it", field="dataset")])
        encoder = SampleEncoder(loaded.processor, config.max_length, loaded.encoder.settings, loaded.encoder.family,
                                loaded.model.config)
        collate = collator_for(encoder)
        for start in range(0, len(items), config.batch_size):
            batch = items[start:start + config.batch_size]
            results = score_batch(loaded, encoder, collate, batch, config, stop)
            if results is None:  # stopped mid-batch: its answers were cut short, so none of them counts
                break
            for item, result in zip(batch, results, strict=True):
                scored[role][item.index] = result
            done += len(batch)
            write_results(folder, result_rows(items, scored), summary_of(scored, split, len(items), base_model))
            progress(done, total)
        chat.release()
        _free_memory()
    summary = summary_of(scored, split, len(items), base_model)
    write_results(folder, result_rows(items, scored), summary)
    return Outcome(stopped=stop.is_set(), summary=summary)


def score_batch(loaded: LoadedModel, encoder: SampleEncoder, collate: Collate, batch: list[EvalItem],
                config: EvalConfig, stop: threading.Event) -> list[dict[str, Any]] | None:
    """Each item's answer, its scores, and the NLL and token count of its references (None when too long);
    None for the whole batch when a stop request came before it was done."""
    if stop.is_set():
        return None
    answers = generate_answers(loaded, [i.prompt for i in batch], [i.images for i in batch],
                               config.max_new_tokens, stop)
    if stop.is_set():
        return None
    encoded = [encoder.encode(i.sample, i.dataset_dir) for i in batch]
    losses: dict[int, tuple[float, int]] = {}
    keep = [n for n, e in enumerate(encoded) if encoder.is_trainable(e)]
    if keep:
        prepared = to_model(collate([encoded[n] for n in keep]), loaded.device, model_dtype(loaded.model))
        losses = dict(zip(keep, row_losses(loaded.model, prepared), strict=True))
    out = []
    for n, (item, answer) in enumerate(zip(batch, answers, strict=True)):
        nll, tokens = losses.get(n, (None, 0))
        out.append({"answer": answer, "reference": item.reference, **score_answer(answer, item.reference),
                    "loss": nll / tokens if tokens else None, "nll": nll, "tokens": tokens})
    return out


def result_rows(items: list[EvalItem], scored: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        row = {"index": item.index, "id": item.id, "question": item.question, "reference": item.reference,
               "images": [str(p) for p in item.images]}
        for role, results in scored.items():
            if item.index in results:
                row[role] = {k: v for k, v in results[item.index].items() if k != "reference"}
        rows.append(row)
    return rows


def summary_of(scored: dict[str, dict[int, dict[str, Any]]], split: str, rows: int, base_model: str
               ) -> dict[str, Any]:
    summary: dict[str, Any] = {"split": split, "rows": rows, "base_model": base_model}
    for role, results in scored.items():
        summary[role] = summarise([results[i] for i in sorted(results)])
    summary["complete"] = all(len(r) == rows for r in scored.values())
    return summary


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
