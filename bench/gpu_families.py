"""Peak GPU memory and step time of LoRA and QLoRA for every model family at its common size, beside the estimate.

Each family is built from its real config (tests/fixtures/model_configs: Qwen2-VL-7B, Qwen2.5-VL-7B, Qwen3-VL-8B,
LLaVA-1.5-7B, LLaVA-NeXT-Mistral-7B, LLaVA-OneVision-7B, Gemma-3-4B, SmolVLM-2.2B, Idefics3-8B, PaliGemma2-3B-448,
Llama-3.2-11B-Vision, Llama-3-8B) with random weights directly on the GPU in bf16 (no download, no disk: peak memory
and step time are the same as with real weights). QLoRA quantizes the family's language-model layers to NF4 with
double quantization in place, as bitsandbytes does when it loads a checkpoint, leaving the family's skip list
unquantized. One sample of batch 1: a 336x336 image expanded by the family's real processor (at its real image
settings, with a small tokenizer), then text up to the length, trained on; bf16 mixed precision, gradient
checkpointing, AdamW, the studio's own method, encoder and collator code. Each family runs in its own process.

On a CUDA machine:  python bench/gpu_families.py --seq 2048 --steps 4 --out docs/gpu-families.csv
CPU smoke run:      python bench/gpu_families.py --tiny --device cpu --steps 1 --seq 256
Common sizes, no GPU: python bench/gpu_families.py --dry   (meta-device models: batches and estimates only)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "llava", "llava_next", "llava_onevision", "gemma3", "smolvlm",
            "idefics3", "paligemma", "mllama", "llama")
METHODS = {
    "lora": {"method": "lora", "lora_r": 16, "lora_alpha": 32, "lora_targets": "all-linear"},
    "qlora": {"method": "qlora", "quantization": "4bit", "quant_type": "nf4", "double_quant": True,
              "compute_dtype": "bf16", "lora_r": 16, "lora_alpha": 32, "lora_targets": "all-linear"},
}
IMAGE = (336, 336)
# Idefics3 and SmolVLM enlarge every image to a 1456/1536 px longest edge (17 tiles, 2873/1377 tokens); at 728/768
# px (2x2 tiles and the whole image) the sample stays inside 2048 tokens.
IMAGE_SETTINGS = {"idefics3": {"image_size": 728}, "smolvlm": {"image_size": 768}}


def build(name: str, tiny: bool, device: str):
    """(model in bf16 on ``device`` with random weights, processor, config.json dict) of a family."""
    import family_models as fm
    import torch
    from family_common import FIXTURES, common
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    if tiny:
        config, processor = fm.BUILDERS[name]()
    else:
        config, processor = common(name)
    auto = AutoModelForCausalLM if name in fm.TEXT_MODELS else AutoModelForImageTextToText
    torch.manual_seed(0)
    with torch.device(device):
        model = auto.from_config(config, dtype=torch.bfloat16)
    source = config.to_dict() if tiny else fm.fixture(FIXTURES[name])
    return model, processor, source


def quantize_language(model, compute_dtype) -> int:
    """Replace the language model's linear layers by NF4 ones (double quantization), as bitsandbytes does when it
    loads a checkpoint; the family's skip list stays unquantized. Returns how many layers were quantized."""
    import bitsandbytes as bnb
    import torch
    from bitsandbytes.functional import quantize_4bit

    from core.models.parts import family_of

    family = family_of(model)
    count = 0
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if type(child) is not torch.nn.Linear or family.part_of(full) != "language":
                continue
            if any(full == s or full.startswith(s + ".") for s in family.quantize_skip):
                continue
            layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=compute_dtype, compress_statistics=True, quant_type="nf4",
                                      quant_storage=torch.uint8, device="meta")
            packed, state = quantize_4bit(child.weight.data, quant_type="nf4", compress_statistics=True,
                                          quant_storage=torch.uint8)
            layer.weight = bnb.nn.Params4bit(packed, requires_grad=False, quant_state=state, quant_type="nf4",
                                             compress_statistics=True, quant_storage=torch.uint8, bnb_quantized=True,
                                             module=layer)
            if child.bias is not None:
                layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, child_name, layer)
            count += 1
    return count


def batch_of(model, processor, seq: int, device: str, images_dir: Path, config=None) -> dict:
    """One sample: the image, a question, then answer text up to ``seq`` tokens, through the studio's encoder."""
    import torch
    from PIL import Image

    from core.datasets.records import Message, Sample
    from core.models.encoding import SampleEncoder
    from core.models.families import ImageSettings, family_for
    from jobs.batches import Collator, to_device

    encoder = SampleEncoder(processor, 1 << 20, ImageSettings.of(config), family_for(model.config), model.config)
    if encoder.vision:
        Image.new("RGB", IMAGE, (90, 140, 200)).save(images_dir / "photo.png")
        sample = Sample("b", [Message("user", "<image>Describe the image."), Message("assistant", "A photo.")],
                        ["photo.png"])
    else:
        sample = Sample("b", [Message("user", "Describe the sea."), Message("assistant", "Blue.")])
    encoded = encoder.encode(sample, images_dir)
    if encoded.problem:
        raise RuntimeError(encoded.problem)
    filler = torch.randint(100, 300, (max(seq - len(encoded.input_ids), 0),)).tolist()
    encoded.input_ids, encoded.labels = encoded.input_ids + filler, encoded.labels + filler
    batch = Collator(encoder)([encoded])
    return to_device(batch, device), sum(encoded.image_tokens), len(encoded.input_ids)


