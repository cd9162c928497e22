"""What fine-tuning does to starter-vlm on shapes-qa, through the studio's own jobs, into docs/quality.md.

    python bench/quality.py --quick        # 13 minutes measured on 2 shared cores (12 steps a run)
    python bench/quality.py                # the recipe's budgets: about 40 min on 2 idle cores (estimated)

Fixed seeds. Stage 1 (the projector alone) runs once with `python -m jobs.train --config ...`; each stage 2
method (LoRA, QLoRA 4-bit NF4, LISA, full fine-tuning of the language model) then starts from stage 1's result
with the same steps, batch and seed. Every model is scored with `python -m jobs.evaluate` on the whole held-out
split's 72 short-answer rows (new pictures): exact match, and the loss on the reference answers. Wall time
and peak RSS of each training job are measured from outside (psutil, every 0.2 s); LISA's
RSS is also kept per re-sampling period. A LoRA run is repeated with the same seed to compare the loss curves.
``--starter DIR`` links an already built starter-vlm folder instead of building it from PyPI's wheels.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.evals.results import read_results  # noqa: E402
from core.models.starter import recipe  # noqa: E402
from core.runs.files import read_metrics  # noqa: E402
from core.store.registry import Registry  # noqa: E402
from core.studio import Studio  # noqa: E402
from core.train_config import TINY_MODEL  # noqa: E402

# Budgets per mode: steps of stage 1 and of each stage 2 run, the repeated LoRA run's steps, LISA's interval.
MODES = {"quick": {"stage_1_steps": 12, "stage_2_steps": 12, "repeat_steps": 3, "lisa_interval": 4},
         "full": {"stage_1_steps": recipe.STAGE_1["max_steps"], "stage_2_steps": recipe.STAGE_2["max_steps"],
                  "repeat_steps": 8, "lisa_interval": 12},
         "smoke": {"stage_1_steps": 2, "stage_2_steps": 2, "repeat_steps": 2, "lisa_interval": 1}}
RESULTS_DIR = ROOT / "docs" / "quality"  # each mode's raw figures, from which docs/quality.md is written
IN_RUN_EVAL_ROWS = 8  # the job's own eval (baseline and end) stays cheap; the evaluation job scores them all
METHODS = {  # stage 2 variants: fields over recipe.STAGE_2
    "LoRA": {},
    "QLoRA (4-bit NF4)": {"method": "qlora", "quantization": "4bit", "quant_type": "nf4", "double_quant": True,
                          "compute_dtype": "fp32"},
    "LISA": {"method": "lisa", "lisa_layers": 2},  # LoRA's 5e-4: at 2e-4 LISA fell behind LoRA (docs/quality.md)
    "Full (language model)": {"method": "full", "train_language_model": True, "train_projector": True,
                              "train_vision_tower": False, "learning_rate": 5e-5},
}
MAX_NEW_TOKENS = 5  # the longest short answer ("bottom right") is 2 tokens; a longer answer is wrong anyway
SHORT_ROWS = 72  # eval.json lists its 72 short-answer rows (18 per kind) before its 24 captions
FULL_FT_RAM_GB = 4.0  # full fine-tuning of the 135M language model with AdamW needs about 2.5 GB; skipped below


def run_job(args: list[str], log: Path) -> dict[str, Any]:
    """A studio job as a child process; its wall time and peak RSS (process tree) measured from outside."""
    started = time.time()
    peak = 0
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1"))
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
            except psutil.Error:
                pass
            time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return {"seconds": round(time.time() - started, 1), "peak_rss_gb": round(peak / 2**30, 2)}


def train(data_dir: Path, work: Path, name: str, config: dict[str, Any]) -> dict[str, Any]:
    from core.train_config import TrainConfig

    path = work / f"{name}.json"
    TrainConfig.from_dict({"run_name": name, **config}).save(path)
    measured = run_job(["jobs.train", "--config", str(path), "--data-dir", str(data_dir)], work / f"{name}.log")
    registry = Registry(data_dir / "studio.db")
    run = max((r for r in registry.list_runs() if r.name == name), key=lambda r: r.id)
    registry.dispose()
    if run.status != "completed":
        raise SystemExit(f"run {run.id} ({name}) ended {run.status}: {run.error}")
    metrics = read_metrics(Path(run.run_dir))
    losses = [m["loss"] for m in metrics if "loss" in m]
    rss = [(m["step"], m["mem_rss_mb"]) for m in metrics if "mem_rss_mb" in m]
    return {"run": run.id, "result": run.artefact_dir, "losses": losses, "rss_by_step": rss, **measured}


def evaluate(data_dir: Path, work: Path, name: str, model: str) -> dict[str, Any]:
    """Score a base or ``run:N`` with the evaluation job on every held-out row."""
    measured = run_job(["jobs.evaluate", "--model", model, "--dataset", "shapes-qa", "--data-dir", str(data_dir),
                        "--max-samples", str(SHORT_ROWS), "--max-new-tokens", str(MAX_NEW_TOKENS), "--batch-size", "8",
                        "--max-length", "512"], work / f"eval-{name}.log")
    registry = Registry(data_dir / "studio.db")
    record = max(registry.list_evaluations(), key=lambda e: e.id)
    registry.dispose()
    rows = read_results(Path(record.eval_dir))
    short = [r["base"] for r in rows if not r["id"].endswith("caption")]
    nll = sum(r["base"]["nll"] for r in rows if r["base"].get("tokens"))
    tokens = sum(r["base"]["tokens"] for r in rows if r["base"].get("tokens"))
    examples = [(r["question"], r["reference"], r["base"]["answer"]) for r in rows[::12]]
    return {"eval": record.id, "exact_match": round(100 * sum(s["exact_match"] for s in short) / len(short), 1),
            "short_rows": len(short), "eval_loss": round(nll / tokens, 4), "examples": examples,
            "eval_seconds": measured["seconds"]}


def keep(work: Path, results: dict[str, Any]) -> None:
    """What is measured so far, in case the bench is stopped before the end."""
    (work / "partial.json").write_text(json.dumps(results, indent=2) + "\n")


def lisa_periods(rss_by_step: list[tuple[int, float]], interval: int) -> list[float]:
    """Peak RSS (GB) in each LISA re-sampling period (steps 1..K, K+1..2K, ...)."""
    peaks: dict[int, float] = {}
    for step, mb in rss_by_step:
        period = (step - 1) // interval
        peaks[period] = max(peaks.get(period, 0.0), mb / 1024)
    return [round(peaks[p], 3) for p in sorted(peaks)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short budgets (about 10 minutes on 2 idle cores)")
    parser.add_argument("--work", default=str(ROOT / ".bench" / "quality"), help="data directory and logs")
    parser.add_argument("--starter", default=None, help="an already built starter-vlm folder to link")
    parser.add_argument("--out", default=str(ROOT / "docs" / "quality.md"))
    parser.add_argument("--smoke", action="store_true",
                        help="the whole path on tiny-random-llava, two steps a run (checks the bench only)")
    parser.add_argument("--render", action="store_true", help="only rewrite --out from the kept figures")
    parser.add_argument("--only", default="", help="comma-separated stage 2 methods to run (default all)")
    args = parser.parse_args()
    if args.render:
        render(sorted(RESULTS_DIR.glob("results-*.json")), Path(args.out))
        return
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    budget = MODES[mode]
    work = Path(args.work) / mode
    shutil.rmtree(work, ignore_errors=True)
    data_dir = work / "studio"
    (data_dir / "models").mkdir(parents=True)
    if args.starter:
        (data_dir / "models" / recipe.FOLDER_NAME).symlink_to(Path(args.starter).resolve(), target_is_directory=True)
    studio = Studio(data_dir)
    studio.catalog.resolve_dir("shapes-qa")
    studio.prepare_model(TINY_MODEL if args.smoke else "starter-vlm")  # built when not linked
    studio.close()
    started = time.time()
    common = {"eval_steps": 10**6, "eval_max_rows": IN_RUN_EVAL_ROWS, "save_best": False}
    results: dict[str, Any] = {"mode": mode, "budget": budget, "cores": os.cpu_count(),
                               "load_before": os.getloadavg()[0]}
    results["base"] = evaluate(data_dir, work, "base", TINY_MODEL if args.smoke else "starter-vlm")
    first_model = {"model": TINY_MODEL} if args.smoke else {}
    stage_1 = train(data_dir, work, "stage-1", {**recipe.STAGE_1, **common, **first_model,
                                                "max_steps": budget["stage_1_steps"]})
    results["stage_1"] = {**stage_1, **evaluate(data_dir, work, "stage-1", f"run:{stage_1['run']}")}
    keep(work, results)
    stage_2 = {**recipe.STAGE_2, **common, "model": stage_1["result"], "max_steps": budget["stage_2_steps"]}
    wanted = [m.strip() for m in args.only.split(",") if m.strip()] or list(METHODS)
    results["stage_2"] = {}
    for label, fields in METHODS.items():
        if label not in wanted:
            continue
        if fields.get("method") == "full" and psutil.virtual_memory().available < FULL_FT_RAM_GB * 2**30:
            results["stage_2"][label] = {"skipped": f"less than {FULL_FT_RAM_GB} GB of RAM available"}
            continue
        config = {**stage_2, **fields}
        if fields.get("method") == "lisa":
            config["lisa_interval"] = budget["lisa_interval"]
        slug = label.split()[0].lower()
        trained = train(data_dir, work, f"stage-2-{slug}", config)
        scored = evaluate(data_dir, work, f"stage-2-{slug}", f"run:{trained['run']}")
        results["stage_2"][label] = {**trained, **scored, "config": {k: config[k] for k in
                                                                     ("method", "learning_rate", "max_steps")}}
        keep(work, results)
        if fields.get("method") == "lisa":
            results["stage_2"][label]["rss_per_period_gb"] = lisa_periods(trained["rss_by_step"],
                                                                          budget["lisa_interval"])
    repeat = {**stage_2, "max_steps": budget["repeat_steps"]}
    first, second = (train(data_dir, work, f"repeat-{n}", repeat)["losses"] for n in (1, 2))
    results["repeat"] = {"steps": len(first), "first": first, "second": second,
                         "max_abs_diff": max(abs(a - b) for a, b in zip(first, second, strict=True))}
    results["seconds"] = round(time.time() - started, 1)
    results["load_after"] = os.getloadavg()[0]
    results["command"] = " ".join(["python", "bench/quality.py", *sys.argv[1:]])
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.smoke:  # checks the bench; its figures go beside its logs, never into the docs
        render([work / "results.json"], work / "quality.md")
        return
    kept = RESULTS_DIR / f"results-{mode}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work / "results.json", kept)
    render(sorted(RESULTS_DIR.glob("results-*.json")), Path(args.out))
    print(f"wrote {args.out} ({results['seconds']:.0f} s); raw figures in {kept}")


def render(files: list[Path], out: Path) -> None:
    """The document from every kept measurement (one section per mode)."""
    from bench.quality_report import document

    measured = [json.loads(f.read_text()) for f in files]
    out.write_text(document([(m, m["command"]) for m in measured]))


if __name__ == "__main__":
    main()
