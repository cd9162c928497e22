"""Headless entry point of a training run: `python -m jobs.train --config run/config.json [--run-id N]`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from pathlib import Path

from core.datasets.catalog import DatasetCatalog
from core.memory.advisor import MemoryAdvisor
from core.models.loading import resolve_model
from core.paths import StudioPaths
from core.problems import ProblemsError
from core.runs.files import latest_complete_checkpoint
from core.runs.launcher import record_run
from core.store.registry import Registry
from core.train_config import TrainConfig

EXIT_FAILED, EXIT_OOM, EXIT_BAD_CONFIG = 1, 3, 2
OOM_ADVICE = ("out of memory: turn on gradient checkpointing, lower the micro-batch size (raise gradient "
              "accumulation to keep the effective batch), shorten max length, or load the base in 4-bit")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__)
    parser.add_argument("--config", required=True, help="a run's config.json (see TrainConfig)")
    parser.add_argument("--data-dir", default=None, help="the studio's data directory (default: STUDIO_DATA_DIR)")
    parser.add_argument("--run-id", type=int, default=None, help="the registry row to report to; new if omitted")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run (--run-id) from its newest complete checkpoint")
    return parser.parse_args(argv)


def traceback_tail(lines: int = 12) -> str:
    """The end of the current exception's traceback: where it was raised, kept with the run's status."""
    return "\n".join(traceback.format_exc().rstrip().splitlines()[-lines:])


def prepare_resume(run_dir: Path) -> Path:
    """The checkpoint to continue from: half-written ones are set aside, later metrics lines dropped."""
    from jobs.checkpoints import load_checkpoint, set_aside_incomplete, truncate_metrics

    for folder in set_aside_incomplete(run_dir):
        print(f"set aside incomplete checkpoint: {folder}", flush=True)
    checkpoint = latest_complete_checkpoint(run_dir)
    if checkpoint is None:
        raise ValueError(f"no complete checkpoint in {run_dir} to resume from")
    step, _ = load_checkpoint(checkpoint)
    truncate_metrics(run_dir, step)
    return checkpoint


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = TrainConfig.load(args.config)
    except ProblemsError as e:
        print(f"config has problems:\n{e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    paths = StudioPaths.resolve(args.data_dir)
    registry = Registry(paths.db_file)
    run_id = args.run_id
    if args.resume and run_id is None:
        print("--resume needs --run-id: the run to continue", file=sys.stderr)
        return EXIT_BAD_CONFIG
    if run_id is None:  # a headless run registers itself, so the Runs tab shows it too
        run_id, run_dir = record_run(paths, registry, config)
    else:
        run_dir = Path(registry.get_run(run_id).run_dir)

    from jobs.reporter import Reporter

    reporter = Reporter(registry, run_id, run_dir)
    reporter.running()  # beat from the start: loading a large model can take minutes
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        print(f"received signal {signum}: saving and stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        import torch

        from jobs.loop import train

        dataset_dir = DatasetCatalog(paths, registry).resolve_dir(config.dataset)
        resume_from = prepare_resume(run_dir) if args.resume else None
        outcome = train(config, resolve_model(config.model, paths), dataset_dir, run_dir, reporter, stop,
                        resume_from=resume_from)
    except torch.OutOfMemoryError as e:
        traceback.print_exc()
        reporter.finish("failed_oom", error=f"{OOM_ADVICE}. ({str(e).splitlines()[0]})", exit_code=EXIT_OOM)
        return EXIT_OOM
    except BaseException as e:  # noqa: BLE001 - every failure must be recorded before the process ends
        traceback.print_exc()
        message = str(e) if isinstance(e, ProblemsError) else f"{type(e).__name__}: {e}\n\n{traceback_tail()}"
        reporter.finish("failed", error=message, exit_code=EXIT_FAILED)
        return EXIT_FAILED
    status = "stopped" if outcome.stopped else "completed"
    if outcome.steps:  # CUDA only: measured peaks beside the estimate, for the Runs tab's calibration table
        reporter.record_memory_peaks(MemoryAdvisor(paths, registry), config, outcome.steps)
    reporter.finish(status, exit_code=0, artefact_dir=str(outcome.artefact_dir), step=outcome.steps,
                    last_loss=outcome.final_loss)
    print(f"{status} after {outcome.steps} steps; result in {outcome.artefact_dir}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
