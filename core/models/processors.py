"""A model's processor, loaded without its video part where torchvision is missing.

The video processors of Qwen2/2.5/3-VL, LLaVA-OneVision and SmolVLM need torchvision, so ``AutoProcessor`` cannot
build those processors without it. Images never touch the video part: ``without_video`` makes a subclass of the
model's own processor class whose constructor leaves it out, so the real image processor and the real expansion
of image placeholders run unchanged. The subclass keeps the original class name, so a folder it saves still loads
with ``AutoProcessor`` on a machine that has torchvision.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path
from typing import Any

PROCESSOR_CONFIG_FILES = ("processor_config.json", "preprocessor_config.json")


def torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    return bool(is_torchvision_available())


@functools.cache
def without_video(cls: type) -> type:
    """``cls`` (a ProcessorMixin subclass taking a video_processor) with the video part left out."""
    from transformers.processing_utils import ProcessorMixin

    # transformers reads a processor's attributes and saved settings from its constructor's named parameters
    # (inspect.signature and __code__.co_varnames), so the constructor is written out with the same names.
    params = [p for name, p in inspect.signature(cls.__init__).parameters.items()
              if name != "video_processor" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD][1:]
    if not all(p.name.isidentifier() for p in params):
        raise TypeError(f"cannot rebuild {cls.__name__}'s constructor")
    defaults = {p.name: p.default for p in params}
    names = [p.name for p in params]
    signature = ", ".join(f"{n}=_defaults[{n!r}]" if defaults[n] is not inspect.Parameter.empty else n
                          for n in names)
    passed = ", ".join(f"{n}={n}" for n in names)
    source = (f"def __init__(self, {signature}, **kwargs):\n"
              f"    _parent(self, video_processor=None, {passed}, **kwargs)\n")
    scope: dict[str, Any] = {"_defaults": defaults, "_parent": cls.__init__}
    exec(compile(source, f"<{cls.__name__} without video>", "exec"), scope)  # noqa: S102 - names are identifiers
    __init__ = scope["__init__"]

    def apply_chat_template(self: Any, conversation: Any, chat_template: str | None = None, **kwargs: Any) -> Any:
        # Some processors (SmolVLM) read video settings here even for images; the shared renderer needs none.
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)

    namespace = {"__init__": __init__, "apply_chat_template": apply_chat_template, "__module__": __name__,
                 "__qualname__": cls.__name__, "__doc__": f"{cls.__name__} without its video processor."}
    return type(cls.__name__, (cls,), namespace)


def saved_processor_class(model_path: str) -> str | None:
    """The processor class a local model folder names, if it names one."""
    for name in PROCESSOR_CONFIG_FILES:
        path = Path(model_path) / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("processor_class"):
                return str(data["processor_class"])
    return None


def load_vision_processor(model_path: str, processor_class: str, has_video: bool) -> Any:
    """The processor of a vision-language model; without its video part when torchvision is missing."""
    import transformers
    from transformers import AutoProcessor

    if torchvision_available():
        return AutoProcessor.from_pretrained(model_path)
    name = processor_class or saved_processor_class(model_path) or ""
    cls = getattr(transformers, name, None) if name else None
    takes_video = cls is not None and "video_processor" in inspect.signature(cls.__init__).parameters
    if has_video or takes_video:
        return without_video(cls).from_pretrained(model_path)
    return AutoProcessor.from_pretrained(model_path)
