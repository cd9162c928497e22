"""The training loop: model, method, data, optimizer, mixed precision, metrics, checkpoints and a graceful stop."""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch

from core.hardware import resolve_device
from core.methods import get_method
from core.methods.base import Method, Target
from core.models.encoding import SampleEncoder
from core.models.families import ImageSettings, family_for
from core.models.loading import facts_of, load_model, load_processor
from core.models.parts import count_parameters
from core.problems import ProblemsError
from core.runs.files import FINAL_DIR
from core.train_config import TrainConfig
from jobs.batches import Collator, batch_stream, encode_dataset, to_device
from jobs.checkpoints import clean_set_aside, load_checkpoint, publish, save_checkpoint
from jobs.in_run_eval import InRunEval, check_finite, encode_eval_split
from jobs.optimizers import build_optimizer, build_scheduler
from jobs.reporter import Reporter


@dataclass
class TrainOutcome:
    steps: int
    stopped: bool
    final_loss: float | None
    artefact_dir: Path
    early_stopped_at: int | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def memory_now(device: str) -> dict[str, float]:
    if device == "cuda":
        return {
            "mem_allocated_mb": torch.cuda.memory_allocated() / 2**20,
            "mem_reserved_mb": torch.cuda.memory_reserved() / 2**20,
            "mem_peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
        }
    return {"mem_rss_mb": psutil.Process().memory_info().rss / 2**20}


def autocast_for(config: TrainConfig, device: str) -> contextlib.AbstractContextManager:
    """Mixed precision computes in bf16/fp16 over fp32 weights; fp32 and pure bf16 need no autocast."""
    if config.precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
        return torch.autocast(device_type=device, dtype=dtype)
    return contextlib.nullcontext()


def align_trainable_dtype(model: torch.nn.Module, precision: str,
                          params: list[torch.nn.Parameter] | None = None) -> None:
    """What trains is bf16 under pure bf16 and fp32 otherwise (mixed precision keeps fp32 master weights).

    ``params`` are the ones the optimizer may update (LISA's layers frozen for now included); by default, those
    that require a gradient.
    """
    dtype = torch.bfloat16 if precision == "pure_bf16" else torch.float32
    for param in params if params is not None else [p for p in model.parameters() if p.requires_grad]:
        if param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)


def disable_kv_cache(model: torch.nn.Module) -> None:
    """Training never reuses keys and values, but with use_cache on transformers would still keep them."""
    for config in (model.config, getattr(model.config, "text_config", None)):
        if config is not None and hasattr(config, "use_cache"):
            config.use_cache = False


def check_against_model(method: Method, config: TrainConfig, model: torch.nn.Module, device: str) -> None:
    """Run the method's rules again now that the model is known (a hub model may not have been before)."""
    errors = [p for p in method.check(config, Target(facts_of(model.config), device == "cuda"))
              if p.severity == "error"]
    if errors:
        raise ProblemsError(errors)


def save_result(method: Method, model: torch.nn.Module, processor: object, folder: Path) -> None:
    """The method's artefact; a full-weights result also gets the processor, so the folder loads on its own."""
    method.save(model, folder)
    if method.artefact == "weights":
        processor.save_pretrained(folder)


