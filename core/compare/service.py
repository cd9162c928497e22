"""The comparison the studio offers: 2 to 6 runs read from the registry and their folders, as one object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.chat import BEST_SUFFIX, RUN_PREFIX, best_info, is_complete
from core.compare.ab_chat import ABChat
from core.compare.config_diff import DiffRow, config_diff
from core.compare.curves import CHARTS, Curve, check_axis, curves
from core.compare.exports import write_csv, write_pngs
from core.compare.facts import RunFacts, gather
from core.compare.summary import Summary, summarise
from core.evals.service import EvalService
from core.memory.advisor import MemoryAdvisor
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.files import MetricsCache
from core.store.registry import Registry

MIN_RUNS, MAX_RUNS = 2, 6


@dataclass
class Comparison:
    facts: list[RunFacts]
    summary: Summary
    diff: list[DiffRow]
    charts: dict[str, list[Curve]]  # by CHARTS key
    x: str
    smoothing: float

    @property
    def colours(self) -> dict[str, str]:
        """Each run's label and its colour, for a plot's colour map."""
        return {f.label: f.colour for f in self.facts}


def parse_ids(run_ids: list[Any] | None) -> list[int]:
    """The chosen runs as ids, each once, in the order given; a ProblemsError unless there are 2 to 6."""
    ids: list[int] = []
    for value in run_ids or []:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ProblemsError([Problem(f"not a run id: {value!r}", field="runs")]) from None
        if number not in ids:
            ids.append(number)
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise ProblemsError([Problem(f"choose {MIN_RUNS} to {MAX_RUNS} runs to compare; got {len(ids)}",
                                     field="runs")])
    return ids


class CompareService:
    def __init__(self, paths: StudioPaths, registry: Registry, evals: EvalService, memory: MemoryAdvisor,
                 metrics: MetricsCache | None = None):
        self.paths, self.registry, self.evals = paths, registry, evals
        self._metrics = metrics or MetricsCache()
        self.ab = ABChat(paths, registry, memory)

    def facts(self, run_ids: list[Any]) -> list[RunFacts]:
        ids = parse_ids(run_ids)
        evaluations = self.evals.latest_by_run()
        measured: dict[int, Any] = {}
        for point in self.registry.list_calibration_points():  # newest first: keep each run's newest
            if point.run_id is not None:
                measured.setdefault(point.run_id, point)
        found = []
        for run_id in ids:
            try:
                run = self.registry.get_run(run_id)
            except KeyError:
                raise ProblemsError([Problem(f"there is no run {run_id}", field="runs")]) from None
            evaluation = evaluations[run_id].summary if run_id in evaluations else None
            facts = gather(run, self._metrics.read(Path(run.run_dir)), evaluation)
            if run_id in measured:  # a finished CUDA run's true peaks, as torch reported them at the end
                facts.extra["measured_gb"] = {"allocated": measured[run_id].measured_allocated_gb,
                                              "reserved": measured[run_id].measured_reserved_gb}
            found.append(facts)
        return found

    def compare(self, run_ids: list[Any], x: str = "step", smoothing: float = 0.0) -> Comparison:
        check_axis(x, float(smoothing))
        facts = self.facts(run_ids)
        charts = {name: curves(facts, name, x, float(smoothing)) for name in CHARTS}
        return Comparison(facts, summarise(facts), config_diff(facts), charts, x, float(smoothing))

    def export_csv(self, run_ids: list[Any], dest_dir: Path | None = None) -> Path:
        facts = self.facts(run_ids)
        return write_csv(summarise(facts), config_diff(facts), dest_dir)

    def export_pngs(self, run_ids: list[Any], x: str = "step", smoothing: float = 0.0,
                    dest_dir: Path | None = None) -> list[Path]:
        comparison = self.compare(run_ids, x, smoothing)
        return write_pngs(comparison.charts, x, comparison.summary.run_ids, dest_dir)

    def chat_choices(self, run_ids: list[Any]) -> list[tuple[str, str]]:
        """What A/B chat can ask among these runs: each finished run's last result, then their best ones, then
        the bases they trained from."""
        found, bests, bases = [], [], []
        for run_id in dict.fromkeys(int(r) for r in run_ids or []):
            try:
                run = self.registry.get_run(run_id)
            except KeyError:
                continue
            if run.status in ("completed", "stopped") and is_complete(run.artefact_dir):
                found.append((f"run {run.id}: {run.name} ({run.method}, last)", f"{RUN_PREFIX}{run.id}"))
                info = best_info(run)
                if info is not None:
                    bests.append((f"run {run.id}: {run.name} ({run.method}, best at step {info['step']})",
                                  f"{RUN_PREFIX}{run.id}{BEST_SUFFIX}"))
            if run.model not in bases:
                bases.append(run.model)
        return found + bests + [(f"base: {b}", b) for b in bases]
