"""The studio's engine as one object: the calls the UI (or any client) makes, each returning plain data."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.chat import ChatService
from core.dataset_catalog import DatasetCatalog
from core.datasets.records import SAMPLES_FILE, Message, Sample, read_samples
from core.launcher import Launcher
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.processes import heartbeat_seconds
from core.registry import DatasetRecord, Registry, RunRecord
from core.run_files import log_tail, read_metrics
from core.train_config import TrainConfig


@dataclass
class RunView:
    run: RunRecord
    metrics: list[dict[str, Any]]
    log: str
    command: str


class Studio:
    def __init__(self, data_dir: str | Path | None = None):
        self.paths = StudioPaths.resolve(data_dir)
        self.registry = Registry(self.paths.db_file)
        self.catalog = DatasetCatalog(self.paths, self.registry)
        self.launcher = Launcher(self.paths, self.registry, self.catalog)
        self.chat = ChatService(self.paths, self.registry)
        self._watchdog_stop = threading.Event()

    def start_watchdog(self) -> None:
        """Check active runs every heartbeat interval, whether or not anyone has the Runs tab open."""
        def watch() -> None:
            while not self._watchdog_stop.wait(heartbeat_seconds()):
                try:
                    self.launcher.reconcile()
                except Exception as e:  # noqa: BLE001 - the watchdog must outlive a failed check
                    print(f"watchdog: {e}", flush=True)

        threading.Thread(target=watch, name="run-watchdog", daemon=True).start()

    def close(self) -> None:
        self._watchdog_stop.set()
        self.registry.dispose()

    # --- datasets -----------------------------------------------------------------------------------------
    def register_upload(self, files: list[Path], name: str) -> tuple[DatasetRecord, dict]:
        """Register uploaded files: one zip, a folder's worth of files (a JSON plus its images), or one file."""
        files = [Path(f) for f in files if f]
        if not files:
            raise ProblemsError([Problem("upload a dataset file (JSON, or a zip with its images)", field="files")])
        staging = self.paths.uploads_dir / f"upload-{uuid.uuid4().hex[:12]}"
        staging.mkdir(parents=True)
        try:
            if len(files) == 1:
                source = staging / files[0].name
                shutil.copyfile(files[0], source)
            else:
                for f in files:
                    shutil.copyfile(f, staging / f.name)
                source = staging
            record, report = self.catalog.register(source, name)
            return record, report.summary()
        finally:
            shutil.rmtree(staging, ignore_errors=True)

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

    # --- runs ---------------------------------------------------------------------------------------------
    def check_config(self, values: dict[str, Any]) -> tuple[TrainConfig, list[Problem]]:
        config, problems = TrainConfig.parse(values)
        if not problems:
            problems = self.launcher.check(config)
        return config, problems

    def start_run(self, values: dict[str, Any]) -> int:
        config, problems = TrainConfig.parse(values)
        if problems:
            raise ProblemsError(problems)
        return self.launcher.start(config)

    def list_runs(self) -> list[RunRecord]:
        self.launcher.reconcile()
        return self.registry.list_runs()

    def run_view(self, run_id: int, log_bytes: int = 6000) -> RunView:
        run = self.registry.get_run(run_id)
        run_dir = Path(run.run_dir)
        return RunView(run, read_metrics(run_dir), log_tail(run_dir, log_bytes), self.launcher.command_for(run_id))

    def stop_run(self, run_id: int) -> bool:
        return self.launcher.stop(run_id)

    def resume_run(self, run_id: int) -> Path:
        """Continue a stopped, failed or lost run from its newest complete checkpoint; returns that checkpoint."""
        return self.launcher.resume(run_id)

    # --- chat ---------------------------------------------------------------------------------------------
    def chat_choices(self) -> list[tuple[str, str]]:
        return self.chat.choices()

    def chat_stream(self, choice: str, messages: list[Message], images: list[Path], **kwargs: Any) -> Iterator[str]:
        return self.chat.stream(choice, messages, images, **kwargs)
