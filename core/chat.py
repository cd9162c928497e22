"""Chat with a base model or a finished run's result: load once, stream tokens as they are generated."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.records import IMAGE_PLACEHOLDER, Message
from core.hardware import resolve_device
from core.methods import get_method
from core.models.encoding import SampleEncoder
from core.models.loading import load_model, load_processor, resolve_model
from core.paths import StudioPaths
from core.problems import Problem, ProblemsError
from core.runs.files import COMPLETE_MARK
from core.store.registry import Registry
from core.train_config import TINY_MODEL, TrainConfig

RUN_PREFIX = "run:"


def is_complete(artefact_dir: str | None) -> bool:
    """Only results published whole (with their completion mark) are offered or loaded."""
    return bool(artefact_dir) and (Path(artefact_dir) / COMPLETE_MARK).is_file()
CHAT_STATUSES = ("completed", "stopped")


@dataclass
class LoadedModel:
    key: str
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
        """(label, value) pairs: base models first, then every run whose result can be loaded."""
        bases = [TINY_MODEL]
        runs = []
        for run in self.registry.list_runs(CHAT_STATUSES):
            if is_complete(run.artefact_dir):
                runs.append((f"run {run.id}: {run.name} ({run.method}, {run.status})", f"{RUN_PREFIX}{run.id}"))
                if run.model not in bases:
                    bases.append(run.model)
        return [(f"base: {b}", b) for b in bases] + runs

    def _load(self, choice: str) -> LoadedModel:
        with self._lock:
            if self._loaded and self._loaded.key == choice:
                return self._loaded
            self._loaded = None
            device = resolve_device("auto")
            if choice.startswith(RUN_PREFIX):
                model, path = self._load_run(int(choice[len(RUN_PREFIX):]), device)
            else:
                path = resolve_model(choice, self.paths)
                model = load_model(path, device=device)
            model.eval()
            processor = load_processor(path)
            processor_tokenizer = getattr(processor, "tokenizer", processor)
            processor_tokenizer.padding_side = "left"
            self._loaded = LoadedModel(choice, model, processor, SampleEncoder(processor, 1 << 20), device)
            return self._loaded

    def _load_run(self, run_id: int, device: str) -> tuple[Any, str]:
        """A run's result and the folder its processor comes from.

        "weights" results are complete model folders (processor included); "adapter" results go on top of the
        base, loaded as the run loaded it (a QLoRA base quantized the same way).
        """
        run = self.registry.get_run(run_id)
        if not is_complete(run.artefact_dir):
            raise ProblemsError([Problem(f"run {run.id} has no saved result to chat with", field="model")])
        artefact = Path(run.artefact_dir)
        method = get_method(run.method)
        if method.artefact == "weights":
            own = (artefact / "tokenizer_config.json").is_file()
            path = str(artefact) if own else resolve_model(run.model, self.paths)
            return method.load_for_inference(load_model(str(artefact), device=device), artefact), path
        config, _ = TrainConfig.coerce(run.config)  # only the quantization settings matter here
        path = resolve_model(run.model, self.paths)
        base = load_model(path, device=device, **method.load_kwargs(config))
        return method.load_for_inference(base, artefact), path

    def stream(self, choice: str, messages: list[Message], images: list[Path], *, max_new_tokens: int = 128,
               temperature: float = 0.0) -> Iterator[str]:
        """Yield the reply as it grows; ``messages`` ends with the user's turn, ``images`` fill its placeholders."""
        from transformers import TextIteratorStreamer

        loaded = self._load(choice)
        placeholders = sum(m.content.count(IMAGE_PLACEHOLDER) for m in messages)
        if placeholders != len(images):
            raise ProblemsError([Problem(f"{placeholders} image placeholders but {len(images)} images")])
        if images and not loaded.encoder.vision:
            raise ProblemsError([Problem("this model reads text only; remove the image", field="image")])
        prompt = loaded.encoder.render(messages, add_generation_prompt=True)
        if loaded.encoder.vision:
            pictures = [_open_rgb(p) for p in images]
            inputs = loaded.processor(text=prompt, images=pictures or None, return_tensors="pt")
        else:
            inputs = loaded.processor(prompt, return_tensors="pt", add_special_tokens=False)
        inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
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


def _open_rgb(path: Path) -> Any:
    """The picture, checked as a dataset's images are (a text file named .jpg, a decompression bomb) first."""
    from PIL import Image

    from core.datasets.images import check_image
    from core.datasets.limits import ImportLimits
    from core.datasets.problem_log import RowError

    try:
        check_image(Path(path), ImportLimits.from_env(), Path(path).name, "image")
    except RowError as e:
        raise ProblemsError([Problem(e.message, field="image")]) from None
    with Image.open(path) as img:
        return img.convert("RGB")
