"""The memory calls the UI makes: estimate for form values and a card, fit-to-card, apply, calibration points."""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from pathlib import Path
from typing import Any

from core.config_fields import check_field
from core.memory import (
    WILL_NOT_FIT,
    Architecture,
    Estimate,
    MemoryInputs,
    apply_proposals,
    estimate,
    fit_to_card,
    inputs_from_train_config,
    read_architecture,
    verdict,
)
from core.memory.estimate import GB
from core.models.availability import model_problem
from core.models.loading import config_source
from core.paths import StudioPaths
from core.store.registry import CalibrationRecord, Registry
from core.train_config import TrainConfig

CARD_SIZES_GB = (8, 12, 16, 24, 40, 80)
DEFAULT_CARD_GB = 24
IN_USE = "in use"  # the card value meaning "this machine's CUDA card"
GIB_IN_GB = 2**30 / GB  # a "24 GB" card holds 24 GiB: 25.8 GB of 1e9 bytes, the estimate's unit
FAILURE_TTL_SECONDS = 30.0  # a model whose config could not be read is not retried on every keystroke
CHAT_CONTEXT = 4096  # tokens a chat estimate assumes: the images, the conversation and the answer
PART_LABELS = {"vision": "vision tower", "language": "language model", "head": "head"}
IMAGES_TOO_LONG = ("Each image adds up to {n:,} tokens, more than the max length of {max:,}: rows with an image "
                   "would be cut inside it and skipped. Raise the max length or lower the image resolution.")


class ModelUnavailable(Exception):
    """The model's config.json cannot be read here; the message is a sentence for the person."""


@functools.cache
def card_in_use() -> dict[str, Any] | None:
    """This machine's CUDA card ({"name", "gb"}: total memory in GB of 1e9 bytes), or None without CUDA."""
    from core.hardware import cuda_available

    if not cuda_available():
        return None
    import torch

    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"name": str(props.name), "gb": props.total_memory / GB}


def nominal_card_gb(size: float) -> float:
    """A card sold as ``size`` GB holds ``size`` GiB; in the estimate's GB."""
    return float(size) * GIB_IN_GB


def config_summary(config: dict[str, Any]) -> str:
    """One line naming what sets a run's memory: model, method, precision, micro-batch x length, switches."""
    model = Path(str(config.get("model", "?")).rstrip("/")).name or "?"
    method = str(config.get("method", "?"))
    if method in ("lora", "qlora"):
        method += f" r{config.get('lora_r', '?')}"
    quant = config.get("quantization", "none")
    if quant and quant != "none":
        method += f" {quant}"
    parts = [model, method, str(config.get("precision", "?")),
             f"batch {config.get('batch_size', '?')}×{config.get('max_length', '?')}",
             str(config.get("optimizer", "?"))]
    if config.get("gradient_checkpointing"):
        parts.append("checkpointing")
    return " · ".join(parts)


def instead_sentence(needed_gb: float, card: dict[str, Any]) -> str:
    """What would have to change when no setting brings the run under the card: the model, or the card."""
    gib = math.ceil(needed_gb / GIB_IN_GB)
    return (f"Even with every change above the run needs about {needed_gb:.1f} GB, more than {card['label']} "
            f"holds ({card['gb']:.1f} GB). Choose a smaller model (fewer parameters), or a card with at least "
            f"{gib} GiB ({nominal_card_gb(gib):.1f} GB).")


def estimate_summary(est: Estimate) -> dict[str, Any]:
    """What a run stores: total, allocated and reserved GB and the breakdown (label -> GB)."""
    return {"total_gb": est.total_gb, "allocated_gb": est.allocated_gb, "reserved_gb": est.reserved_gb,
            "breakdown": est.breakdown_gb()}


