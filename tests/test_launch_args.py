"""The `accelerate launch` command of a run on several GPUs, read by accelerate's own launcher: its parser, its
checks and the environment it gives each rank, for DDP, FSDP2 and DeepSpeed ZeRO-2/3 (this machine has no GPU, so
nothing is launched; the CPU path runs for real in test_multi_process.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

import core.runs.launcher as launcher
from core.train_config import TrainConfig


def read_by_accelerate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **settings: object):
    """The studio's command for a CUDA run with these settings, and accelerate's reading of its arguments."""
    monkeypatch.setattr(launcher, "resolve_device", lambda device: "cuda")
    config = dataclasses.replace(TrainConfig(), gpus="0,1", precision="bf16", grad_accum=4, **settings)
    command = launcher.headless_command(tmp_path / "config.json", tmp_path, run_id=7, config=config)
    start = len(launcher.accelerate_launch())
    assert command[:start] == launcher.accelerate_launch()
    args = launch_command_parser().parse_args(command[start:])
    args, _, _ = _validate_launch_command(args)
    assert (args.module, args.training_script) == (True, "jobs.train")
    assert args.training_script_args == ["--config", str(tmp_path / "config.json"), "--data-dir", str(tmp_path),
                                         "--run-id", "7"]
    assert (args.num_processes, args.num_machines, args.gpu_ids, args.mixed_precision) == (2, 1, "0,1", "bf16")
    return args


def test_ddp_starts_a_process_per_gpu(monkeypatch, tmp_path: Path) -> None:
    args = read_by_accelerate(monkeypatch, tmp_path, strategy="ddp")
    assert args.multi_gpu and not (args.use_fsdp or args.use_deepspeed)
    env = prepare_multi_gpu_env(args)
    assert args.nproc_per_node == "2" and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert "ACCELERATE_USE_FSDP" not in env and "ACCELERATE_USE_DEEPSPEED" not in env


@pytest.mark.parametrize("offload", [False, True])
def test_fsdp_is_fsdp2_sharded_by_layer_with_whole_checkpoints(monkeypatch, tmp_path: Path, offload: bool) -> None:
    args = read_by_accelerate(monkeypatch, tmp_path, strategy="fsdp", offload=offload)
    assert args.use_fsdp and not args.multi_gpu
    env = prepare_multi_gpu_env(args)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "TRANSFORMER_BASED_WRAP"  # one shard unit per decoder layer
    assert env["FSDP_OFFLOAD_PARAMS"] == str(offload).lower()
    for key, value in env.items():  # as each rank's Accelerator reads it
        if key.startswith(("FSDP_", "ACCELERATE_")):
            monkeypatch.setenv(key, value)
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.state_dict_type.name == "FULL_STATE_DICT"
    assert (type(plugin.cpu_offload).__name__ == "CPUOffloadPolicy") == offload
    assert plugin.auto_wrap_policy.__name__ == "transformer_auto_wrap_policy"


@pytest.mark.parametrize(("stage", "offload"), [("2", False), ("2", True), ("3", True)])
def test_deepspeed_zero_stage_offload_accumulation_and_clipping(monkeypatch, tmp_path: Path, stage: str,
                                                                offload: bool) -> None:
    args = read_by_accelerate(monkeypatch, tmp_path, strategy=f"deepspeed_zero{stage}", offload=offload,
                              max_grad_norm=0.5)
    assert args.use_deepspeed and not args.multi_gpu
    args.deepspeed_fields_from_accelerate_config = ""  # what `accelerate launch` sets without a config file
    _, env = prepare_deepspeed_cmd_env(args)
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == stage
    assert env["ACCELERATE_GRADIENT_ACCUMULATION_STEPS"] == "4" and env["ACCELERATE_GRADIENT_CLIPPING"] == "0.5"
    assert env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") == ("cpu" if offload else "none")
    assert env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none") == ("cpu" if stage == "3" else "none")
