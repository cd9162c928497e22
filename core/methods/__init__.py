"""The registry of fine-tuning methods: one module per method, registered here and nowhere else."""

from __future__ import annotations

from core.methods.adapter import AdapterMethod
from core.methods.base import Method
from core.methods.freeze import FreezeMethod
from core.methods.full import FullMethod
from core.methods.lisa import LisaMethod
from core.methods.lora import LoraMethod
from core.methods.prefix import PrefixTuningMethod
from core.methods.prompt import PromptTuningMethod
from core.methods.ptuning import PTuningMethod
from core.methods.qlora import QloraMethod

_METHODS: dict[str, Method] = {m.name: m for m in (
    LoraMethod(), QloraMethod(), FullMethod(), FreezeMethod(), LisaMethod(), AdapterMethod(),
    PromptTuningMethod(), PrefixTuningMethod(), PTuningMethod(),
)}


def method_names() -> list[str]:
    return list(_METHODS)


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(_METHODS)}") from None


def all_methods() -> list[Method]:
    return list(_METHODS.values())
