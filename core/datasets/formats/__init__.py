"""The format families, registered in one place: add a module with a ``SPEC`` and list it here."""

from __future__ import annotations

from core.datasets.formats import alpaca, captions, cauldron, llava, openai, qa, sharegpt
from core.datasets.formats.base import ConvertOptions, Draft, FormatSpec, find_columns

FORMATS: dict[str, FormatSpec] = {m.SPEC.name: m.SPEC for m in (openai, sharegpt, llava, cauldron, qa, alpaca,
                                                                 captions)}

__all__ = ["FORMATS", "ConvertOptions", "Draft", "FormatSpec", "find_columns"]
