"""The CUDA half of the throughput bench (prepared for a GPU machine; not yet run): a 7B QLoRA shape with random
weights through the studio and through the plain HF Trainer + PEFT script, and the longest context an 8B QLoRA
trains within a 24 GB budget.

    python bench/throughput_cuda.py pair --pairs 3            # 7B QLoRA, studio vs HF, A B A B
    python bench/throughput_cuda.py context --budget-gb 24    # 8B QLoRA, longest trainable length

Random weights stand in for real ones (no hub): speed and memory depend on the shapes only. Under 10 minutes on
one H100/H200-class GPU (the 7B checkpoint is written once, about 13 GB, to --work).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LLAMA_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096}
LLAMA_8B = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 131072,
            "rope_theta": 500000.0}


def random_checkpoint(shape: dict, folder: Path) -> Path:
    """A Llama of ``shape`` with random bf16 weights and a byte-level tokenizer borrowed from the tiny model."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core.models.tiny_llava import ensure_tiny_llava

    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**shape, dtype="bfloat16")).to(torch.bfloat16)
    model.save_pretrained(folder)
    tiny = ensure_tiny_llava(folder.parent / "tiny")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return folder


def pair(args: argparse.Namespace) -> None:
    """Studio vs HF on the 7B QLoRA shape: steps/s and tokens/s, pair by pair, with medians."""
    import throughput as cpu

    work = Path(args.work)
    model = random_checkpoint(LLAMA_7B, work / "llama-7b-random")
    job = {"name": "qlora7b", "model": str(model), "model_path": str(model), "dataset": str(cpu.alpaca_dataset(work)),
           "data_dir": work / "studio", "vision": False, "modules": cpu.LORA_MODULES.format(scope=""),
           "encoded": work / "encoded-7b.json"}
    job["pad_id"] = cpu.encode(str(model), Path(job["dataset"]), job["encoded"])
    studio_extra = {"method": "qlora", "quantization": "4bit", "compute_dtype": "bf16", "precision": "bf16",
                    "device": "cuda", "max_length": 1024, "gradient_checkpointing": True}
    pairs = []
    for i in range(args.pairs):
        studio = cpu.studio_run(job, work, i, overrides=studio_extra)
        hf = cpu.hf_run(job, work, i, overrides={"use_cpu": False, "qlora": True, "bf16": True,
                                                  "gradient_checkpointing": True})
        pairs.append({"steps_ratio": studio["steps_per_s"] / hf["steps_per_s"], "studio": studio, "hf": hf})
        print(f"7B QLoRA pair {i + 1}: studio {studio['steps_per_s']:.3f} steps/s | HF {hf['steps_per_s']:.3f} "
              f"steps/s | x{pairs[-1]['steps_ratio']:.2f}", flush=True)
    print(f"median x{statistics.median(p['steps_ratio'] for p in pairs):.2f} (target 1.5x)")
    (work / "results-cuda.json").write_text(json.dumps(pairs, indent=2))


def fits(model, length: int, chunked: bool) -> bool:
    """One QLoRA training step (forward, backward) at ``length`` tokens within the memory fraction."""
    import torch

    from jobs.speedups import ChunkedLossModel

    runner = ChunkedLossModel(model) if chunked else model
    ids = torch.randint(0, 32000, (1, length), device="cuda")
    try:
        runner(input_ids=ids, labels=ids).loss.backward()
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()


def context(args: argparse.Namespace) -> None:
    """The longest length an 8B QLoRA step trains at within ``--budget-gb`` (binary search over 1k steps)."""
    import torch

    from core.methods import get_method
    from core.models.loading import load_model
    from core.train_config import TrainConfig

    work = Path(args.work)
    folder = random_checkpoint(LLAMA_8B, work / "llama-8b-random")
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, args.budget_gb * 1e9 / total))
    config = TrainConfig(model=str(folder), method="qlora", quantization="4bit", compute_dtype="bf16",
                         precision="bf16", gradient_checkpointing=True, chunked_loss=True, lora_r=16)
    method = get_method("qlora")
    model = load_model(str(folder), precision="bf16", device="cuda", **method.load_kwargs(config),
                       attn_implementation="flash_attention_2" if args.flash else "sdpa")
    model.config.use_cache = False
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = method.prepare(model, config)
    low, high = 1024, 131072
    while high - low > 1024:
        mid = (low + high) // 2 // 1024 * 1024
        ok = fits(model, mid, chunked=True)
        print(f"{mid} tokens: {'fits' if ok else 'out of memory'}", flush=True)
        low, high = (mid, high) if ok else (low, mid)
    print(f"longest trainable context within {args.budget_gb} GB: {low} tokens (target 64k; HF + FA2 about 5.8k)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("pair", "context"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--budget-gb", type=float, default=24.0)
    parser.add_argument("--flash", action="store_true", help="FlashAttention-2 (flash-attn installed)")
    parser.add_argument("--work", default="/tmp/studio-throughput-cuda")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    Path(args.work).mkdir(parents=True, exist_ok=True)
    (pair if args.what == "pair" else context)(args)


if __name__ == "__main__":
    main()
