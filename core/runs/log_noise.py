"""Library messages a person cannot act on: silenced at their source where they are false for this studio, and
kept out of the log tail the UI shows (the log file keeps everything)."""

from __future__ import annotations

import logging
import re
import warnings

# bitsandbytes asks for `kernels`, which the studio leaves out on purpose (it would fetch code from the Hub).
_SILENCED_LOGS = {"bitsandbytes.backends.cpu.ops": re.compile(r"kernels")}
_SILENCED_WARNINGS = (r".*is_gradient_checkpointing.* is deprecated.*",)
# Lines the tail leaves out: warnings about the libraries' own internals, and the source line Python prints
# under each warning.
_TAIL_NOISE = re.compile(
    r"(Failed to load CPU gemm_4bit_forward|pip install kernels|Paged optimizers are not supported on CPU"
    r"|FutureWarning: |DeprecationWarning: |^\s+warnings\.warn\(|^\s+state\[\"state\d\"\] = "
    r"|^(Loading weights|Writing model shards|Loading checkpoint shards):)")


class _Drop(logging.Filter):
    def __init__(self, pattern: re.Pattern[str]):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def silence_library_noise() -> None:
    """Called once at the start of a job (and of the studio): drop the messages that are false or useless here,
    and the progress bars that turn a log file into carriage returns."""
    for name, pattern in _SILENCED_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(pattern))
    for message in _SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def quiet_tail(text: str) -> str:
    """The log text without the library noise (a line that is only a progress bar included)."""
    kept = []
    for line in text.splitlines():
        last = line.rsplit("\r", 1)[-1]  # a progress bar rewrites its line with carriage returns
        if _TAIL_NOISE.search(last):
            continue
        kept.append(last)
    return "\n".join(kept) + ("\n" if text.endswith("\n") and kept else "")
