"""The training loop on accelerate: model, method, data, optimizer, mixed precision, one or several ranks,
metrics, checkpoints and a graceful stop."""

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
from core.scale import attention_for
from core.train_config import TrainConfig
from jobs import ranks
from jobs.batches import Collator, PackingCollator, batch_stream, encode_dataset, to_device, token_count
from jobs.checkpoints import clean_set_aside, publish, save_checkpoint
from jobs.in_run_eval import InRunEval, encode_eval_split
from jobs.optimizers import build_optimizer, build_scheduler
from jobs.reporter import Reporter, say
from jobs.resume_state import restore, resumable_state
from jobs.sharded import full_model_state, full_tensors, is_sharded
from jobs.speedups import ChunkedLossModel, apply_liger
from jobs.step_window import StepWindow

DEEPSPEED_RESUME = ("resuming a DeepSpeed run is not supported yet (each rank's optimizer partition is not saved); "
                    "start it again, or use FSDP, whose checkpoints resume")


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


def save_result(method: Method, model: torch.nn.Module, processor: object, folder: Path,
                whole: dict[str, torch.Tensor] | None = None) -> None:
    """The method's artefact (from ``whole`` when the ranks shard the weights); a full-weights result also gets
    the processor, so the folder loads on its own."""
    method.save(model, folder, whole)
    if method.artefact == "weights":
        processor.save_pretrained(folder)


