"""Launch a comparison: from one training config, one variant per chosen method on the same data and budget."""

from __future__ import annotations

from dataclasses import replace

from core.problems import Problem
from core.train_config import TrainConfig

DEFAULT_METHODS = ("lora", "qlora", "lisa")
NAME_LIMIT = 120  # TrainConfig's run name limit
SEPARATOR = " · "
NO_METHODS = "choose at least one method to compare"
UNKNOWN_METHOD = "there is no method {name!r}; choose among {known}"


def short_label(method: str) -> str:
    """A method's label without its explanation: "LoRA (low-rank adapters)" -> "LoRA"."""
    from core.methods import get_method

    return get_method(method).label.split(" (")[0]


def variant_name(base: str, method: str) -> str:
    suffix = SEPARATOR + short_label(method)
    base = base.strip() or "comparison"
    return base[: NAME_LIMIT - len(suffix)].rstrip() + suffix


def method_problems(methods: list[str]) -> list[Problem]:
    from core.methods import method_names

    known = method_names()
    if not methods:
        return [Problem(NO_METHODS, field="methods")]
    return [Problem(UNKNOWN_METHOD.format(name=m, known=", ".join(known)), field="methods")
            for m in methods if m not in known]


def comparison_variants(config: TrainConfig, methods: list[str] | tuple[str, ...] = DEFAULT_METHODS
                        ) -> list[TrainConfig]:
    """One config per method (in the order given, each once): the same model, data, steps, batch, learning
    rate and seed; only the method changes, with what it needs: QLoRA a quantized base (4-bit unless 8-bit was
    chosen), every other method a full-precision one."""
    variants = []
    for method in dict.fromkeys(methods):
        if method == "qlora":
            quantization = config.quantization if config.quantization != "none" else "4bit"
        else:
            quantization = "none"
        variants.append(replace(config, method=method, quantization=quantization,
                                run_name=variant_name(config.run_name, method)))
    return variants
