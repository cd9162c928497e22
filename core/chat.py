"""Chat with a base model or a finished run's result: load once, stream tokens as they are generated."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.records import IMAGE_PLACEHOLDER, Message
from core.hardware import resolve_device
from core.methods import get_method
from core.models.encoding import SampleEncoder
from core.models.families import ImageSettings, family_for
from core.models.loading import inference_dtype, inference_quantization, load_model, load_processor, resolve_model
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.files import BEST_DIR, BEST_INFO, COMPLETE_MARK
from core.store.registry import Registry, RunRecord
from core.train_config import STARTER_MODEL, TINY_MODEL, TrainConfig

RUN_PREFIX = "run:"
BEST_SUFFIX = ":best"  # "run:N" is a run's last result, "run:N:best" the one at its lowest eval loss


def is_complete(artefact_dir: str | None) -> bool:
    """Only results published whole (with their completion mark) are offered or loaded."""
    return bool(artefact_dir) and (Path(artefact_dir) / COMPLETE_MARK).is_file()


CHAT_STATUSES = ("completed", "stopped")
# How chat loads a model: "auto" is the half dtype (bf16 on CUDA, fp16 without bf16, fp32 on CPU), and a QLoRA
# run's base quantized as it was trained; the others load every base (and a run's base) that way.
CHAT_LOADINGS = {"auto": "half precision (QLoRA runs: as trained)", "half": "half precision",
                 "8bit": "8-bit (LLM.int8)", "4bit": "4-bit (NF4)"}


def result_dir(run: RunRecord, which: str = "last") -> Path | None:
    """A finished run's last result, or its best (lowest eval loss) one; None when it has none complete."""
    if which == "best":
        best = Path(run.run_dir) / BEST_DIR
        return best if run.run_dir and is_complete(str(best)) else None
    return Path(run.artefact_dir) if is_complete(run.artefact_dir) else None


def best_info(run: RunRecord) -> dict[str, Any] | None:
    """When a run's best result was taken: {"step", "eval_loss"}; None if it has no best result."""
    best = result_dir(run, "best")
    if best is None or not (best / BEST_INFO).is_file():
        return None
    return json.loads((best / BEST_INFO).read_text(encoding="utf-8"))


def parse_run_choice(choice: str) -> tuple[int, str]:
    """("run:7" → (7, "last"); "run:7:best" → (7, "best"))."""
    body = choice[len(RUN_PREFIX):]
    which = "best" if body.endswith(BEST_SUFFIX) else "last"
    return int(body.removesuffix(BEST_SUFFIX)), which


def run_choices(registry: Registry) -> list[tuple[str, str]]:
    """(label, value) for every finished run's results: the last one, and the best one where there is one."""
    found = []
    for run in registry.list_runs(CHAT_STATUSES):
        if not is_complete(run.artefact_dir):
            continue
        found.append((f"run {run.id}: {run.name} ({run.method}, {run.status}, last)", f"{RUN_PREFIX}{run.id}"))
        info = best_info(run)
        if info is not None:
            found.append((f"run {run.id}: {run.name} (best: step {info['step']}, eval loss "
                          f"{info['eval_loss']:.4f})", f"{RUN_PREFIX}{run.id}{BEST_SUFFIX}"))
    return found


@dataclass
class LoadedModel:
    key: tuple[str, str]
    model: Any
    processor: Any
    encoder: SampleEncoder
    device: str


