"""Headless entry point of an evaluation: `python -m jobs.evaluate --run N --dataset NAME` scores a run's result
beside its base; `--model SPEC` scores a base alone. Recorded, beating and stoppable like a training run."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback

from core.datasets.catalog import DatasetCatalog
from core.evals.config import EvalConfig
from core.evals.service import EvalService
from core.memory.advisor import MemoryAdvisor
from core.paths import StudioPaths
from core.problems import ProblemsError
from core.runs.launcher import Launcher
from core.runs.log_noise import silence_library_noise
from core.store.registry import Registry

EXIT_FAILED, EXIT_BAD_CONFIG, EXIT_OOM = 1, 2, 3
OOM_ADVICE = "out of memory: lower the batch size, the max new tokens or the max length"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", type=int, help="the run whose result is scored beside its base")
    target.add_argument("--model", help="a base model to score alone (hub id, folder or tiny-random-llava)")
    parser.add_argument("--dataset", required=True, help="a registered dataset's name")
    for f in EvalConfig.fields():
        if f.name not in ("run_id", "model", "dataset"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                                help=f"{f.metadata['help']} (default {f.default})")
    parser.add_argument("--data-dir", default=None, help="the studio's data directory (default: STUDIO_DATA_DIR)")
    parser.add_argument("--eval-id", type=int, default=None, help="the registry row to report to; new if omitted")
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> EvalConfig:
    values = {"dataset": args.dataset, **({"run_id": args.run} if args.run else {"model": args.model})}
    values.update({f.name: getattr(args, f.name) for f in EvalConfig.fields()
                   if f.name not in ("run_id", "model", "dataset") and getattr(args, f.name) is not None})
    return EvalConfig.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    silence_library_noise()
    paths = StudioPaths.resolve(args.data_dir)
    registry = Registry(paths.db_file)
    catalog = DatasetCatalog(paths, registry)
    service = EvalService(paths, registry, catalog, Launcher(paths, registry, catalog), MemoryAdvisor(paths, registry))
    try:
        config = config_of(args)
        if args.eval_id is None:  # a headless evaluation registers itself, so the studio shows it too
            errors = [p for p in service.check(config) if p.severity == "error"]
            if errors:
                raise ProblemsError(errors)
            eval_id, folder = service.record(config, service.estimate_gb(config))
        else:
            eval_id = args.eval_id
            folder = registry.get_evaluation(eval_id).eval_dir
    except ProblemsError as e:
        print(f"the evaluation has problems:\n{e}", file=sys.stderr)
        return EXIT_BAD_CONFIG

    from jobs.reporter import Reporter

    reporter = Reporter(registry, eval_id, folder, kind="eval")
    reporter.running()
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        print(f"received signal {signum}: keeping what was scored and stopping", flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        import torch

        from core.evals.runner import evaluate
        from jobs.batches import Collator

        def progress(done: int, total: int) -> None:
            reporter.progress(step=done, total_steps=total)

        outcome = evaluate(config, paths, registry, reporter.run_dir, progress, stop, Collator,
                           log=lambda line: print(line, flush=True))
    except torch.OutOfMemoryError as e:
        traceback.print_exc()
        reporter.finish("failed_oom", error=f"{OOM_ADVICE}. ({str(e).splitlines()[0]})", exit_code=EXIT_OOM)
        return EXIT_OOM
    except BaseException as e:  # noqa: BLE001 - every failure must be recorded before the process ends
        traceback.print_exc()
        tail = "\n".join(traceback.format_exc().rstrip().splitlines()[-12:])
        message = str(e) if isinstance(e, ProblemsError) else f"{type(e).__name__}: {e}\n\n{tail}"
        reporter.finish("failed", error=message, exit_code=EXIT_FAILED)
        return EXIT_FAILED
    status = "stopped" if outcome.stopped else "completed"
    print(f"evaluation {eval_id} {status}: {outcome.summary}", flush=True)  # the log is whole before the status
    reporter.finish(status, exit_code=0, summary=outcome.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
