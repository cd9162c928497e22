"""Deleting a run with its files: what would go (folder, size, checkpoints, evaluations), then removing it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.files import complete_checkpoints
from core.runs.processes import is_alive
from core.store.registry import ACTIVE, Registry

STILL_ACTIVE = "run {run_id} is {status}; stop it first, then delete it"
EVAL_ACTIVE = "evaluation {eval_id} of run {run_id} is {status}; stop it first, then delete the run"
OUTSIDE = "{folder} is not a folder the studio made under {root}; it is left as it is"


@dataclass
class FolderToDelete:
    path: str
    bytes: int
    deletable: bool  # inside the studio's own folder and not a link: removed; else left and named


@dataclass
class DeletionPlan:
    """Everything a run's deletion removes, for the confirmation that names it."""

    run_id: int
    name: str
    status: str
    folder: FolderToDelete | None
    checkpoints: list[str]
    evaluations: list[tuple[int, FolderToDelete | None]]
    waiting_in_queue: bool
    notes: list[str] = field(default_factory=list)  # what is kept, or left alone, and why

    @property
    def total_bytes(self) -> int:
        folders = [self.folder, *(f for _, f in self.evaluations)]
        return sum(f.bytes for f in folders if f and f.deletable)


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path``, links not followed."""
    total = 0
    for root, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _folder(path_text: str, root: Path) -> FolderToDelete | None:
    if not path_text:
        return None
    path = Path(path_text)
    if not path.exists() and not path.is_symlink():
        return None
    inside = not path.is_symlink() and path.is_dir() and path.resolve().is_relative_to(root.resolve()) \
        and path.resolve() != root.resolve()
    return FolderToDelete(str(path), folder_bytes(path) if inside else 0, inside)


def plan_deletion(paths: StudioPaths, registry: Registry, run_id: int, waiting: set[int]) -> DeletionPlan:
    """What deleting run ``run_id`` removes; raises ProblemsError while it, or one of its evaluations, runs."""
    run = registry.get_run(run_id)
    in_queue = run.id in waiting
    if (run.status in ACTIVE and not in_queue) or (run.status == "lost" and is_alive(run.pid, run.pid_started_at)):
        raise ProblemsError([Problem(STILL_ACTIVE.format(run_id=run_id, status=run.status))])
    evaluations = registry.list_evaluations(run_id=run_id)
    busy = [e for e in evaluations if e.status in ACTIVE]
    if busy:
        raise ProblemsError([Problem(EVAL_ACTIVE.format(eval_id=e.id, run_id=run_id, status=e.status))
                             for e in busy])
    folder = _folder(run.run_dir, paths.runs_dir)
    checkpoints = [p.name for p in complete_checkpoints(Path(run.run_dir))] if folder and folder.deletable else []
    plan = DeletionPlan(run.id, run.name, run.status, folder, checkpoints,
                        [(e.id, _folder(e.eval_dir, paths.evals_dir)) for e in evaluations], in_queue)
    for f in [folder, *(f for _, f in plan.evaluations)]:
        if f and not f.deletable:
            plan.notes.append(OUTSIDE.format(folder=f.path, root=paths.root))
    return plan


def delete_run(paths: StudioPaths, registry: Registry, run_id: int, waiting: set[int]) -> DeletionPlan:
    """Forget the run (its row, its evaluations' rows, its place in the queue), then remove its folders."""
    plan = plan_deletion(paths, registry, run_id, waiting)
    registry.delete_run(run_id)
    for f in [plan.folder, *(f for _, f in plan.evaluations)]:
        if f and f.deletable:
            shutil.rmtree(f.path, ignore_errors=True)  # rmtree never follows links out of the folder
    return plan
