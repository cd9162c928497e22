"""One run in several processes: which rank this is, what only rank 0 does, and naming the rank that failed."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

RANK_ERRORS_DIR = "rank-errors"
PEER_EXIT_WAIT_SECONDS = 3.0
PR_SET_PDEATHSIG = 1
DIED = ("rank {rank} (pid {pid}) ended without reporting: it was killed (kill -9, or the kernel's out-of-memory "
        "killer) or crashed; its last lines are in train.log")
FAILED = "rank {rank} failed: {error}"


def world_size() -> int:
    """How many processes this run has (torchrun / accelerate launch set WORLD_SIZE in each)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def launcher_pid() -> int:
    """The process a Stop signals: this one, or with several ranks the `accelerate launch` that started them
    (each rank runs in its own session under it)."""
    return os.getppid() if world_size() > 1 else os.getpid()


def die_with_launcher() -> None:
    """Several ranks: end this rank when `accelerate launch` ends, so killing the launcher's process group ends
    every rank although torchrun starts each in a session of its own."""
    if world_size() <= 1:
        return
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the launcher's own teardown still ends the ranks on a graceful stop
    if os.getppid() != parent:  # the launcher ended before the death signal was set
        os._exit(1)


def start(cpu: bool) -> Any:
    """Join the other ranks (gloo on CPU, NCCL on CUDA); one process needs no group. Returns accelerate's state."""
    from accelerate import PartialState

    return PartialState(cpu=cpu)


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a run id, a checkpoint folder)."""
    if world_size() <= 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value])[0]


def gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if world_size() <= 1:
        return [value]
    from accelerate.utils import gather_object

    return gather_object([value])


def any_rank(flag: bool, device: Any) -> bool:
    """Whether ``flag`` is set on any rank (a Stop reaches the ranks at different moments; they end together)."""
    if world_size() <= 1:
        return flag
    import torch

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def barrier() -> None:
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def record_failure(run_dir: Path, message: str) -> None:
    """A rank other than 0 keeps its error in the run folder before it ends, for rank 0 to report."""
    folder = Path(run_dir) / RANK_ERRORS_DIR
    folder.mkdir(exist_ok=True)
    tmp = folder / f".rank-{rank()}.tmp"
    tmp.write_text(json.dumps({"rank": rank(), "pid": os.getpid(), "error": message}), encoding="utf-8")
    tmp.replace(folder / f"rank-{rank()}.json")


def peer_failure(run_dir: Path, peers: list[int], wait: float = PEER_EXIT_WAIT_SECONDS) -> str | None:
    """Why another rank ended, when one did: its recorded error, else that it died without one (``peers`` are
    the ranks' pids in rank order). A killed peer's sockets close while the kernel is still ending it, so this
    rank's collective can fail before the peer looks dead: it is looked for again for up to ``wait`` seconds."""
    deadline = time.monotonic() + (wait if len(peers) > 1 else 0.0)
    while True:
        found = _peer_failure_now(run_dir, peers)
        if found is not None or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


def _peer_failure_now(run_dir: Path, peers: list[int]) -> str | None:
    folder = Path(run_dir) / RANK_ERRORS_DIR
    for path in sorted(folder.glob("rank-*.json")) if folder.is_dir() else []:
        kept = json.loads(path.read_text(encoding="utf-8"))
        return FAILED.format(rank=kept["rank"], error=kept["error"])
    for peer_rank, pid in enumerate(peers):
        if peer_rank != rank() and not alive(pid):
            return DIED.format(rank=peer_rank, pid=pid)
    return None


def clear_failures(run_dir: Path) -> None:
    folder = Path(run_dir) / RANK_ERRORS_DIR
    for path in folder.glob("rank-*.json") if folder.is_dir() else []:
        path.unlink(missing_ok=True)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


class QuietReporter:
    """What a rank other than 0 reports: nothing (rank 0 writes the metrics, statuses and heartbeats)."""

    def running(self, total_steps: int = 0) -> None:
        pass

    def progress(self, **fields: Any) -> None:
        pass

    def metrics(self, row: dict[str, Any]) -> None:
        pass

    def finish(self, status: str, **fields: Any) -> bool:
        return True

    def record_memory_peaks(self, *args: Any, **kwargs: Any) -> None:
        return None
