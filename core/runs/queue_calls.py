"""What the studio facade offers about the job queue and comparison launches, for the Train and Runs tabs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.problems import Problem, ProblemsError
from core.runs.comparison_launch import DEFAULT_METHODS, comparison_variants, method_problems
from core.runs.queue import JobQueue
from core.store.job_queue import QueueEntry
from core.store.registry import EvalRecord, Registry, RunRecord
from core.train_config import TrainConfig


@dataclass
class QueueView:
    """A job waiting in the job queue: its place (1 starts next), the run or evaluation, and why it has not
    started."""

    place: int
    job: RunRecord | EvalRecord
    start_now: bool
    waiting_reason: str

    @property
    def kind(self) -> str:
        return self.job.kind

    @property
    def run(self) -> RunRecord | EvalRecord:  # the name the Runs tab's queue panel reads
        return self.job


class QueueCalls:
    """Mixed into ``Studio``: needs its ``queue`` and ``registry``."""

    queue: JobQueue
    registry: Registry

    def comparison_variants(self, values: dict[str, Any], methods: list[str] | None = None) -> list[TrainConfig]:
        """The configs a comparison would queue: one per method, on the form's data and budget."""
        config, problems = TrainConfig.coerce(values)
        problems += method_problems(list(DEFAULT_METHODS if methods is None else methods))
        if problems:
            raise ProblemsError(problems)
        return comparison_variants(config, list(DEFAULT_METHODS if methods is None else methods))

    def check_comparison(self, values: dict[str, Any], methods: list[str] | None = None) -> list[Problem]:
        """Every problem (errors and warnings) of every variant a comparison would queue, naming the variant."""
        try:
            variants = self.comparison_variants(values, methods)
        except ProblemsError as e:
            return e.problems
        return self.queue.check_all(variants, warnings=True)

    def queue_place(self, job_id: int, kind: str = "run") -> QueueView | None:
        """Where a run (or an evaluation) waits in the job queue, or None when it is not waiting (it started, or
        ended)."""
        return next((v for v in self.queue_entries() if (v.kind, v.job.id) == (kind, int(job_id))), None)

    def launch_comparison(self, values: dict[str, Any], methods: list[str] | None = None) -> list[int]:
        """Queue one variant per method (default LoRA, QLoRA, LISA), named "<run name> · <method>"; every
        variant passes Check before any is queued (problems name their variant). Returns the run ids in order."""
        return self.queue.enqueue(self.comparison_variants(values, methods))

    def queue_entries(self) -> list[QueueView]:
        """The jobs waiting in the job queue, in the order they will start."""
        views = []
        for entry in self.queue.entries():
            try:
                views.append(self._queue_view(entry))
            except KeyError:
                continue
        return views

    def _queue_view(self, entry: QueueEntry) -> QueueView:
        return QueueView(entry.place, self.registry.get_job(entry.kind, entry.job_id), entry.start_now,
                         entry.waiting_reason)

    def cancel_queued(self, job_id: int, kind: str = "run") -> bool:
        """Take a waiting job out of the queue (it ends as stopped); False if it was not waiting."""
        return self.queue.cancel(int(job_id), kind=kind)

    def move_queued(self, job_id: int, offset: int, kind: str = "run") -> bool:
        """Move a waiting job one place earlier (offset -1) or later (+1); False when it is already at that end."""
        return self.queue.move(int(job_id), int(offset), kind=kind)

    def start_queued_now(self, run_id: int) -> str:
        """Start a waiting run beside the running ones if they fit together; "" once started, else why it waits."""
        return self.queue.start_now(int(run_id))