def run_one(name: str, method_name: str, tiny: bool, seq: int, steps: int, device: str) -> dict:
    """Build the family, train ``steps`` steps with one method; returns peaks, step time and the estimate."""
    import torch

    from core.memory import estimate, inputs_from_train_config, read_architecture
    from core.methods import get_method
    from core.train_config import TrainConfig
    from jobs.loop import align_trainable_dtype, autocast_for, disable_kv_cache
    from jobs.optimizers import build_optimizer

    config = TrainConfig.from_dict({"precision": "bf16", "gradient_checkpointing": True, "batch_size": 1,
                                    "max_length": seq, "device": device, **METHODS[method_name],
                                    **({} if tiny else IMAGE_SETTINGS.get(name, {}))})
    method = get_method(config.method)
    model, processor, source = build(name, tiny, device)
    if method_name == "qlora":
        quantize_language(model, torch.bfloat16)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    disable_kv_cache(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = method.prepare(model, config)
    groups = method.optimizer_groups(model, config)
    align_trainable_dtype(model, config.precision, [p for g in groups for p in g["params"]])
    optimizer = build_optimizer(config, groups)
    model.train()
    with tempfile.TemporaryDirectory() as images:
        batch, image_tokens, length = batch_of(model, processor, seq, device, Path(images), config)
    times = []
    for step in range(steps + 1):  # step 0 warms up (kernels, allocator) and is not timed
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast_for(config, device):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:
            times.append(time.perf_counter() - start)
    est = estimate(inputs_from_train_config(config, read_architecture(source)))
    result = {"family": name, "method": method_name, "seq": length, "image_tokens": image_tokens, "steps": steps,
              "loss": float(loss), "device": device, "step_s": sum(times) / len(times),
              "est_total_gb": est.total_gb, "est_allocated_gb": est.allocated_gb, "est_reserved_gb": est.reserved_gb}
    if device == "cuda":
        result.update(gpu=torch.cuda.get_device_name(), peak_allocated_gb=torch.cuda.max_memory_allocated() / 1e9,
                      peak_reserved_gb=torch.cuda.max_memory_reserved() / 1e9)
    return result


def dry_run(name: str, seq: int) -> dict:
    """The common-size model on the meta device (no memory), its real processor's batch, and the estimate of
    both methods: checks the configs, processors and token ids a GPU run will use, on any machine."""
    from core.memory import estimate, inputs_from_train_config, read_architecture
    from core.train_config import TrainConfig

    model, processor, source = build(name, False, "meta")
    images_config = TrainConfig.from_dict({"device": "cpu", **IMAGE_SETTINGS.get(name, {})})
    with tempfile.TemporaryDirectory() as images:
        batch, image_tokens, length = batch_of(model, processor, seq, "cpu", Path(images), images_config)
    result = {"family": name, "seq": length, "image_tokens": image_tokens, "inputs": sorted(batch)}
    for method, settings in METHODS.items():
        config = TrainConfig.from_dict({"precision": "bf16", "gradient_checkpointing": True, "batch_size": 1,
                                        "max_length": seq, "device": "cpu", **settings,
                                        **IMAGE_SETTINGS.get(name, {})})
        result[f"est_{method}_gb"] = round(estimate(inputs_from_train_config(config, read_architecture(source)))
                                           .total_gb, 2)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--methods", default="lora,qlora")
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny models (a CPU smoke run)")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds; families not started by then are left")
    parser.add_argument("--dry", action="store_true", help="common sizes on the meta device: batches and estimates")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # family:method, run in this process
    args = parser.parse_args()
    if args.one:
        name, method = args.one.split(":")
        print(json.dumps(run_one(name, method, args.tiny, args.seq, args.steps, args.device)), flush=True)
        return 0
    if args.dry:
        for name in args.families.split(","):
            print(json.dumps(dry_run(name, args.seq)), flush=True)
        return 0
    started, rows = time.monotonic(), []
    for name in args.families.split(","):
        for method in args.methods.split(","):
            if time.monotonic() - started > args.budget:
                print(f"{name} {method}: not run (budget of {args.budget:.0f} s spent)", flush=True)
                continue
            command = [sys.executable, __file__, "--one", f"{name}:{method}", "--seq", str(args.seq), "--steps",
                       str(args.steps), "--device", args.device] + (["--tiny"] if args.tiny else [])
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                rows.append({"family": name, "method": method, "error": " | ".join(tail)})
            else:
                rows.append(json.loads(lines[-1]))
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        fields = sorted({k for row in rows for k in row})
        with args.out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return 0 if all("error" not in row for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
