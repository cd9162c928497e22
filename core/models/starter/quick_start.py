"""Quick start: the LLaVA recipe on shapes-qa with starter-vlm in two runs, stage 1 (the projector alone), then
stage 2 (LoRA on the language model, from stage 1's result), prepared and started with one call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.catalog import DatasetCatalog
from core.models.loading import resolve_model
from core.models.starter import recipe
from core.paths import StudioPaths
from core.problems import ProblemsError
from core.runs.files import FINAL_DIR
from core.runs.follow_up import follow, follow_pending, read_follow_up, record_follow_up
from core.store.registry import Registry
from core.train_config import TrainConfig

Progress = Callable[[float, str], None]
STAGE_1_NAME = "quick start 1: projector"
STAGE_2_NAME = "quick start 2: LoRA"
PREPARING_DATASET = "Registering the bundled image-QA set (shapes-qa)"
STARTING = "Starting stage 1"
BUILD_SHARE = (0.05, 0.95)  # where the starter's build falls in quick start's progress


@dataclass
class QuickStart:
    stage_1_run: int
    stage_2_config: TrainConfig  # started when stage 1 completes; its model is stage 1's result folder
    follower: threading.Thread | None


def stage_1_config(overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Stage 1 of the recipe (the projector alone on starter-vlm); ``overrides`` change any field (tests: budgets)."""
    return TrainConfig.from_dict({**recipe.STAGE_1, "run_name": STAGE_1_NAME, **(overrides or {})})


def stage_2_config(stage_1_dir: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Stage 2 of the recipe, made as soon as stage 1 is recorded: its model is stage 1's result folder (which
    exists once stage 1 completes)."""
    model = str(Path(stage_1_dir) / FINAL_DIR)
    return TrainConfig.from_dict({**recipe.STAGE_2, "run_name": STAGE_2_NAME, "model": model,
                                  **(overrides or {})})


def start_quick_start(paths: StudioPaths, registry: Registry, catalog: DatasetCatalog, launcher: Any,
                      progress: Progress | None = None, stage_1: dict[str, Any] | None = None,
                      stage_2: dict[str, Any] | None = None, follow_stage_1: bool = True) -> QuickStart:
    """Register shapes-qa if needed, build starter-vlm if needed (with ``progress``), start stage 1, and keep
    stage 2's config in stage 1's folder; a follower thread starts stage 2 when stage 1 completes (not when it
    fails or is stopped). Raises ProblemsError for a config Check refuses, before anything is recorded."""
    report = progress or (lambda fraction, message: None)
    first = stage_1_config(stage_1)
    report(0.0, PREPARING_DATASET)
    catalog.resolve_dir(first.dataset)  # a bundled set (shapes-qa) is registered again if it was removed
    start, end = BUILD_SHARE
    resolve_model(first.model, paths, lambda f, m: report(start + (end - start) * f, m))
    problems = stage_2_config(paths.run_dir(0), stage_2).validate()  # its fields, before stage 1 is recorded
    if [p for p in problems if p.severity == "error"]:
        raise ProblemsError(problems)
    report(end, STARTING)
    run_id = launcher.start(first)
    second = stage_2_config(Path(registry.get_run(run_id).run_dir), stage_2)
    record_follow_up(Path(registry.get_run(run_id).run_dir), second)
    follower = follow(launcher, registry, run_id) if follow_stage_1 else None
    report(1.0, f"Stage 1 started as run {run_id}")
    return QuickStart(run_id, second, follower)


def quick_start_state(registry: Registry, stage_1_run: int) -> dict[str, Any]:
    """Where a quick start stands: each stage's run id and status, and why stage 2 did not start if it did not."""
    run = registry.get_run(stage_1_run)
    waiting = read_follow_up(Path(run.run_dir)) or {}
    state: dict[str, Any] = {"stage_1": {"run": run.id, "status": run.status, "step": run.step,
                                         "total_steps": run.total_steps, "error": run.error},
                             "stage_2": None, "follow_up": waiting.get("state"), "reason": waiting.get("reason")}
    if waiting.get("run_id"):
        second = registry.get_run(int(waiting["run_id"]))
        state["stage_2"] = {"run": second.id, "status": second.status, "step": second.step,
                            "total_steps": second.total_steps, "error": second.error}
    return state


class QuickStarts:
    """Quick start as the studio offers it (``studio.quick_starts``): start one, and read where one stands."""

    def __init__(self, paths: StudioPaths, registry: Registry, catalog: DatasetCatalog, launcher: Any):
        self.paths, self.registry, self.catalog, self.launcher = paths, registry, catalog, launcher

    def start(self, progress: Progress | None = None, stage_1: dict[str, Any] | None = None,
              stage_2: dict[str, Any] | None = None) -> QuickStart:
        """See ``start_quick_start``; ``stage_1``/``stage_2`` override fields of either stage (budgets)."""
        return start_quick_start(self.paths, self.registry, self.catalog, self.launcher, progress, stage_1, stage_2)

    def state(self, stage_1_run: int) -> dict[str, Any]:
        """Each stage's run and status (after the watchdog's check), and why stage 2 did not start."""
        self.launcher.reconcile()
        return quick_start_state(self.registry, stage_1_run)

    def follow_pending(self, stop: threading.Event) -> list[int]:
        """Follow the quick starts whose stage 2 still waits (a studio restarted while stage 1 ran)."""
        return follow_pending(self.launcher, self.registry, stop)