class ChatService:
    """Keeps one model loaded at a time; loading another releases the previous one."""

    def __init__(self, paths: StudioPaths, registry: Registry):
        self.paths = paths
        self.registry = registry
        self._loaded: LoadedModel | None = None
        self._lock = threading.Lock()

    def choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs: base models first, then every run's loadable results (last, and best)."""
        bases = [TINY_MODEL, STARTER_MODEL]
        for run in self.registry.list_runs(CHAT_STATUSES):
            if is_complete(run.artefact_dir) and run.model not in bases:
                bases.append(run.model)
        return [(f"base: {b}", b) for b in bases] + run_choices(self.registry)

    def load(self, choice: str) -> LoadedModel:
        """The model for a choice (a base, "run:N" or "run:N:best"), loaded once and kept until another is."""
        return self._load(choice)

    def _load(self, choice: str, loading: str = "auto") -> LoadedModel:
        if loading not in CHAT_LOADINGS:
            raise ProblemsError([Problem(f"choose one of {', '.join(CHAT_LOADINGS)}", field="loading")])
        with self._lock:
            key = (choice, loading)
            if self._loaded and self._loaded.key == key:
                return self._loaded
            self.release()
            device = resolve_device("auto")
            settings = ImageSettings()
            if choice.startswith(RUN_PREFIX):
                model, path, settings = self._load_run(*parse_run_choice(choice), device=device, loading=loading)
            else:
                path = resolve_model(choice, self.paths)
                model = load_model(path, device=device, dtype=inference_dtype(device),
                                   **inference_quantization("none" if loading == "auto" else loading, device))
            model.eval()
            processor = load_processor(path)
            processor_tokenizer = getattr(processor, "tokenizer", processor)
            processor_tokenizer.padding_side = "left"
            encoder = SampleEncoder(processor, 1 << 20, settings, family_for(model.config), model.config)
            self._loaded = LoadedModel(key, model, processor, encoder, device)
            return self._loaded

    def weights_of(self, choice: str, loading: str) -> tuple[str, int]:
        """The model a choice loads and the bits its weights take (16, 8 or 4), as ``_load`` would load it."""
        bits = {"8bit": 8, "4bit": 4}.get(loading, 16)
        if not choice.startswith(RUN_PREFIX):
            return choice, bits
        run = self.registry.get_run(parse_run_choice(choice)[0])
        if loading == "auto" and run.method == "qlora":
            bits = {"8bit": 8}.get(str(run.config.get("quantization")), 4)
        return run.model, bits

    def release(self) -> None:
        """Drop the loaded model and give its memory back (on CUDA, to the driver too) before another loads."""
        import gc

        self._loaded = None
        gc.collect()
        if resolve_device("auto") == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _load_run(self, run_id: int, which: str = "last", *, device: str, loading: str = "auto"
                  ) -> tuple[Any, str, ImageSettings]:
        """A run's result (``which``: last or best), the folder its processor comes from, and the image settings it
        trained with.

        "weights" results are complete model folders (processor included); "adapter" results go on top of the
        base, loaded in the half dtype or quantized as chosen ("auto": a QLoRA base quantized as the run had it).
        """
        run = self.registry.get_run(run_id)
        artefact = result_dir(run, which)
        if artefact is None or run.status not in CHAT_STATUSES:
            raise ProblemsError([Problem(f"run {run.id} has no saved {which} result to load", field="model")])
        method = get_method(run.method)
        config, _ = TrainConfig.coerce(run.config)  # only the quantization and image settings matter here
        settings = ImageSettings.of(config)
        chosen = inference_quantization("none" if loading == "auto" else loading, device)
        if method.artefact == "weights":
            own = (artefact / "tokenizer_config.json").is_file()
            path = str(artefact) if own else resolve_model(run.model, self.paths)
            model = load_model(str(artefact), device=device, dtype=inference_dtype(device), **chosen)
            return method.load_for_inference(model, artefact), path, settings
        path = resolve_model(run.model, self.paths)
        quantization = method.load_kwargs(config) if loading == "auto" else chosen
        base = load_model(path, device=device, dtype=inference_dtype(device), **quantization)
        return method.load_for_inference(base, artefact), path, settings

    def stream(self, choice: str, messages: list[Message], images: list[Path], *, max_new_tokens: int = 128,
               temperature: float = 0.0, loading: str = "auto") -> Iterator[str]:
        """Yield the reply as it grows; ``messages`` ends with the user's turn, ``images`` fill its placeholders."""
        from transformers import TextIteratorStreamer

        loaded = self._load(choice, loading)
        placeholders = sum(m.content.count(IMAGE_PLACEHOLDER) for m in messages)
        if placeholders != len(images):
            raise ProblemsError([Problem(f"{placeholders} image placeholders but {len(images)} images")])
        if images and not loaded.encoder.vision:
            raise ProblemsError([Problem("this model reads text only; remove the image", field="image")])
        for picture in images:
            check_picture(picture)
        inputs = inputs_on_device(loaded.encoder.prompt_inputs(messages, images), loaded.device,
                                  inference_dtype(loaded.device))
        tokenizer = loaded.encoder.tokenizer
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)
        generation = {"max_new_tokens": max_new_tokens, "streamer": streamer, "pad_token_id": tokenizer.pad_token_id,
                      "do_sample": temperature > 0}
        if temperature > 0:
            generation["temperature"] = temperature
        errors: list[BaseException] = []

        def run() -> None:
            try:
                loaded.model.generate(**inputs, **generation)
            except BaseException as e:  # noqa: BLE001 - surfaced to the caller below
                errors.append(e)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        worker.join()
        if errors:
            raise RuntimeError(f"generation failed: {errors[0]}") from errors[0]


def inputs_on_device(inputs: dict[str, Any], device: str, float_dtype: Any) -> dict[str, Any]:
    """Tensors on the device, pixel values (any floating-point input) in the dtype the model computes in."""
    out = {}
    for key, value in inputs.items():
        value = value.to(device)
        out[key] = value.to(float_dtype) if value.is_floating_point() else value
    return out


def check_picture(path: Path) -> None:
    """Refuse a file that is not a picture (a text file named .jpg, a decompression bomb) with what it is, checked
    as a dataset's images are."""
    from core.datasets.images import check_image
    from core.datasets.limits import ImportLimits
    from core.datasets.problem_log import RowError

    try:
        check_image(Path(path), ImportLimits.from_env(), Path(path).name, "image")
    except RowError as e:
        raise ProblemsError([Problem(e.message, field="image")]) from None