def model_summary(arch: Architecture, config: TrainConfig) -> dict[str, Any]:
    """The model's family, its parts with their parameter counts, and the tokens an image adds at the form's
    image settings (with a warning when that passes the max length)."""
    from core.models.families import family_named

    family = family_named(arch.family) if arch.family else None
    labels = {**PART_LABELS, "projector": family.projector_label if family else "projector"}
    summary: dict[str, Any] = {"family": family.label if family else "", "vision": arch.vision is not None,
                               "parts": {labels[k]: v for k, v in arch.parts().items()}, "image_tokens": 0,
                               "image_warning": ""}
    if arch.vision is not None:
        summary["image_tokens"] = arch.vision.image_tokens
        if arch.vision.image_tokens > config.max_length:
            summary["image_warning"] = IMAGES_TOO_LONG.format(n=arch.vision.image_tokens, max=config.max_length)
    return summary


def _error(estimated: float, measured: float) -> tuple[float, float | None]:
    """Estimated minus measured, in GB and as a percentage of the measured value."""
    diff = estimated - measured
    return diff, (100.0 * diff / measured if measured > 0 else None)


class MemoryAdvisor:
    """Estimates for form values; caches each model's architecture by its resolved path (or hub id)."""

    def __init__(self, paths: StudioPaths, registry: Registry):
        self.paths = paths
        self.registry = registry
        self._lock = threading.Lock()
        self._architectures: dict[tuple[str, float], Architecture] = {}
        self._failures: dict[tuple[str, float], tuple[float, str]] = {}

    # --- inputs -------------------------------------------------------------------------------------------
    def card(self, card: Any = None) -> dict[str, Any]:
        """The card to compare with: {"label", "gb", "in_use"}; ``card`` is IN_USE, a size in GB, or None (the
        card in use when there is one, else 24 GB)."""
        in_use = card_in_use()
        text = str(card).strip().lower() if card is not None else ""
        if text in ("", IN_USE, "cuda") and in_use:
            return {"label": f"this machine's {in_use['name']}", "gb": in_use["gb"], "in_use": True}
        try:
            number = text.removesuffix("gib").removesuffix("gb").strip()
            size = float(number) if text not in ("", IN_USE, "cuda") else DEFAULT_CARD_GB
        except ValueError:
            size = DEFAULT_CARD_GB
        size = size if size > 0 else DEFAULT_CARD_GB
        return {"label": f"a {size:g} GiB card", "gb": nominal_card_gb(size), "in_use": False}

    def card_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs: the card in use first, when there is one, then the usual sizes."""
        in_use = card_in_use()
        first = [(f"This machine: {in_use['name']} ({in_use['gb']:.1f} GB)", IN_USE)] if in_use else []
        return first + [(f"{size} GiB card ({nominal_card_gb(size):.1f} GB)", str(size)) for size in CARD_SIZES_GB]

    def default_card(self) -> str:
        return IN_USE if card_in_use() else str(DEFAULT_CARD_GB)

    @staticmethod
    def config_of(values: dict[str, Any] | TrainConfig) -> tuple[TrainConfig | None, str | None, dict[str, str]]:
        """A TrainConfig from form values (missing ones take defaults), or a sentence naming the fields to fix and
        those fields' first problems (name -> message). Only each field's own type and range matter here;
        combinations are Check's business."""
        if isinstance(values, TrainConfig):
            return values, None, {}
        known = {f.name: f for f in TrainConfig.fields()}
        config, problems = TrainConfig.coerce({k: v for k, v in values.items() if k in known})
        ranges = [p for name, f in known.items() for p in check_field(f, getattr(config, name))]
        bad: dict[str, str] = {}
        for problem in problems + ranges:
            bad.setdefault(problem.field, problem.message)  # the first message of each field
        if bad:
            fields = [f"{known[name].metadata['label']} ({message})" for name, message in bad.items()]
            return None, "Fix " + "; ".join(fields) + " to see the memory estimate.", bad
        if not config.model.strip():
            return None, "Choose a model to see the memory estimate.", {}
        return config, None, {}

    def architecture(self, model: str) -> Architecture:
        """The model's architecture from its config.json alone; raises ModelUnavailable with a sentence."""
        resolved = self._resolve(model)
        config_file = Path(resolved) / "config.json"
        key = (resolved, config_file.stat().st_mtime if config_file.is_file() else 0.0)
        with self._lock:
            if key in self._architectures:
                return self._architectures[key]
            failed = self._failures.get(key)
            if failed and time.monotonic() - failed[0] < FAILURE_TTL_SECONDS:
                raise ModelUnavailable(failed[1])
        try:
            arch = self._read(resolved)
        except ModelUnavailable as e:
            with self._lock:
                self._failures[key] = (time.monotonic(), str(e))
            raise
        with self._lock:
            self._architectures[key] = arch
        return arch

    def _resolve(self, model: str) -> str:
        """The folder or hub id of a model choice's config (building the tiny model if needed, never waiting
        for the starter's download)."""
        try:
            return config_source(model, self.paths)
        except Exception as e:  # noqa: BLE001 - building the tiny model can fail like anything else
            raise ModelUnavailable(f"Could not prepare the model '{model}': {e}") from e

    @staticmethod
    def _read(resolved: str) -> Architecture:
        path = Path(resolved)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelUnavailable(f"The folder {resolved} has no config.json, so its memory cannot be "
                                       "estimated.")
            try:
                return read_architecture(path / "config.json")
            except Exception as e:  # noqa: BLE001
                raise ModelUnavailable(f"Could not read {path / 'config.json'}: {e}") from e
        from transformers import AutoConfig

        try:
            try:
                config = AutoConfig.from_pretrained(resolved, local_files_only=True)
            except Exception:  # noqa: BLE001 - not cached: ask the hub once, briefly, then fetch config.json only
                unreadable = model_problem(resolved)
                if unreadable:
                    raise ModelUnavailable(f"Cannot estimate the memory: {unreadable.message}.") from None
                config = AutoConfig.from_pretrained(resolved)
            return read_architecture(config)
        except ModelUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 - offline, unknown id, gated repo, odd config: one sentence
            raise ModelUnavailable(
                f"Cannot read the config of '{resolved}': it is not a model folder on this machine, and its "
                "config.json is not in the Hugging Face cache and could not be fetched (offline, a wrong id, "
                "or a gated model). The estimate needs only that file: use a local folder, or fetch it once "
                "while online.") from e

    # --- estimates ----------------------------------------------------------------------------------------
    def estimate_config(self, config: TrainConfig) -> Estimate:
        """The Estimate of a parsed config; raises ModelUnavailable."""
        return estimate(inputs_from_train_config(config, self.architecture(config.model)))

    def _subject(self, values: dict[str, Any] | TrainConfig, card: Any) -> tuple[dict, Any, Any, dict | None]:
        """The card, the parsed config and the model's architecture; or a refusal saying why not."""
        chosen = self.card(card)
        config, reason, fields = self.config_of(values)
        if config is None:
            return chosen, None, None, {"ok": False, "reason": reason, "fields": fields, "card": chosen}
        try:
            return chosen, config, self.architecture(config.model), None
        except ModelUnavailable as e:
            return chosen, config, None, {"ok": False, "reason": str(e), "card": chosen}

    def estimate(self, values: dict[str, Any] | TrainConfig, card: Any = None) -> dict[str, Any]:
        """Predicted peak for form values on a card: {"ok", "total_gb", "allocated_gb", "reserved_gb",
        "paged_gb", "breakdown" (label -> GB, adding up to total_gb), "terms", "params", "card", "verdict",
        "headroom_gb"}; or {"ok": False, "reason": sentence, "card"}."""
        chosen, config, arch, refusal = self._subject(values, card)
        if refusal:
            return refusal
        est = estimate(inputs_from_train_config(config, arch))
        from core.models.families import ImageSettings

        return {
            "ok": True, "model": config.model, "params": arch.total_params(),
            **model_summary(arch.for_images(ImageSettings.of(config)), config),
            "total_gb": est.total_gb, "allocated_gb": est.allocated_gb, "reserved_gb": est.reserved_gb,
            "paged_gb": est.paged_bytes / GB, "breakdown": est.breakdown_gb(),
            "terms": [{"label": t.label, "gb": t.gb, "note": t.note} for t in est.terms if t.counted and t.bytes > 0],
            "card": chosen, "verdict": verdict(est.total_gb, chosen["gb"]), "headroom_gb": chosen["gb"] - est.total_gb,
        }

    def fit(self, values: dict[str, Any] | TrainConfig, card: Any = None) -> dict[str, Any]:
        """Fit to the card: {"ok", "card", "before_gb", "before_verdict", "proposals" ([{"changes", "sentence",
        "saving_gb"}]), "changes" (every field to set), "after_gb", "after_verdict", "values" (the whole config
        after the changes)}; or {"ok": False, "reason", "card"}."""
        chosen, config, arch, refusal = self._subject(values, card)
        if refusal:
            return refusal
        before = estimate(inputs_from_train_config(config, arch)).total_gb
        proposals = fit_to_card(config, arch, chosen["gb"])
        after_config = apply_proposals(config, proposals)
        after = estimate(inputs_from_train_config(after_config, arch)).total_gb
        changes: dict[str, Any] = {}
        for p in proposals:
            changes.update(p.changes)
        after_verdict = verdict(after, chosen["gb"])
        return {
            "ok": True, "card": chosen, "before_gb": before, "before_verdict": verdict(before, chosen["gb"]),
            "applicable": bool(proposals) and after_verdict != WILL_NOT_FIT,
            "instead": instead_sentence(after, chosen) if after_verdict == WILL_NOT_FIT else None,
            "proposals": [{"changes": p.changes, "sentence": p.sentence, "saving_gb": p.saving_gb}
                          for p in proposals],
            "changes": changes, "after_gb": after, "after_verdict": after_verdict,
            "values": dataclasses.asdict(after_config),
        }

    def apply(self, values: dict[str, Any] | TrainConfig, card: Any = None) -> dict[str, Any]:
        """The fit's changes applied: like ``fit``; ``changes`` are the form values to set. Refused (ok False,
        with the reason) when the changes would still leave the run over the card."""
        result = self.fit(values, card)
        if result["ok"] and result["after_verdict"] == WILL_NOT_FIT:
            return {"ok": False, "reason": result["instead"], "card": result["card"]}
        return result

    # --- chat ---------------------------------------------------------------------------------------------
    def chat_estimate(self, model: str, bits: int, card: Any = None) -> dict[str, Any]:
        """Whether chatting with ``model`` (weights at 16, 8 or 4 bits, a CHAT_CONTEXT-token conversation) fits on
        the card beside the runs training and the evaluations running now (their estimates at start): {"ok",
        "chat_gb", "training_gb" (theirs, together), "runs", "evaluations", "total_gb", "card", "verdict"}; or
        {"ok": False, "reason", "card"}."""
        chosen = self.card(card)
        try:
            arch = self.architecture(model)
        except ModelUnavailable as e:
            return {"ok": False, "reason": str(e), "card": chosen}
        inputs = MemoryInputs(arch=arch, mode="inference", seq_len=CHAT_CONTEXT, weight_bits=bits,
                              double_quant=bits == 4, weight_bytes=2, compute_bytes=2, method="lora")
        chat_gb = estimate(inputs).total_gb
        running, evaluating = self.gpu_jobs()
        training_gb = sum(float(j.estimate["total_gb"]) for j in [*running, *evaluating])
        # one CUDA context is enough for the chat process: the jobs' estimates already hold their own
        total = chat_gb + training_gb
        return {"ok": True, "chat_gb": chat_gb, "training_gb": training_gb, "runs": [r.id for r in running],
                "evaluations": [e.id for e in evaluating], "total_gb": total, "card": chosen,
                "verdict": verdict(total, chosen["gb"])}

    def gpu_jobs(self) -> tuple[list, list]:
        """The runs training now and the evaluations running now that have an estimate (what holds the GPU)."""
        return ([r for r in self.registry.list_runs(("running",)) if r.estimate],
                [e for e in self.registry.list_evaluations(("running",)) if e.estimate])

    def eval_estimate(self, weights: list[tuple[str, int]], seq_len: int, batch: int) -> float | None:
        """The peak (GB) of an evaluation that loads each (model, weight bits) in turn, one at a time, and scores
        ``batch`` samples of up to ``seq_len`` tokens together; None when a model's config cannot be read."""
        peaks = []
        for model, bits in weights:
            try:
                arch = self.architecture(model)
            except ModelUnavailable:
                return None
            peaks.append(estimate(MemoryInputs(arch=arch, mode="inference", seq_len=seq_len, micro_batch=batch,
                                               weight_bits=bits, double_quant=bits == 4, weight_bytes=2,
                                               compute_bytes=2, method="lora")).total_gb)
        return max(peaks, default=None)

    # --- runs ---------------------------------------------------------------------------------------------
    def store_run_estimate(self, run_id: int, config: TrainConfig) -> dict[str, Any] | None:
        """Estimate a run as it starts and store it; None (nothing stored) when the model cannot be read.
        Never raises: a missing estimate must not stop a run."""
        try:
            summary = estimate_summary(self.estimate_config(config))
        except Exception as e:  # noqa: BLE001
            print(f"memory estimate for run {run_id} skipped: {e}", flush=True)
            return None
        self.registry.set_run_estimate(run_id, **summary)
        return summary

    def record_calibration(self, run_id: int, config: TrainConfig, measured_allocated_gb: float,
                           measured_reserved_gb: float, *, device_name: str = "", card_gb: float | None = None,
                           steps: int = 0) -> int | None:
        """Record a finished CUDA run's measured peaks beside its estimate (the stored one, else computed now,
        for runs started without the launcher); returns the point's id, or None without an estimate."""
        run = self.registry.get_run(run_id)
        summary = run.estimate or self.store_run_estimate(run_id, config)
        if summary is None:
            return None
        return self.registry.add_calibration_point(
            run_id=run_id, config=config.to_dict(), estimate=summary, measured_allocated_gb=measured_allocated_gb,
            measured_reserved_gb=measured_reserved_gb, device_name=device_name, card_gb=card_gb, steps=steps,
            attempt=run.attempt)

    def calibration_points(self) -> list[dict[str, Any]]:
        """Every calibration point, newest first, with the error (estimated - measured) of each peak."""
        return [self._point(p) for p in self.registry.list_calibration_points()]

    @staticmethod
    def _point(p: CalibrationRecord) -> dict[str, Any]:
        alloc_gb, alloc_pct = _error(p.est_allocated_gb, p.measured_allocated_gb)
        res_gb, res_pct = _error(p.est_reserved_gb, p.measured_reserved_gb)
        return {
            "id": p.id, "run_id": p.run_id, "attempt": p.attempt, "created_at": p.created_at,
            "summary": config_summary(p.config), "config": p.config, "device": p.device_name, "card_gb": p.card_gb,
            "steps": p.steps, "estimated_total_gb": p.est_total_gb, "estimated_allocated_gb": p.est_allocated_gb,
            "estimated_reserved_gb": p.est_reserved_gb, "measured_allocated_gb": p.measured_allocated_gb,
            "measured_reserved_gb": p.measured_reserved_gb, "allocated_error_gb": alloc_gb,
            "allocated_error_pct": alloc_pct, "reserved_error_gb": res_gb, "reserved_error_pct": res_pct,
        }
