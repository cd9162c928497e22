"""Peak GPU memory and tokens/s of LoRA, QLoRA 4-bit and LISA at LLaVA-1.5-7B shapes, beside the studio's estimate.

The model has LLaVA-1.5-7B's shapes (Llama-2-7B + CLIP ViT-L/14-336, from tests/fixtures/model_configs) and random
weights: no download, and peak memory and step time are the same as with real weights. Each method runs in its own
process (clean peaks), through the studio's own loading, method and optimizer code, for a few steps of batch 1.

On a CUDA machine:  python bench/gpu_methods.py --seq 2048 --steps 6 --out docs/gpu-methods.csv
CPU smoke run:      python bench/gpu_methods.py --tiny --device cpu --steps 2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURE = ROOT / "tests" / "fixtures" / "model_configs" / "llava-1.5-7b.json"
METHODS = {
    "lora": {"method": "lora", "lora_r": 8, "lora_alpha": 16, "lora_targets": "all-linear"},
    "qlora": {"method": "qlora", "quantization": "4bit", "quant_type": "nf4", "double_quant": True,
              "compute_dtype": "bf16", "lora_r": 8, "lora_alpha": 16, "lora_targets": "all-linear"},
    "lisa": {"method": "lisa", "lisa_layers": 2, "lisa_interval": 2},
}


def random_model(folder: Path, tiny: bool) -> Path:
    """A model folder with random weights: the tiny model, or LLaVA-1.5-7B's shapes in bf16 (about 14 GB)."""
    if tiny:
        from core.models.tiny_llava import ensure_tiny_llava

        return ensure_tiny_llava(folder)
    target = folder / "llava-1.5-7b-random"
    if (target / "model.safetensors.index.json").is_file() or (target / "model.safetensors").is_file():
        return target
    import torch
    from transformers import AutoConfig, LlavaForConditionalGeneration

    staging = folder / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE, staging / "config.json")
    config = AutoConfig.from_pretrained(staging)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = LlavaForConditionalGeneration(config)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(target)
    shutil.rmtree(staging)
    return target


def synthetic_batch(model, seq: int, device: str) -> dict:
    """One sample: the image's tokens, then random text, trained on the text; pixels at the tower's size."""
    import torch

    config = model.config
    vision = config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2  # "default" strategy drops CLS: one token per patch
    image_id = config.image_token_id
    text_len = seq - patches
    ids = torch.randint(3, min(image_id, config.text_config.vocab_size) - 1, (1, text_len))
    input_ids = torch.cat([torch.full((1, patches), image_id), ids], dim=1)
    labels = input_ids.clone()
    labels[:, :patches] = -100
    pixels = torch.randn(1, 3, vision.image_size, vision.image_size)
    return {"input_ids": input_ids.to(device), "attention_mask": torch.ones_like(input_ids).to(device),
            "labels": labels.to(device), "pixel_values": pixels.to(device)}


def run_one(name: str, model_dir: Path, seq: int, steps: int, device: str) -> dict:
    """Train ``steps`` steps of one method in this process; returns peaks, step time and the estimate."""
    import torch

    from core.memory import estimate, inputs_from_train_config, read_architecture
    from core.methods import get_method
    from core.models.loading import load_model
    from core.train_config import TrainConfig
    from jobs.loop import align_trainable_dtype, autocast_for, disable_kv_cache
    from jobs.optimizers import build_optimizer

    config = TrainConfig.from_dict({"model": str(model_dir), "precision": "bf16", "gradient_checkpointing": True,
                                    "batch_size": 1, "max_length": seq, "device": device, **METHODS[name]})
    method = get_method(config.method)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = load_model(str(model_dir), precision=config.precision, device=device, **method.load_kwargs(config))
    disable_kv_cache(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = method.prepare(model, config)
    groups = method.optimizer_groups(model, config)
    align_trainable_dtype(model, config.precision, [p for g in groups for p in g["params"]])
    optimizer = build_optimizer(config, groups)
    model.train()
    batch = synthetic_batch(model, seq, device)
    batch["pixel_values"] = batch["pixel_values"].to(next(model.parameters()).dtype if device == "cpu"
                                                     else torch.bfloat16)
    times = []
    for step in range(steps + 1):  # step 0 warms up (kernels, allocator) and is not timed
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        method.on_step_start(step, model, optimizer)
        with autocast_for(config, device):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    est = estimate(inputs_from_train_config(config, read_architecture(model_dir / "config.json")))
    result = {"method": name, "seq": seq, "steps": steps, "loss": float(loss), "device": device,
              "step_s": sum(times) / len(times), "tokens_per_s": seq * len(times) / sum(times),
              "est_total_gb": est.total_gb, "est_allocated_gb": est.allocated_gb, "est_reserved_gb": est.reserved_gb}
    if device == "cuda":
        result.update(gpu=torch.cuda.get_device_name(), peak_allocated_gb=torch.cuda.max_memory_allocated() / 1e9,
                      peak_reserved_gb=torch.cuda.max_memory_reserved() / 1e9)
    else:
        import psutil

        result["rss_gb"] = psutil.Process().memory_info().rss / 1e9
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lora,qlora,lisa")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tiny model's shapes (a smoke test)")
    parser.add_argument("--work", default=None, help="where the random model is written (default: a temp dir)")
    parser.add_argument("--out", default=None, help="CSV to append results to")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, Path(args.model_dir), args.seq, args.steps, args.device)), flush=True)
        return 0
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu-methods-"))
    model_dir = random_model(work, args.tiny)
    rows = []
    for name in args.methods.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--model-dir", str(model_dir), "--seq", str(args.seq),
               "--steps", str(args.steps), "--device", args.device]
        done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        if done.returncode:
            print(f"{name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    if args.out and rows:
        out = Path(args.out)
        fields = sorted({k for r in rows for k in r})
        new = not out.exists()
        with out.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            if new:
                writer.writeheader()
            writer.writerows(rows)
    return 0 if len(rows) == len(args.methods.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
