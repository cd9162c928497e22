"""Run by tests/test_sharded_checkpoint.py under torchrun (CPU ranks, gloo): the tiny model with a method on top,
sharded with FSDP2, trained, checkpointed and given a result through the loop's own functions, then restored into
a fresh sharded copy that must continue exactly as the original does.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/fsdp_worker.py MODEL METHOD OUT
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from core.methods import get_method
from core.models.loading import load_model, load_processor
from core.runs.files import FINAL_DIR
from core.train_config import TrainConfig
from jobs.checkpoints import publish, save_checkpoint
from jobs.loop import save_result, whole_weights
from jobs.optimizers import build_optimizer, build_scheduler
from jobs.resume_state import restore, resumable_state
from jobs.sharded import is_sharded


def build(model_path: str, config: TrainConfig, mesh: Any) -> tuple[Any, ...]:
    torch.manual_seed(0)
    method = get_method(config.method)
    model = method.prepare(load_model(model_path, **method.load_kwargs(config)), config)
    model.train()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for layer in base.model.language_model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    groups = method.optimizer_groups(model, config)
    optimizer = build_optimizer(config, groups)
    return method, model, optimizer, build_scheduler(config, optimizer, 10), [p for g in groups for p in g["params"]]


def step(model: Any, optimizer: Any, scheduler: Any, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed * 10 + dist.get_rank())
    ids = torch.randint(3, 200, (2, 12), generator=generator)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def main(model_path: str, method_name: str, out: Path) -> None:
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    quantized = {"quantization": "4bit", "quant_type": "nf4", "double_quant": True} if method_name == "qlora" else {}
    config = TrainConfig.from_dict({"run_name": "fsdp", "method": method_name, "learning_rate": 1e-2, **quantized,
                                    "lora_dropout": 0.0, "lora_r": 4, "lora_alpha": 8})
    if method_name == "qlora":  # the 4-bit storage FSDP needs (Check allows FSDP on CUDA only, so set here)
        config = dataclasses.replace(config, strategy="fsdp")
    processor = load_processor(model_path)
    method, model, optimizer, scheduler, trainable = build(model_path, config, mesh)
    for seed in range(3):
        step(model, optimizer, scheduler, seed)
    state = resumable_state(model, method, trainable, optimizer, scheduler, None)
    whole = whole_weights(method, model)
    folder = out / "checkpoints" / "step-00000003"
    if dist.get_rank() == 0:
        save_checkpoint(out, 3, lambda d: save_result(method, model, processor, d, whole), state,
                        {"total_steps": 10, "loss": None, "processes": dist.get_world_size()}, keep=2)
        publish(out / FINAL_DIR, lambda d: save_result(method, model, processor, d, whole))
    dist.barrier()
    went_on = [step(model, optimizer, scheduler, seed) for seed in range(3, 6)]
    method, fresh, optimizer, scheduler, _ = build(model_path, config, mesh)
    restored_at = restore(folder, fresh, method, optimizer, scheduler, None)
    resumed = [step(fresh, optimizer, scheduler, seed) for seed in range(3, 6)]
    import bitsandbytes as bnb

    four_bit = [m.weight for m in fresh.modules() if isinstance(m, bnb.nn.Linear4bit)]
    (out / f"rank-{dist.get_rank()}.json").write_text(json.dumps(
        {"sharded": is_sharded(model), "went_on": went_on, "resumed": resumed, "restored_at": restored_at,
         "four_bit_layers": len(four_bit), "four_bit_storage": str(four_bit[0].dtype) if four_bit else None,
         "four_bit_sharded": all(type(w).__name__ == "DTensor" for w in four_bit)}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
