"""The studio's engine as one object: the calls the UI (or any client) makes, each returning plain data."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.chat import RUN_PREFIX, ChatService, parse_run_choice
from core.compare.ab_chat import ABUpdate
from core.compare.service import CompareService, Comparison
from core.datasets.catalog import DatasetCatalog, ImportRequest
from core.datasets.importer import ProgressCallback
from core.datasets.limits import ImportLimits, parse_size
from core.datasets.preview import PreviewRow, preview_row
from core.datasets.records import SAMPLES_FILE, Message, Sample, read_samples
from core.datasets.stats import DatasetStats, EncoderCache, compute_stats
from core.evals.config import EvalConfig
from core.evals.service import EvalService, EvalView, config_for
from core.export import ExportService
from core.memory.advisor import MemoryAdvisor
from core.models.loading import resolve_model
from core.models.starter.build import is_built
from core.models.starter.quick_start import QuickStarts
from core.models.starter.recipe import DOWNLOAD_MB
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.deletion import DeletionPlan, delete_run, plan_deletion
from core.runs.files import MetricsCache, log_tail, metrics_page
from core.runs.launcher import Launcher
from core.runs.log_noise import quiet_tail
from core.runs.manifest import ResumePoint
from core.runs.processes import heartbeat_seconds
from core.runs.queue import EVAL_WILL_WAIT, JobQueue
from core.runs.queue_calls import QueueCalls
from core.store.registry import STORE_ERRORS, DatasetRecord, EvalRecord, Registry, RunRecord
from core.train_config import STARTER_MODEL, TrainConfig, merge_problems

NAME_LIMIT = 120
NOTES_LIMIT = 10_000
STORE_UNWRITABLE = ("The studio's database cannot be written ({error}). Statuses shown here may be behind: runs keep "
                    "their last status in their own folder, and it is recorded once the database can be written "
                    "again. Free some space in {folder}.")


@dataclass
class RunView:
    run: RunRecord
    metrics: list[dict[str, Any]]
    log: str
    command: str
    tensorboard: str | None = None  # `tensorboard --logdir ...` for a run that reports to TensorBoard


class Studio(QueueCalls):
    def __init__(self, data_dir: str | Path | None = None):
        self.paths = StudioPaths.resolve(data_dir)
        self.registry = Registry(self.paths.db_file)
        self.catalog = DatasetCatalog(self.paths, self.registry)
        self.launcher = Launcher(self.paths, self.registry, self.catalog)
        self.chat = ChatService(self.paths, self.registry)
        self.exports = ExportService(self.paths, self.registry)
        self.memory = self.launcher.memory = MemoryAdvisor(self.paths, self.registry)
        self.evals = EvalService(self.paths, self.registry, self.catalog, self.launcher, self.memory)
        self.queue = JobQueue(self.registry, self.launcher, self.memory, start_eval=self.evals.spawn_recorded)
        self.quick_starts = QuickStarts(self.paths, self.registry, self.catalog, self.queue)  # stages queue up
        self._watchdog_stop = threading.Event()
        self._metrics = MetricsCache()  # the Runs tab polls: parse only what each run appended since
        self.comparisons = CompareService(self.paths, self.registry, self.evals, self.memory, self._metrics)
        self.store_problem: str | None = None  # why the last registry write failed, until one succeeds again

    def start_watchdog(self) -> None:
        """Check active runs every heartbeat interval, whether or not anyone has the Runs tab open."""
        def watch() -> None:
            while not self._watchdog_stop.wait(heartbeat_seconds()):
                try:
                    self.reconcile()
                except Exception as e:  # noqa: BLE001 - the watchdog must outlive a failed check
                    print(f"watchdog: {e}", flush=True)

        threading.Thread(target=watch, name="run-watchdog", daemon=True).start()
        self.quick_starts.follow_pending(self._watchdog_stop)  # quick starts begun before a restart

    def start_queue(self) -> None:
        """Start the job queue's dispatcher in this process: waiting runs start when their turn comes, with or
        without a browser, and a queue left by an earlier studio on this data directory resumes."""
        self.queue.start_dispatcher()

    def close(self) -> None:
        self._watchdog_stop.set()
        self.queue.stop_dispatcher()
        self.registry.dispose()

    # --- datasets -----------------------------------------------------------------------------------------
    def set_upload_limit(self, max_upload: str | int | None) -> None:
        """The largest dataset accepted, uploaded or given as a server path ("500mb", "2gb", as ``--max-upload``
        takes it); None goes back to STUDIO_MAX_UPLOAD_MB (default 2 GB)."""
        limits = ImportLimits.from_env()
        self.catalog.limits = replace(limits, max_upload_bytes=parse_size(max_upload)) if max_upload else None

    def inspect_dataset(self, request: ImportRequest) -> dict:
        """The detected format and why, the columns and every format's slots (see ``inspect_source``)."""
        return self.catalog.inspect(request)

    def validate_dataset(self, request: ImportRequest, progress: ProgressCallback | None = None) -> dict:
        """Every check of an import without registering anything: the report's summary."""
        return self.catalog.validate(request, progress).summary()

    def register_dataset(self, request: ImportRequest, name: str, progress: ProgressCallback | None = None
                         ) -> tuple[DatasetRecord, dict]:
        record, report = self.catalog.register_request(request, name, progress)
        return record, report.summary()

    def register_upload(self, files: list[Path], name: str) -> tuple[DatasetRecord, dict]:
        """Register uploaded files: one zip, a folder's worth of files (a JSON plus its images), or one file."""
        files = [Path(f) for f in files if f]
        if not files:
            raise ProblemsError([Problem("upload a dataset file (JSON, or a zip with its images)", field="files")])
        return self.register_dataset(ImportRequest(files=files), name)

    def list_datasets(self) -> list[DatasetRecord]:
        self.catalog.ensure_sample()
        return self.registry.list_datasets()

    def dataset_rows(self, name: str, limit: int = 20) -> tuple[Path, list[Sample]]:
        folder = self.catalog.resolve_dir(name)
        rows = []
        for sample in read_samples(folder / SAMPLES_FILE):
            rows.append(sample)
            if len(rows) >= limit:
                break
        return folder, rows

    def rename_dataset(self, name: str, new_name: str) -> DatasetRecord:
        record = self.catalog.get(name)
        self.catalog.rename(record.id, new_name)
        return self.catalog.get(new_name.strip())

    def dataset_users(self, name: str) -> list[RunRecord]:
        """The runs whose config names this dataset (newest first): what a delete would leave without its data."""
        return [run for run in self.registry.list_runs() if run.dataset == name.strip()]

    def delete_dataset(self, name: str) -> DatasetRecord:
        """Forget a dataset and remove its folder; runs that used it keep their results."""
        return self.catalog.delete(self.catalog.get(name).id)

    def _encoders(self) -> EncoderCache:
        return self.__dict__.setdefault("_dataset_encoders", EncoderCache(self.paths))

    def dataset_stats(self, name: str, model: str, max_length: int, progress: ProgressCallback | None = None
                      ) -> DatasetStats:
        """Counts, token lengths with ``model``'s processor, truncation at ``max_length`` and duplicates."""
        folder = self.catalog.resolve_dir(name)
        encoder = self._encoders().encoder(model)
        return compute_stats(folder, encoder, int(max_length), model=model.strip(), progress=progress)

    def preview_row(self, name: str, index: int, model: str, max_length: int) -> PreviewRow:
        """Training row ``index`` as ``model`` sees it, with the tokens the loss trains on marked."""
        folder = self.catalog.resolve_dir(name)
        row, _ = preview_row(folder, self._encoders().encoder(model), int(max_length), int(index))
        return row

    # --- runs ---------------------------------------------------------------------------------------------
    def check_config(self, values: dict[str, Any]) -> tuple[TrainConfig, list[Problem]]:
        """Every problem with form values: types, then the launcher's checks (validation once, dataset included)."""
        config, problems = TrainConfig.coerce(values)
        return config, merge_problems(problems, self.launcher.check(config))

    def command_preview(self, config: TrainConfig) -> str:
        """The headless command a run of ``config`` will have (`accelerate launch ...` with several processes)."""
        from core.runs.launcher import headless_command, shell_text

        return shell_text(headless_command(Path("<run folder>/config.json"), self.paths.root, config=config))

    def start_run(self, values: dict[str, Any], start_now: bool = False) -> int:
        """Queue a run from form values; it starts at once when nothing trains, else when its turn comes, or with
        ``start_now`` beside the running ones if the memory estimate says they fit together."""
        config, problems = self.check_config(values)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise ProblemsError(errors)  # every problem Check would list, at once
        return self.queue.enqueue([config], start_now=start_now)[0]  # validated again before anything is recorded

    def method_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """The settings that follow from the chosen method (QLoRA: a 4-bit NF4 base); unknown methods change nothing."""
        from core.methods import get_method, method_names

        method = values.get("method")
        return get_method(method).settings_for(values) if method in method_names() else {}

    def reconcile(self) -> list[int]:
        """The watchdog's check (see ``Launcher.reconcile``); a database that cannot be written is remembered in
        ``store_problem`` instead of raising, so pollers keep working."""
        try:
            changed = self.launcher.reconcile()
        except STORE_ERRORS as e:
            error = str(getattr(e, "orig", None) or e).splitlines()[0]
            self.store_problem = STORE_UNWRITABLE.format(error=error, folder=self.paths.root)
            return []
        self.store_problem = None
        return changed

    def list_runs(self, status: str | None = None, method: str | None = None, dataset: str | None = None
                  ) -> list[RunRecord]:
        """Every run, newest first; only those with the given status, method and dataset, when given."""
        self.reconcile()
        try:
            self.queue.dispatch()  # pollers keep the queue moving too, should the dispatcher thread not run
        except STORE_ERRORS:
            pass  # a database that cannot be written: reconcile has already said so in store_problem
        wanted = {"status": status, "method": method, "dataset": dataset}
        return [r for r in self.registry.list_runs()
                if all(not value or getattr(r, key) == value for key, value in wanted.items())]

    def run_filters(self) -> dict[str, list[str]]:
        """The values the runs can be filtered by: statuses, methods and datasets that occur."""
        runs = self.registry.list_runs()
        return {key: sorted({getattr(r, key) for r in runs}) for key in ("status", "method", "dataset")}

    def rename_run(self, run_id: int, name: str) -> RunRecord:
        name = str(name or "").strip()
        if not name or len(name) > NAME_LIMIT or "\n" in name:
            raise ProblemsError([Problem(f"give the run a name of one line, 1 to {NAME_LIMIT} characters",
                                         field="name")])
        self.registry.update_run(int(run_id), name=name)
        return self.registry.get_run(int(run_id))

    def set_run_notes(self, run_id: int, notes: str) -> RunRecord:
        notes = str(notes or "")
        if len(notes) > NOTES_LIMIT:
            raise ProblemsError([Problem(f"keep the notes under {NOTES_LIMIT:,} characters", field="notes")])
        self.registry.update_run(int(run_id), notes=notes)
        return self.registry.get_run(int(run_id))

    def metrics_page(self, run_id: int, older: int = 0, per_page: int = 50) -> dict[str, Any]:
        """A page of a run's metrics lines (the last ``per_page`` by default, ``older`` pages back)."""
        run = self.registry.get_run(int(run_id))
        return metrics_page(self._metrics.read(Path(run.run_dir)), older, per_page)

    def deletion_plan(self, run_id: int) -> DeletionPlan:
        """What deleting a run would remove (folder, size, checkpoints, evaluations); raises while it runs."""
        return plan_deletion(self.paths, self.registry, int(run_id), self.queue.waiting_ids())

    def delete_run(self, run_id: int) -> DeletionPlan:
        """Delete a run that is not running: its row, its evaluations and their folders, its own folder."""
        self.queue.cancel(int(run_id))  # a waiting run must not start while it is being deleted
        return delete_run(self.paths, self.registry, int(run_id), self.queue.waiting_ids())

    def run_view(self, run_id: int, log_bytes: int = 6000) -> RunView:
        run = self.registry.get_run(run_id)
        run_dir = Path(run.run_dir)
        tail = quiet_tail(log_tail(run_dir, log_bytes))
        return RunView(run, self._metrics.read(run_dir), tail, self.launcher.command_of(run),
                       self.launcher.tensorboard_command(run))

    def stop_run(self, run_id: int) -> bool:
        """Stop a run: a waiting one leaves the queue, a running one saves and ends."""
        return self.queue.cancel(int(run_id)) or self.launcher.stop(run_id)

    def resume_run(self, run_id: int) -> ResumePoint:
        """Continue a stopped, failed or lost run from its newest checkpoint that passes its checks; returns that
        checkpoint, its step, and the newer ones skipped with the reason. While other jobs hold the GPU it resumes
        at once only if the memory estimates say it fits beside them (on a 24 GB card, two 7B runs rarely do);
        else it waits its turn in the job queue (``point.waiting`` says why)."""
        return self.queue.resume(int(run_id))

    # --- evaluations --------------------------------------------------------------------------------------
    def eval_targets(self) -> list[tuple[str, str]]:
        """(label, value) of everything that can be evaluated: bases, and runs' last and best results."""
        return self.evals.targets()

    def check_evaluation(self, target: str, settings: dict[str, Any]) -> tuple[EvalConfig, list[Problem]]:
        """Every problem with an evaluation of ``target`` ("run:N", "run:N:best" or a base) and its settings; a
        warning says when it would wait in the queue, not fitting beside what is busy now."""
        config, problems = config_for(target, **settings)
        problems = merge_problems(problems, self.evals.check(config))
        if not any(p.severity == "error" for p in problems):
            why = self.queue.evaluation_waits(self.evals.estimate_gb(config))
            if why:
                problems.append(Problem(EVAL_WILL_WAIT.format(reason=why), severity="warning"))
        return config, problems

    def submit_evaluation(self, target: str, settings: dict[str, Any]) -> tuple[int, str]:
        """Record an evaluation with its memory estimate and start it, or, when it does not fit beside the
        training runs (or evaluations) busy now, let it wait in the job queue until it does; training runs queued
        after it wait for it. Returns its id and why it waits ("" once started)."""
        config, problems = config_for(target, **settings)
        if problems:
            raise ProblemsError(problems)
        self.evals.check_startable(config)
        eval_id, _ = self.evals.record(config, self.evals.estimate_gb(config))
        return eval_id, self.queue.submit_evaluation(eval_id)

    def start_evaluation(self, target: str, settings: dict[str, Any]) -> int:
        """``submit_evaluation``'s id: the evaluation has started, or waits its turn in the queue."""
        return self.submit_evaluation(target, settings)[0]

    def stop_evaluation(self, eval_id: int) -> bool:
        """Stop an evaluation: a waiting one leaves the queue, a running one keeps what it scored and ends."""
        return self.queue.cancel(int(eval_id), kind="eval") or self.evals.stop(eval_id)

    def list_evaluations(self) -> list[EvalRecord]:
        self.launcher.reconcile()
        return self.evals.list()

    def evaluation_view(self, eval_id: int) -> EvalView:
        return self.evals.view(eval_id)

    def latest_evaluations(self) -> dict[int, EvalRecord]:
        """Each run's newest finished evaluation, for the Runs table."""
        return self.evals.latest_by_run()

    def dataset_image(self, path: str) -> Path | None:
        """An image a result refers to, only if it lies in a registered dataset's folder (None otherwise)."""
        image = Path(path).resolve()
        inside = image.is_relative_to(self.paths.datasets_dir.resolve())
        return image if inside and image.is_file() else None

    # --- built-in models ----------------------------------------------------------------------------------
    def base_of(self, choice: str) -> str:
        """The base model of a model choice: itself, or for a chat choice ``run:N`` the model run N trained."""
        choice = (choice or "").strip()
        if choice.startswith(RUN_PREFIX):
            return self.registry.get_run(parse_run_choice(choice)[0]).model
        return choice

    def pending_build(self, choice: str) -> dict[str, Any] | None:
        """What using this choice would first build and download (only starter-vlm, until it is built)."""
        if self.base_of(choice) != STARTER_MODEL or is_built(self.paths.models_dir):
            return None
        return {"model": STARTER_MODEL, "download_mb": DOWNLOAD_MB}

    def prepare_model(self, choice: str, progress: ProgressCallback | None = None) -> str:
        """Build the choice's base now if it is a built-in model that is missing (the starter downloads and
        converts, reporting ``progress(fraction, message)``); returns the folder or hub id it resolves to."""
        return resolve_model(self.base_of(choice), self.paths, progress)

    # --- chat ---------------------------------------------------------------------------------------------
    def chat_choices(self) -> list[tuple[str, str]]:
        """Base models, then merged models (each a standalone folder), then every run's loadable results."""
        choices = self.chat.choices()
        bases = [c for c in choices if not c[1].startswith(RUN_PREFIX)]
        return bases + self.exports.merged_models() + [c for c in choices if c[1].startswith(RUN_PREFIX)]

    def chat_stream(self, choice: str, messages: list[Message], images: list[Path], **kwargs: Any) -> Iterator[str]:
        return self.chat.stream(choice, messages, images, **kwargs)

    def chat_memory(self, choice: str, loading: str = "auto", card: Any = None) -> dict[str, Any]:
        """Whether chatting with a choice, loaded as chosen, fits on the card beside the runs training now."""
        try:
            model, bits = self.chat.weights_of(choice, loading)
        except (KeyError, ValueError):
            return {"ok": False, "reason": f"There is no model or run {choice!r}.", "card": self.memory.card(card)}
        return self.memory.chat_estimate(model, bits, card)

    # --- comparison ---------------------------------------------------------------------------------------
    def compare_runs(self, run_ids: list[Any], x: str = "step", smoothing: float = 0.0) -> Comparison:
        """2 to 6 runs side by side: summary (best marked), curves against ``x`` (EMA ``smoothing``), config diff."""
        return self.comparisons.compare(run_ids, x, smoothing)

    def export_comparison_csv(self, run_ids: list[Any]) -> Path:
        return self.comparisons.export_csv(run_ids)

    def export_comparison_charts(self, run_ids: list[Any], x: str = "step", smoothing: float = 0.0) -> list[Path]:
        return self.comparisons.export_pngs(run_ids, x, smoothing)

    def ab_chat_choices(self, run_ids: list[Any]) -> list[tuple[str, str]]:
        return self.comparisons.chat_choices(run_ids)

    def ab_chat_stream(self, choices: list[str], question: str, image: Path | None = None, **kw: Any
                       ) -> Iterator[ABUpdate]:
        """The same question (and image) to 2-4 models: together when the estimator says they fit, else in turn;
        ``earlier=[{"question", "image", "answers"}, ...]`` goes on a conversation, each model after its own answers."""
        return self.comparisons.ab.stream(choices, question, image, **kw)
