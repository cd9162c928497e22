"""What the machine offers: CUDA presence and memory, asked once and cheaply."""

from __future__ import annotations

import functools


@functools.cache
def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@functools.cache
def cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(choice: str) -> str:
    """Map the config's device choice ('auto', 'cpu', 'cuda') to a torch device string."""
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    return choice
