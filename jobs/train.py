"""Headless entry point of a training run: `python -m jobs.train --config run/config.json [--run-id N]`, or
`python -m jobs.train --resume --run-id N` to continue a stopped, failed or lost run."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from core.datasets.catalog import DatasetCatalog
from core.hardware import resolve_device
from core.memory.advisor import MemoryAdvisor
from core.models.loading import resolve_model
from core.paths import StudioPaths
from core.problems import ProblemsError
from core.runs.files import CHECKPOINTS_DIR, CONFIG_FILE, record_dataset
from core.runs.launcher import record_run
from core.runs.log_noise import silence_library_noise
from core.store.registry import Registry
from core.train_config import TrainConfig
from jobs import ranks
from jobs.ranks import QuietReporter
from jobs.reporter import say

EXIT_FAILED, EXIT_OOM, EXIT_BAD_CONFIG = 1, 3, 2
OOM_ADVICE = ("out of memory: turn on gradient checkpointing, lower the micro-batch size (raise gradient "
              "accumulation to keep the effective batch), shorten max length, or load the base in 4-bit")
DISK_FULL = ("the disk holding {folder} is full ({error}); free some space, then press Resume to continue from the "
             "last checkpoint")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__)
    parser.add_argument("--config", default=None,
                        help="a run's config.json (see TrainConfig); with --resume, the run's own by default")
    parser.add_argument("--data-dir", default=None, help="the studio's data directory (default: STUDIO_DATA_DIR)")
    parser.add_argument("--run-id", type=int, default=None, help="the registry row to report to; new if omitted")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run (--run-id) from its newest checkpoint that passes its checks")
    return parser.parse_args(argv)


def traceback_tail(lines: int = 12) -> str:
    """The end of the current exception's traceback: where it was raised, kept with the run's status."""
    return "\n".join(traceback.format_exc().rstrip().splitlines()[-lines:])


def refuse(*lines: str) -> int:
    """Bad input: one line per problem on stderr, exit code 2, nothing registered or changed."""
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_BAD_CONFIG


def prepare_resume(run_dir: Path) -> Path:
    """The checkpoint to continue from: the newest one whose files match its manifest and whose state loads.
    Half-written and damaged ones are set aside (and say why); metrics lines past it are dropped."""
    from core.runs.manifest import choose_checkpoint
    from jobs.checkpoints import load_checkpoint, set_aside, set_aside_incomplete, truncate_metrics

    for folder in set_aside_incomplete(run_dir):
        say(f"set aside incomplete checkpoint: {folder}")
    while True:
        point, skipped = choose_checkpoint(run_dir)
        for name, why in skipped:
            say(f"skipping checkpoint {name}: {why}; set aside as {set_aside(run_dir / CHECKPOINTS_DIR / name, 'bad')}")
        if point is None:
            raise ValueError(f"no checkpoint in {run_dir} passes its checks; nothing to resume from")
        try:
            step, _ = load_checkpoint(point.folder)
        except Exception as e:  # noqa: BLE001 - any failure to load means: try the one before
            say(f"skipping checkpoint {point.name}: its state does not load ({type(e).__name__}: {e}); set aside as "
                f"{set_aside(point.folder, 'bad')}")
            continue
        say(f"resuming from step {step} (checkpoint {point.name})")
        truncate_metrics(run_dir, step)
        return point.folder


def claim_for_job(registry: Registry, run_id: int) -> str | None:
    """For ``--resume``: take the run unless the studio already did (it is queued for this process); returns why
    it cannot be resumed, or None."""
    from core.runs.launcher import claim_resume

    run = registry.get_run(run_id)
    if run.status == "queued":  # the studio claimed it and started this process
        return None if not run.pid or run.pid == ranks.launcher_pid() else \
            f"run {run_id} is being started by the studio"
    try:
        claim_resume(registry, run_id)
    except ProblemsError as e:
        return str(e)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    silence_library_noise()
    ranks.die_with_launcher()
    if args.resume and args.run_id is None:
        return refuse("--resume needs --run-id: the run to continue")
    if args.config is None and args.run_id is None:
        return refuse("give --config <config.json>, or --resume --run-id N to continue a run")
    paths = StudioPaths.resolve(args.data_dir)
    registry = Registry(paths.db_file)
    run_id = args.run_id
    if run_id is not None:
        try:
            run_dir = Path(registry.get_run(run_id).run_dir)
        except KeyError:
            return refuse(f"no run {run_id} in {paths.db_file}; the Runs tab lists the runs and their ids")
    try:
        config = TrainConfig.load(args.config or run_dir / CONFIG_FILE)
        if args.resume and "group_by_length" not in (run_dir / CONFIG_FILE).read_text(encoding="utf-8"):
            config.group_by_length = False  # a run from before the option trained in plain shuffled order
        catalog = DatasetCatalog(paths, registry)
        dataset_dir = catalog.resolve_dir(config.dataset) if run_id is None else None
    except ProblemsError as e:
        return refuse(*(str(p) for p in e.problems))
    several = ranks.world_size() > 1
    if several:  # every rank got this far with the same config; now they join
        ranks.start(cpu=resolve_device(config.device) == "cpu")
    main_rank = ranks.is_main()
    if args.resume:
        problem = ranks.broadcast(claim_for_job(registry, run_id) if main_rank else None)
        if problem:
            return refuse(problem)
    if run_id is None:  # a headless run registers itself, so the Runs tab shows it too
        run_id, run_dir = ranks.broadcast(record_run(paths, registry, config) if main_rank else None)

    from jobs.reporter import Reporter

    reporter = Reporter(registry, run_id, run_dir, pid=ranks.launcher_pid()) if main_rank else QuietReporter()
    reporter.running()  # beat from the start: loading a large model can take minutes
    if main_rank:
        ranks.clear_failures(run_dir)  # those of an earlier attempt
    peers = ranks.gather(os.getpid())
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        say(f"received signal {signum}: saving and stopping")
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        import torch

        from jobs.loop import train

        dataset_dir = dataset_dir or catalog.resolve_dir(config.dataset)
        if main_rank:
            record_dataset(run_dir, config.dataset, dataset_dir)
            if config.report_to != "none":
                from jobs.tracking import Tracker

                reporter.tracker = Tracker(config.report_to, run_dir, config.run_name, config.to_dict())
        resume_from = resume_point(run_dir) if args.resume else None
        outcome = train(config, resolve_model(config.model, paths), dataset_dir, run_dir, reporter, stop,
                        resume_from=resume_from)
    except torch.OutOfMemoryError as e:
        message = f"{OOM_ADVICE}. ({str(e).splitlines()[0]})"
        if not main_rank:
            return rank_failed(run_dir, message, EXIT_OOM)
        print_traceback()  # before the status, like every line of the log
        reporter.finish("failed_oom", error=ranks.peer_failure(run_dir, peers) or message, exit_code=EXIT_OOM)
        return EXIT_OOM
    except BaseException as e:  # noqa: BLE001 - every failure must be recorded before the process ends
        if not main_rank:
            return rank_failed(run_dir, failure_message(e, run_dir), EXIT_FAILED)
        # With several ranks, one that died or failed first is the cause; this rank then only lost its peer.
        cause = ranks.peer_failure(run_dir, peers) if several else None
        print_traceback()
        reporter.finish("failed", error=cause or failure_message(e, run_dir), exit_code=EXIT_FAILED)
        return EXIT_FAILED
    if not main_rank:
        return 0
    status = "stopped" if outcome.stopped else "completed"
    if outcome.steps:  # CUDA only: measured peaks beside the estimate, for the Runs tab's calibration table
        reporter.record_memory_peaks(MemoryAdvisor(paths, registry), config, outcome.steps)
    # The log's last line is written before the status: whoever sees the run ended finds its log complete.
    say(f"{status} after {outcome.steps} steps; result in {outcome.artefact_dir}")
    reporter.finish(status, exit_code=0, artefact_dir=str(outcome.artefact_dir), step=outcome.steps,
                    last_loss=outcome.final_loss)
    return 0


def resume_point(run_dir: Path) -> Path:
    """Rank 0 chooses the checkpoint (and sets bad ones aside); every rank continues from it."""
    if ranks.world_size() <= 1:
        return prepare_resume(run_dir)
    try:
        chosen: tuple[str, str] = ("ok", str(prepare_resume(run_dir))) if ranks.is_main() else ("", "")
    except ValueError as e:
        chosen = ("error", str(e))
    kind, value = ranks.broadcast(chosen)
    if kind == "error":
        raise ValueError(value)
    return Path(value)


def rank_failed(run_dir: Path, message: str, code: int) -> int:
    """A rank other than 0 failed: its error is kept for rank 0, which reports the run's ending."""
    try:
        ranks.record_failure(run_dir, message)
    except OSError:
        pass
    print_traceback()
    return code


def failure_message(error: BaseException, run_dir: Path) -> str:
    """What the Runs tab shows for a failure: the problems, a full disk in words, else the error and where."""
    if isinstance(error, ProblemsError):
        return str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return DISK_FULL.format(folder=run_dir, error=error)
    return f"{type(error).__name__}: {error}\n\n{traceback_tail()}"


def print_traceback() -> None:
    try:
        traceback.print_exc()
    except OSError:
        pass  # the log's disk is full; the status is still recorded after this


if __name__ == "__main__":
    sys.exit(main())
