"""How a job ends when training raises: out of memory is told apart and advised on; any error keeps its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from jobs_helpers import fast_config

import jobs.loop
import jobs.train
from core.store.registry import Registry


def run_in_process(data_dir: Path, tmp_path: Path, monkeypatch, error: BaseException) -> int:
    def explode(*_args, **_kwargs):
        print("loading the model... step 0", flush=True)
        raise error

    monkeypatch.setattr(jobs.loop, "train", explode)
    config_path = tmp_path / "config.json"
    fast_config().save(config_path)
    return jobs.train.main(["--config", str(config_path), "--data-dir", str(data_dir)])


def test_cuda_out_of_memory_is_recognised_and_advised(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total)")
    assert run_in_process(data_dir, tmp_path, monkeypatch, oom) == jobs.train.EXIT_OOM
    (run,) = Registry(data_dir / "studio.db").list_runs()
    assert run.status == "failed_oom" and run.exit_code == jobs.train.EXIT_OOM
    assert "Tried to allocate 2.00 GiB" in run.error
    for advice in ("gradient checkpointing", "micro-batch", "max length", "4-bit"):
        assert advice in run.error


@pytest.mark.parametrize("error", [RuntimeError("shapes do not match"), KeyError("pixel_values")])
def test_a_failure_keeps_the_message_and_the_log_tail(data_dir: Path, tmp_path: Path, monkeypatch,
                                                      error: BaseException) -> None:
    assert run_in_process(data_dir, tmp_path, monkeypatch, error) == jobs.train.EXIT_FAILED
    (run,) = Registry(data_dir / "studio.db").list_runs()
    assert run.status == "failed" and run.exit_code == jobs.train.EXIT_FAILED
    assert type(error).__name__ in run.error and str(error.args[0]) in run.error
    assert "in explode" in run.error  # where it was raised: the traceback's tail travels with the status
