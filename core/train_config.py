"""The one definition of a training run's settings, used by the form, validation, config.json, SQLite and the CLI."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config_fields import check_field, coerce, option
from core.problems import Problem, ProblemsError

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

METHOD_HELP = "What trains: small adapters, virtual tokens, or parts of the model itself."


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


QUANT_4BIT = {"method": ["qlora"], "quantization": ["4bit"]}


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
        f"A hub id, a local folder, '{STARTER_MODEL}' (a real small LLaVA) or '{TINY_MODEL}' (for trying things).",
        group="run",
    )
    dataset: str = option(
        "sample", "Dataset", "A registered dataset, or a folder on the server.", group="run"
    )

    method: str = option("lora", "Method", METHOD_HELP, choices=_method_choices, group="method")
    lora_r: int = option(8, "LoRA rank", "Rank r of the low-rank update.", min=1, max=1024, group="method",
                         shown_when=_when(*LORA_METHODS))
    lora_alpha: int = option(16, "LoRA alpha", "The update is scaled by alpha / r.",
                             min=1, max=8192, group="method", shown_when=_when(*LORA_METHODS))
    lora_dropout: float = option(0.05, "LoRA dropout", "Dropout on the adapter's input.", min=0.0, max=0.9,
                                 group="method", shown_when=_when(*LORA_METHODS))
    lora_targets: str = option(
        "all-linear",
        "LoRA targets",
        "Which layers get adapters.",
        choices=LORA_TARGETS,
        group="method",
        shown_when=_when(*LORA_METHODS),
    )
    lora_custom_targets: str = option(
        "", "Custom targets", "Module names, e.g. q_proj,v_proj.",
        group="method", shown_when={"method": LORA_METHODS, "lora_targets": ["custom"]},
    )
    use_rslora: bool = option(False, "rsLoRA", "Scale by alpha / √r: high ranks keep learning.",
                              group="method", shown_when=_when(*LORA_METHODS))
    use_dora: bool = option(False, "DoRA", "Also learns each output's magnitude; slower.", group="method",
                            shown_when=_when(*LORA_METHODS))
    lora_train_projector: bool = option(
        False, "Train the projector too", "Saved with the adapter.", group="method", shown_when=_when(*LORA_METHODS))
    quantization: str = option(
        "none", "Quantized base (QLoRA)", "The frozen base in 4-bit or 8-bit; vision tower, projector and head "
        "stay unquantized.", choices=QUANTIZATIONS, group="method", shown_when=_when("qlora"))
    quant_type: str = option("nf4", "4-bit type", "NF4 is the QLoRA recipe.",
                             choices=QUANT_TYPES, group="method", shown_when=QUANT_4BIT)
    double_quant: bool = option(True, "Double quantization", "Saves about 0.4 bits per weight.",
                                group="method", shown_when=QUANT_4BIT)
    compute_dtype: str = option("bf16", "4-bit compute dtype", "What 4-bit weights are computed in; fp32 is "
                                "fastest on CPU.", choices=COMPUTE_DTYPES, group="method", shown_when=QUANT_4BIT)
    freeze_preset: str = option(
        "custom", "Freeze preset", "LLaVA stage 1 trains the projector; stage 2 also the language model.",
        choices=FREEZE_PRESETS, group="method", shown_when=_when("freeze"))
    freeze_layers: int = option(2, "Last N layers", "Decoder layers that train, counted from the top.",
        min=0, max=10_000, group="method",
                                shown_when={"method": ["freeze"], "freeze_preset": ["custom"]})
    train_language_model: bool = option(True, "Train the language model", "Embeddings, layers and head.",
        group="method", shown_when=_when("full"))
    train_projector: bool = option(True, "Train the projector", "A freeze preset overrides this.", group="method",
        shown_when=_when(*PART_METHODS))
    train_vision_tower: bool = option(False, "Train the vision tower", "LLaVA keeps it frozen.", group="method",
                                      shown_when=_when("full", "freeze"))
    projector_lr: float = option(
        0.0, "Projector learning rate", "0 means the learning rate.", min=0.0, max=1.0, group="method",
        shown_when=_when(*LORA_METHODS, *PART_METHODS))
    lisa_layers: int = option(2, "LISA layers (γ)", "Layers trained at a time.", min=1, max=10_000, group="method",
                              shown_when=_when("lisa"))
    lisa_interval: int = option(20, "LISA interval (K)", "Steps between re-sampling.", min=1, max=1_000_000,
                                group="method", shown_when=_when("lisa"))
    adapter_size: int = option(8, "Bottleneck size", "Width of each adapter.",
                               min=1, max=65_536, group="method", shown_when=_when("adapter"))
    prompt_tokens: int = option(20, "Virtual tokens", "Trained tokens put before each sample.", min=1, max=4096,
                                group="method", shown_when=_when(*PROMPT_METHODS))

    precision: str = option(
        "fp32", "Precision", "bf16/fp16: mixed precision (fp16 needs a GPU); pure_bf16: half the memory.",
        choices=PRECISIONS, group="precision",
    )
    device: str = option("auto", "Device", "auto picks CUDA when present, else CPU.", choices=DEVICES,
                         group="precision")
    gradient_checkpointing: bool = option(
        False, "Gradient checkpointing", "Less memory, about 30% slower.",
        group="precision",
    )

    image_max_pixels: int = option(
        0, "Image max pixels (Qwen-VL)", "Fewer pixels, fewer tokens; 0 keeps the model's own.",
            min=0, max=200_000_000, group="images")
    image_min_pixels: int = option(
        0, "Image min pixels (Qwen-VL)", "0 keeps the model's own.", min=0, max=200_000_000, group="images")
    image_size: int = option(
        0, "Image longest edge (SmolVLM, Idefics3)", "Fewer pixels, fewer tiles; 0 keeps the model's own.",
            min=0, max=16_384, group="images")
    image_tiling: str = option(
        "default", "Image tiling", "Tiles (SmolVLM, Idefics3) or crops (Gemma 3).", choices=IMAGE_TILINGS,
            group="images")

    max_steps: int = option(30, "Max steps", "0 runs for the epochs instead.",
                            min=0, max=10_000_000, group="hyper")
    num_epochs: float = option(1.0, "Epochs", "Used when max steps is 0.",
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
        "adamw_torch", "Optimizer", "8-bit and paged AdamW save GPU memory.",
        choices=OPTIMIZERS, group="hyper")
    max_length: int = option(512, "Max length", "Tokens per sample, images included.",
                             min=16, max=131072, group="hyper")
    seed: int = option(42, "Seed", "Seed for data order and initialisation.", min=0, max=2**31 - 1, group="hyper")

    logging_steps: int = option(1, "Log every N steps", "How often a metrics line is written.", min=1,
                                max=100_000, group="output")
    save_steps: int = option(0, "Save every N steps", "Checkpoint interval; 0 saves only at the end.", min=0,
                             max=10_000_000, group="output")
    save_total_limit: int = option(2, "Checkpoints kept", "Older checkpoints beyond this are deleted.", min=1,
                                   max=1000, group="output")

    eval_steps: int = option(
        0, "Evaluate every N steps", "0: about ten times a run.", min=0,
        max=10_000_000, group="eval")
    eval_max_rows: int = option(
        0, "Eval rows", "0 uses the whole eval split.", min=0, max=10_000_000, group="eval")
    save_best: bool = option(
        True, "Keep the best result", "Saved in best/ beside the last one.", group="eval")
    early_stopping_patience: int = option(
        0, "Early stopping patience", "Evaluations without improvement; 0 is off.", min=0, max=100_000, group="eval")

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
