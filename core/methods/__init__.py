"""The registry of fine-tuning methods: one module per method, registered here and nowhere else."""

from __future__ import annotations

from core.methods.base import Method
from core.methods.lora import LoraMethod

_METHODS: dict[str, Method] = {m.name: m for m in (LoraMethod(),)}


def method_names() -> list[str]:
    return list(_METHODS)


def get_method(name: str) -> Method:
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(_METHODS)}") from None


def all_methods() -> list[Method]:
    return list(_METHODS.values())