def train(config: TrainConfig, model_path: str, dataset_dir: Path, run_dir: Path, reporter: Reporter,
          stop: threading.Event, resume_from: Path | None = None) -> TrainOutcome:
    """Train, or continue from the checkpoint folder ``resume_from``; returns how far it got and the result."""
    seed_everything(config.seed)
    device = resolve_device(config.device)
    images_dtype = torch.bfloat16 if config.precision == "pure_bf16" else None  # mixed precision autocasts them
    method = get_method(config.method)
    processor = load_processor(model_path)
    model = load_model(model_path, precision=config.precision, device=device, **method.load_kwargs(config))
    check_against_model(method, config, model, device)
    disable_kv_cache(model)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model = method.prepare(model, config)
    model.train()
    params = count_parameters(model)
    print(f"parameters: {params}", flush=True)

    encoder = SampleEncoder(processor, config.max_length, ImageSettings.of(config), family_for(model.config),
                            model.config)
    data = encode_dataset(dataset_dir, encoder)
    print(data.report(), flush=True)
    eval_rows = encode_eval_split(dataset_dir, encoder, config.eval_max_rows)
    print(f"eval split: {len(eval_rows)} rows" if eval_rows else "no eval split: training loss only", flush=True)
    micro_per_epoch = math.ceil(len(data.samples) / config.batch_size)
    steps_per_epoch = max(1, math.ceil(micro_per_epoch / config.grad_accum))
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.num_epochs))

    groups = method.optimizer_groups(model, config)
    trainable = [p for group in groups for p in group["params"]]  # LISA: also the layers frozen for now
    align_trainable_dtype(model, config.precision, trainable)
    optimizer = build_optimizer(config, groups)
    scheduler = build_scheduler(config, optimizer, total_steps)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    collate = Collator(encoder)
    evals = InRunEval(config, eval_rows, run_dir, reporter, total_steps, collate,
                      lambda b: to_device(b, device, images_dtype), lambda: autocast_for(config, device),
                      lambda d: save_result(method, model, processor, d))
    step = 0
    if resume_from is not None:
        step = restore(resume_from, model, method, optimizer, scheduler, scaler)
        evals.resume_at(step)
        print(f"resumed from {resume_from.name} at step {step}", flush=True)
        clean_set_aside(run_dir)  # the folders set aside before this resume are no longer needed
    reporter.running(total_steps=total_steps)
    reporter.progress(params=params, step=step)
    if evals.due(step) and step == 0:
        evals.evaluate(model, 0)  # the baseline: the base model (with its untrained additions) on the eval split

    saved_step = step if resume_from is not None else -1  # the step the newest checkpoint holds

    def checkpoint() -> None:
        nonlocal saved_step
        save_checkpoint(run_dir, step, lambda d: save_result(method, model, processor, d),
                        resumable_state(model, method, trainable, optimizer, scheduler, scaler),
                        {"total_steps": total_steps, "loss": last_loss}, config.save_total_limit)
        saved_step = step

    micro, window_loss, window_count, window_tokens = 0, 0.0, 0, 0
    last_loss: float | None = None
    window_start = time.perf_counter()
    grad_norm = 0.0
    stream = batch_stream(data.samples, config.batch_size, config.seed, collate, skip=step * config.grad_accum)
    early_stop = False
    while step < total_steps and not stop.is_set() and not early_stop:
        batch = next(stream)
        if micro % config.grad_accum == 0:
            method.on_step_start(step, model, optimizer)
        batch = to_device(batch, device, images_dtype)
        with autocast_for(config, device):
            loss = model(**batch).loss / config.grad_accum
        micro_loss = loss.item()
        check_finite("training loss", micro_loss * config.grad_accum, step + 1, config)
        (scaler.scale(loss) if scaler else loss).backward()
        window_loss += micro_loss
        window_tokens += int(batch["attention_mask"].sum())
        micro += 1
        if micro % config.grad_accum:
            continue
        if scaler:
            scaler.unscale_(optimizer)
        if config.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm))
            if not scaler:  # under fp16 the scaler skips a step with infinite gradients and lowers its scale
                check_finite("gradient norm", grad_norm, step + 1, config)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        window_count += 1
        if step % config.logging_steps == 0 or step == total_steps:
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            last_loss = window_loss / window_count
            reporter.metrics({
                "step": step, "epoch": round(step / steps_per_epoch, 4), "loss": last_loss,
                "learning_rate": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                "tokens_per_s": window_tokens / elapsed, "time": time.time(), **memory_now(device),
            })
            reporter.progress(step=step, last_loss=last_loss)
            window_loss, window_count, window_tokens = 0.0, 0, 0
            window_start = time.perf_counter()
        if evals.due(step) and not stop.is_set():
            early_stop = evals.evaluate(model, step).stop_early
        if config.save_steps and step % config.save_steps == 0 and step < total_steps and not early_stop:
            checkpoint()

    stopped = stop.is_set() and step < total_steps and not early_stop
    if stopped and saved_step != step:
        checkpoint()  # whatever "Save every N steps" says, a stopped run can be resumed
    if not stopped and evals.due(step):  # the end, when the last step was not evaluated (no time after a Stop)
        evals.evaluate(model, step)
    artefact = publish(Path(run_dir) / FINAL_DIR, lambda d: save_result(method, model, processor, d))
    return TrainOutcome(steps=step, stopped=stopped, final_loss=last_loss, artefact_dir=artefact,
                        early_stopped_at=evals.early_stopped_at)


def resumable_state(model: torch.nn.Module, method: Method, trainable: list[torch.nn.Parameter], optimizer: Any,
                    scheduler: Any, scaler: Any) -> dict[str, Any]:
    """Everything a checkpoint needs to continue exactly: every tensor that can train, by name, and the states."""
    ids = {id(p) for p in trainable}
    weights = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if id(p) in ids}
    return {"weights": weights, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None, "method": method.training_state(model)}


def restore(folder: Path, model: torch.nn.Module, method: Method, optimizer: Any, scheduler: Any,
            scaler: Any) -> int:
    """Load a checkpoint into a freshly prepared model and its optimizer; returns the step it was taken at."""
    step, saved = load_checkpoint(folder)
    params = dict(model.named_parameters())
    missing = [n for n in saved["weights"] if n not in params]
    if missing:
        raise ValueError(f"checkpoint {folder} does not fit this model ({len(missing)} unknown tensors, e.g. "
                         f"{missing[0]}); was the config changed?")
    with torch.no_grad():
        for name, tensor in saved["weights"].items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
    method.restore_training_state(model, saved["method"], optimizer)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if scaler and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    return step
