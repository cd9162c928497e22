"""Speed and scale settings: what the GPUs field means, the checks of the speed, strategy and tracking options,
and the `accelerate launch` arguments a run with several processes starts with."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from core.problems import Problem

ATTENTIONS = ("auto", "sdpa", "flash_attention_2", "eager")
STRATEGIES = (("DDP (a full copy per GPU)", "ddp"), ("FSDP (shards weights, gradients and optimizer)", "fsdp"),
              ("DeepSpeed ZeRO-2 (shards gradients and optimizer)", "deepspeed_zero2"),
              ("DeepSpeed ZeRO-3 (shards everything)", "deepspeed_zero3"))
REPORT_TO = ("none", "tensorboard", "wandb")
SHARDED = ("fsdp", "deepspeed_zero2", "deepspeed_zero3")
SPEED_HELP = {  # the help texts of TrainConfig's speed, GPU and tracking fields
    "group_by_length": "Sort samples by length (images apart from text) inside mega-batches of 50 micro-batches, so "
                       "a batch pads little; the order is still shuffled from the seed.",
    "packing": "Text-only batches are one row of concatenated samples (positions restart per sample, attention "
               "stays inside each): no padding at all. Batches with images are padded as usual.",
    "chunked_loss": "Compute the loss 1024 tokens at a time, recomputing each chunk's logits in the backward pass: "
                    "the full-length logits (vocabulary x tokens) never exist. Helps long contexts.",
    "attention": "auto: FlashAttention-2 when flash-attn is installed on CUDA, else PyTorch SDPA.",
    "liger": "Fused Triton kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy) from liger-kernel; CUDA only.",
    "gpus": "Empty or 1: one process. A number N: N processes (on GPUs 0..N-1; on CPU, N CPU processes). A list such "
            "as 0,2: those GPUs, one process each. Several processes start through accelerate launch.",
    "strategy": "How several GPUs share the work: DDP keeps a copy per GPU; FSDP and DeepSpeed ZeRO shard it "
                "(DeepSpeed needs the deepspeed package).",
    "offload": "FSDP / DeepSpeed: keep optimizer states (ZeRO-3 and FSDP: parameters too) in CPU memory; slower, "
               "fits more.",
    "report_to": "Also write the metrics for TensorBoard (into the run folder's tensorboard/) or Weights & Biases "
                 "(offline unless WANDB_MODE says otherwise; needs the wandb package).",
}
GPUS_FORMAT = "expected empty, a number of processes (2) or a list of GPU indices (0,2), got {value!r}"
NO_DEEPSPEED = ("DeepSpeed is not installed here; install it (pip install deepspeed) or choose DDP or FSDP")
NEEDS_CUDA = "{what} needs CUDA GPUs; on CPU choose DDP (several CPU processes run with the gloo backend)"
NO_FLASH = "FlashAttention-2 needs the flash-attn package on a CUDA GPU; choose auto or sdpa"
NO_LIGER = "Liger kernels need the liger-kernel package and a CUDA GPU; turn them off here"
NO_LIGER_VISION = "Liger kernels are applied to text models here; turn them off for this model"
NO_WANDB = "reporting to Weights & Biases needs the wandb package: pip install wandb (or choose tensorboard / none)"
NO_TENSORBOARD = "reporting to TensorBoard needs the tensorboard package: pip install tensorboard"
LISA_MULTI = ("LISA changes which layers train during the run, which several processes cannot follow; use one "
              "process (GPUs empty or 1)")
CHUNKED_PROMPT = ("chunked cross-entropy computes the loss below the prompt-tuning wrapper, which adds virtual tokens "
                  "on its own; turn it off for prompt, prefix and P-tuning")


@dataclass(frozen=True)
class ProcessPlan:
    """How many processes a run starts and, when listed, on which GPUs (CUDA_VISIBLE_DEVICES)."""

    processes: int
    devices: tuple[int, ...] | None = None

    @property
    def several(self) -> bool:
        return self.processes > 1


def parse_gpus(value: str) -> ProcessPlan:
    """'' or '1': one process; 'N': N processes; '0,2': GPUs 0 and 2, one process each. Raises ValueError."""
    text = value.strip()
    if not text:
        return ProcessPlan(1)
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ValueError(GPUS_FORMAT.format(value=value))
    numbers = [int(p) for p in parts]
    if len(numbers) == 1 and "," not in text:
        if not 1 <= numbers[0] <= 1024:
            raise ValueError(GPUS_FORMAT.format(value=value))
        return ProcessPlan(numbers[0])
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"a GPU is listed twice in {value!r}; list each once")
    return ProcessPlan(len(numbers), tuple(numbers))


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def speed_and_scale_problems(config: Any, uses_cuda: bool) -> list[Problem]:
    """Every problem of the speed, GPU, strategy and tracking settings, by field."""
    problems = []
    try:
        plan = parse_gpus(config.gpus)
    except ValueError as e:
        problems.append(Problem(str(e), field="gpus"))
        plan = ProcessPlan(1)
    if plan.devices is not None and not uses_cuda:
        problems.append(Problem("GPU indices need CUDA GPUs; on CPU give a number of processes", field="gpus"))
    elif uses_cuda and plan.several:
        from core.hardware import cuda_device_count

        count = cuda_device_count()
        wanted = max(plan.devices) + 1 if plan.devices else plan.processes
        if count and wanted > count:
            problems.append(Problem(f"this machine shows {count} CUDA GPU(s); {config.gpus!r} asks for more",
                                    field="gpus"))
    if config.strategy in SHARDED and not uses_cuda:
        problems.append(Problem(NEEDS_CUDA.format(what=config.strategy.replace("_", " ")), field="strategy"))
    elif config.strategy.startswith("deepspeed") and not installed("deepspeed"):
        problems.append(Problem(NO_DEEPSPEED, field="strategy"))
    if plan.several and config.method == "lisa":
        problems.append(Problem(LISA_MULTI, field="gpus"))
    if config.attention == "flash_attention_2" and not (uses_cuda and installed("flash_attn")):
        problems.append(Problem(NO_FLASH, field="attention"))
    if config.liger and not (uses_cuda and installed("liger_kernel")):
        problems.append(Problem(NO_LIGER, field="liger"))
    if config.chunked_loss and config.method in ("prompt", "prefix", "ptuning"):
        problems.append(Problem(CHUNKED_PROMPT, field="chunked_loss"))
    if config.report_to == "wandb" and not installed("wandb"):
        problems.append(Problem(NO_WANDB, field="report_to"))
    if config.report_to == "tensorboard" and not installed("tensorboard"):
        problems.append(Problem(NO_TENSORBOARD, field="report_to"))
    return problems


def attention_for(choice: str, on_cuda: bool) -> str:
    """The attn_implementation a model loads with: auto picks FlashAttention-2 where it can run, else SDPA."""
    if choice == "auto":
        return "flash_attention_2" if on_cuda and installed("flash_attn") else "sdpa"
    return choice


def accelerate_args(config: Any, plan: ProcessPlan, uses_cuda: bool) -> list[str]:
    """`accelerate launch`'s own arguments for a run of several processes (the script's follow them)."""
    args = ["--num_processes", str(plan.processes), "--num_machines", "1", "--main_process_port", "0"]
    if plan.devices is not None:
        args += ["--gpu_ids", ",".join(str(d) for d in plan.devices)]
    mixed = {"bf16": "bf16", "fp16": "fp16"}.get(config.precision, "no")
    args += ["--mixed_precision", mixed, "--dynamo_backend", "no"]
    if not uses_cuda:
        # accelerate's --cpu starts one process whatever --num_processes says; --multi_gpu starts them all, and
        # the job's Accelerator(cpu=True) then joins them with gloo.
        return [*args, "--multi_gpu"]
    if config.strategy == "fsdp":
        args += ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                 "--fsdp_state_dict_type", "FULL_STATE_DICT", "--fsdp_offload_params", str(config.offload).lower()]
    elif config.strategy.startswith("deepspeed"):
        stage = config.strategy[-1]
        args += ["--use_deepspeed", "--zero_stage", stage, "--gradient_accumulation_steps", str(config.grad_accum),
                 "--gradient_clipping", str(config.max_grad_norm)]
        if config.offload:
            args += ["--offload_optimizer_device", "cpu"]
            if stage == "3":
                args += ["--offload_param_device", "cpu"]
    else:
        args += ["--multi_gpu"]
    return args