def whole_weights(method: Method, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """With FSDP, what the artefact holds, gathered whole onto every rank (collective); None when not sharded."""
    if not is_sharded(model):
        return None
    if method.artefact == "weights":
        return full_model_state(model)
    return full_tensors(model, {n for n, p in model.named_parameters() if p.requires_grad})


def make_accelerator(config: TrainConfig) -> Any:
    """accelerate's Accelerator for this run: its device (this rank's), mixed precision, accumulation."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    # accelerate keeps its settings process-wide; a run in a process that ran another (tests, benches) starts
    # afresh, keeping only the process group of several ranks.
    AcceleratorState._reset_state(reset_partial_state=ranks.world_size() <= 1)
    GradientState._reset_state()
    return Accelerator(cpu=resolve_device(config.device) == "cpu", gradient_accumulation_steps=config.grad_accum,
                       mixed_precision={"bf16": "bf16", "fp16": "fp16"}.get(config.precision, "no"),
                       step_scheduler_with_optimizer=False)


def train(config: TrainConfig, model_path: str, dataset_dir: Path, run_dir: Path, reporter: Reporter,
          stop: threading.Event, resume_from: Path | None = None) -> TrainOutcome:
    """Train, or continue from the checkpoint folder ``resume_from``; returns how far it got and the result.
    With several ranks every rank runs this; only rank 0 (``main``) writes metrics, checkpoints and results."""
    seed_everything(config.seed)
    accelerator = make_accelerator(config)
    device, main, world = accelerator.device, accelerator.is_main_process, accelerator.num_processes
    log = say if main else (lambda _text: None)
    images_dtype = torch.bfloat16 if config.precision == "pure_bf16" else None  # mixed precision autocasts them
    method = get_method(config.method)
    processor = load_processor(model_path)
    attention = attention_for(config.attention, device.type == "cuda")
    model = load_model(model_path, precision=config.precision, device=str(device), **method.load_kwargs(config),
                       **({"attn_implementation": attention} if attention else {}))
    check_against_model(method, config, model, device.type)
    disable_kv_cache(model)
    if config.liger:
        apply_liger(model)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model = method.prepare(model, config)
    model.train()
    params = count_parameters(model)
    log(f"parameters: {params}")

    encoder = SampleEncoder(processor, config.max_length, ImageSettings.of(config), family_for(model.config),
                            model.config)
    data = encode_dataset(dataset_dir, encoder)
    log(data.report())
    eval_rows = encode_eval_split(dataset_dir, encoder, config.eval_max_rows)
    log(f"eval split: {len(eval_rows)} rows" if eval_rows else "no eval split: training loss only")
    micro_per_step = config.grad_accum * world  # every rank accumulates its share of the global batch
    steps_per_epoch = max(1, math.ceil(math.ceil(len(data.samples) / config.batch_size) / micro_per_step))
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.num_epochs))

    groups = method.optimizer_groups(model, config)
    trainable = [p for group in groups for p in group["params"]]  # LISA: also the layers frozen for now
    align_trainable_dtype(model, config.precision, trainable)
    optimizer = build_optimizer(config, groups)
    scheduler = build_scheduler(config, optimizer, total_steps)
    # What runs the forward pass: the model, or its chunked-loss wrapper; DDP / FSDP / DeepSpeed wrap that.
    runner, optimizer = accelerator.prepare(ChunkedLossModel(model) if config.chunked_loss else model, optimizer)
    # FSDP2 replaces the parameters with sharded ones (and the optimizer's with them): clipping and checkpoints
    # must use those, not the list taken before.
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    scaler = accelerator.scaler
    collate = PackingCollator(encoder) if config.packing else Collator(encoder)
    evals = InRunEval(config, eval_rows, run_dir, reporter, total_steps, Collator(encoder),
                      lambda b: to_device(b, device, images_dtype), lambda: autocast_for(config, device.type),
                      lambda d, whole: save_result(method, model, processor, d, whole), main=main,
                      gather=lambda: whole_weights(method, model))
    step = 0
    if resume_from is not None:
        if accelerator.distributed_type.value == "DEEPSPEED":
            raise ValueError(DEEPSPEED_RESUME)
        step = restore(resume_from, model, method, optimizer, scheduler, scaler)
        evals.resume_at(step)
        log(f"resumed from {resume_from.name} at step {step}")
        if main:
            clean_set_aside(run_dir)  # the folders set aside before this resume are no longer needed
    reporter.running(total_steps=total_steps)
    reporter.progress(params=params, step=step)
    if evals.due(step) and step == 0:
        evals.evaluate(model, 0)  # the baseline: the base model (with its untrained additions) on the eval split

    saved_step = step if resume_from is not None else -1  # the step the newest checkpoint holds
    window = StepWindow(device, world)

    def checkpoint() -> None:
        nonlocal saved_step
        window.check(config)  # never a checkpoint of diverged weights
        state = resumable_state(model, method, trainable, optimizer, scheduler, scaler)  # collective
        whole = whole_weights(method, model)  # collective
        if main:
            save_checkpoint(run_dir, step, lambda d: save_result(method, model, processor, d, whole), state,
                            {"total_steps": total_steps, "loss": last_loss, "processes": world},
                            config.save_total_limit)
        ranks.barrier()
        saved_step = step

    last_loss: float | None = None
    stream = batch_stream(data.samples, config.batch_size, config.seed, collate, skip=step * micro_per_step,
                          group_by_length=config.group_by_length, rank=accelerator.process_index, world=world)
    early_stop = stopping = False
    while step < total_steps and not stopping and not early_stop:
        batch = next(stream)
        if accelerator.gradient_state.sync_gradients:  # the first micro-batch of a step
            method.on_step_start(step, model, optimizer)
        tokens = token_count(batch)
        batch = to_device(batch, device, images_dtype)
        with accelerator.accumulate(runner):
            loss = runner(**batch).loss
            window.add_micro(loss / config.grad_accum, step + 1, tokens)
            accelerator.backward(loss)  # divides by the accumulation; DDP averages over the ranks
            # The spent graph still holds activations (hundreds of MB on a 135M model) until the last reference
            # goes: never let it live through the next forward pass.
            del loss, batch
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(trainable, config.max_grad_norm) \
                    if config.max_grad_norm > 0 else None
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            continue
        step += 1
        window.add_step(grad_norm, step, check_grad=scaler is None)
        if step % config.logging_steps == 0 or step == total_steps:
            row = window.read(config)  # the one host sync of the window
            last_loss = row["loss"]
            reporter.metrics({"step": step, "epoch": round(step / steps_per_epoch, 4), **row,
                              "learning_rate": scheduler.get_last_lr()[0], "time": time.time(),
                              **memory_now(device.type)})
            reporter.progress(step=step, last_loss=last_loss)
        stopping = ranks.any_rank(stop.is_set(), device)  # every rank stops after the same step
        if evals.due(step) and not stopping:
            window.check(config)
            early_stop = evals.evaluate(model, step).stop_early
        if config.save_steps and step % config.save_steps == 0 and step < total_steps and not early_stop:
            checkpoint()

    stopped = stopping and step < total_steps and not early_stop
    if stopped and saved_step != step:
        checkpoint()  # whatever "Save every N steps" says, a stopped run can be resumed
    window.check(config)
    if not stopped and evals.due(step):  # the end, when the last step was not evaluated (no time after a Stop)
        evals.evaluate(model, step)
    artefact = Path(run_dir) / FINAL_DIR
    whole = whole_weights(method, model)  # collective
    if main:
        artefact = publish(artefact, lambda d: save_result(method, model, processor, d, whole))
    ranks.barrier()
    return TrainOutcome(steps=step, stopped=stopped, final_loss=last_loss, artefact_dir=artefact,
                        early_stopped_at=evals.early_stopped_at)


