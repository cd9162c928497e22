"""docs/quality.md from bench/quality.py's figures: the before/after table, the targets met or missed, and why."""

from __future__ import annotations

import time
from typing import Any

QLORA_TOLERANCE = 0.03
ACCURACY_GAIN = 30.0
REPEAT_TOLERANCE = 1e-6
FLAT_SHARE = 0.05  # LISA's peak RSS per re-sampling period counts as flat within 5 % of the highest


def _row(label: str, before: dict[str, Any], after: dict[str, Any]) -> str:
    return (f"| {label} | {before['exact_match']:.1f} | {after['exact_match']:.1f} | {before['eval_loss']:.3f} | "
            f"{after['eval_loss']:.3f} | {after.get('seconds', 0):.0f} | {after.get('peak_rss_gb', 0):.2f} |")


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met, the measured figures) for each of the four targets; met is None when it was not measured."""
    base, stage_2 = results["base"], results["stage_2"]
    lora, qlora, lisa = (stage_2.get(k) for k in ("LoRA", "QLoRA (4-bit NF4)", "LISA"))
    out: list[tuple[str, bool | None, str]] = []
    if lora:
        gain = lora["exact_match"] - base["exact_match"]
        out.append(("held-out accuracy after stage 1 + LoRA ≥ base + 30 points", gain >= ACCURACY_GAIN,
                    f"{base['exact_match']:.1f} % → {lora['exact_match']:.1f} % ({gain:+.1f} points)"))
    if lora and qlora:
        ratio = qlora["eval_loss"] / lora["eval_loss"] - 1
        out.append(("QLoRA's eval loss within 3 % of LoRA's at equal steps", abs(ratio) <= QLORA_TOLERANCE,
                    f"{qlora['eval_loss']:.4f} vs {lora['eval_loss']:.4f} ({ratio:+.1%})"))
    if lora and lisa:
        periods = lisa.get("rss_per_period_gb", [])
        spread = (max(periods) - min(periods)) if periods else 0.0
        flat = spread <= FLAT_SHARE * max(periods) if periods else False
        out.append(("LISA's eval loss ≤ LoRA's at equal steps, peak memory flat across re-samplings",
                    lisa["eval_loss"] <= lora["eval_loss"] and flat,
                    f"{lisa['eval_loss']:.4f} vs {lora['eval_loss']:.4f}; peak RSS per period "
                    f"{', '.join(f'{p:.3f}' for p in periods)} GB (spread {spread * 1024:.0f} MB; flat means within "
                    f"{FLAT_SHARE:.0%} of the highest)"))
    repeat = results["repeat"]
    out.append(("same seed twice gives the same loss curve (max abs difference ≤ 1e-6)",
                repeat["max_abs_diff"] <= REPEAT_TOLERANCE,
                f"{repeat['steps']} steps, max abs difference {repeat['max_abs_diff']:.2e}"))
    return out


TITLE = "# What training does to starter-vlm"
INTRO = ("Written by `bench/quality.py` from its measurements (the raw figures are in `docs/quality/`); rerun it to "
         "measure again. The full budgets are the recipe's (`core/models/starter/recipe.py`: stage 1 48 steps, "
         "stage 2 96 steps), which Quick start runs; `--quick` cuts every run to 12 steps.")
MODE_TITLES = {"full": "Full budgets", "quick": "Quick mode (`--quick`)", "smoke": "Smoke run (tiny model)"}


def report(results: dict[str, Any], command: str) -> str:
    """A document of one measurement."""
    return document([(results, command)])


def document(measurements: list[tuple[dict[str, Any], str]]) -> str:
    """docs/quality.md: every measurement's section (full budgets first)."""
    order = list(MODE_TITLES)
    ranked = sorted(measurements, key=lambda m: order.index(m[0]["mode"]))
    return "\n".join([TITLE, "", INTRO, "", *(section(r, c) for r, c in ranked)])


def section(results: dict[str, Any], command: str) -> str:
    base, stage_1 = results["base"], results["stage_1"]
    budget = results["budget"]
    lines = [
        f"## {MODE_TITLES[results['mode']]}",
        "",
        f"Measured by `{command}` ({results['mode']} mode) on {results['cores']} CPU cores, "
        f"{time.strftime('%Y-%m-%d')}, in {results['seconds'] / 60:.0f} minutes (load average "
        f"{results['load_before']:.1f} at the start, {results['load_after']:.1f} at the end: the cores were shared). "
        "Every model is scored by the studio's evaluation job (`python -m jobs.evaluate`) on the whole held-out "
        "split of `shapes-qa`, its 72 short-answer rows (new pictures; colour, shape, count and position, 18 "
        "each): exact match (normalised case, punctuation and articles) and the mean token loss on the "
        "reference answers (eval loss). Training runs are `python -m jobs.train --config ...` jobs with seed 42; "
        "wall time and peak RSS are the training job's, measured from outside.",
        "",
        f"Stage 1 trains the projector alone ({budget['stage_1_steps']} steps, batch 4); every stage 2 method "
        f"starts from stage 1's result and runs {budget['stage_2_steps']} steps at batch 4. \"Before\" is the "
        "model each row started from: the untrained starter for stage 1, stage 1's result for stage 2.",
        "",
        "| method | exact match before (%) | after (%) | eval loss before | after | train wall time (s) | "
        "peak RSS (GB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        _row("stage 1 only (projector)", base, stage_1),
    ]
    for label, figures in results["stage_2"].items():
        if "skipped" in figures:
            lines.append(f"| stage 1 + {label} | skipped: {figures['skipped']} | | | | | |")
        else:
            lines.append(_row(f"stage 1 + {label}", stage_1, figures))
    lines += ["", f"The untrained starter scores {base['exact_match']:.1f} % exact match and "
              f"{base['eval_loss']:.3f} eval loss.", "", "### Targets", "",
              "| target | met | measured |", "| --- | --- | --- |"]
    for target, met, measured in targets(results):
        lines.append(f"| {target} | {'yes' if met else 'no'} | {measured} |")
    lines += ["", "### Answers on held-out pictures (every 12th row)", "",
              "| question | reference | base | stage 1 | stage 1 + LoRA |", "| --- | --- | --- | --- | --- |"]
    lora = results["stage_2"].get("LoRA", {}).get("examples") or [("", "", "")] * len(base["examples"])
    for (question, reference, b), (_, _, s1), (_, _, lo) in zip(base["examples"], stage_1["examples"], lora,
                                                                strict=False):
        cells = [question.replace("\n", " "), reference, b, s1, lo]
        lines.append("| " + " | ".join(" ".join(c.replace("|", "/").split()) or "(empty)" for c in cells) + " |")
    lines.append("")
    return "\n".join(lines)
