"""Comparing runs: the summary's figures against the runs' metrics files with the best marked, stable colours,
the config diff, the CSV and PNG exports, and the curves' axes and smoothing (on hand-written run folders)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from core.compare.colours import PALETTE, colour_of, rgb_of
from core.compare.config_diff import NOT_USED
from core.compare.curves import ema
from core.compare.summary import shown
from core.problems import ProblemsError
from core.runs.files import COMPLETE_MARK, CONFIG_FILE, FINAL_DIR, METRICS_FILE
from core.train_config import TrainConfig

T0 = 1_000_000.0


def make_run(studio, name: str, method: str, lines: list[dict], result_bytes: int, **config: object) -> int:
    """A finished run in the registry with hand-written metrics, config.json and a result of a known size."""
    cfg = TrainConfig(run_name=name, method=method, **config).to_dict()
    run_id = studio.registry.create_run(name, cfg["model"], method, cfg["dataset"], cfg)
    folder = studio.paths.run_dir(run_id)
    (folder / FINAL_DIR).mkdir(parents=True)
    (folder / FINAL_DIR / "adapter.bin").write_bytes(b"x" * result_bytes)
    (folder / FINAL_DIR / COMPLETE_MARK).write_bytes(b"")
    (folder / CONFIG_FILE).write_text(json.dumps(cfg), encoding="utf-8")
    (folder / METRICS_FILE).write_text("".join(json.dumps(m) + "\n" for m in lines), encoding="utf-8")
    studio.registry.update_job("run", run_id, run_dir=str(folder), artefact_dir=str(folder / FINAL_DIR),
                               started_at=T0, finished_at=lines[-1]["time"] + 5, step=lines[-1]["step"],
                               params={"all": {"trainable": 1000 * run_id, "total": 50_000}})
    return run_id


def cpu_lines() -> list[dict]:
    # tokens: 10 tok/s over 2 s after the step-0 eval (which ends at T0+1), then 20 over 2 s, then 30 over 4 s
    return [{"step": 0, "eval_loss": 3.0, "time": T0 + 1},
            {"step": 1, "loss": 2.5, "tokens_per_s": 10.0, "time": T0 + 3, "mem_rss_mb": 1000.0},
            {"step": 2, "loss": 2.0, "tokens_per_s": 20.0, "time": T0 + 5, "mem_rss_mb": 1500.0},
            {"step": 2, "eval_loss": 2.2, "time": T0 + 6},
            {"step": 4, "loss": 1.5, "tokens_per_s": 30.0, "time": T0 + 10, "mem_rss_mb": 1200.0}]


def cuda_lines() -> list[dict]:
    return [{"step": 2, "loss": 2.2, "tokens_per_s": 100.0, "time": T0 + 2, "mem_peak_allocated_mb": 3000.0,
             "mem_reserved_mb": 3500.0, "mem_allocated_mb": 2000.0},
            {"step": 4, "loss": 1.9, "tokens_per_s": 100.0, "time": T0 + 4, "mem_peak_allocated_mb": 4000.0,
             "mem_reserved_mb": 4200.0, "mem_allocated_mb": 2000.0},
            {"step": 4, "eval_loss": 2.1, "time": T0 + 4.5}]


@pytest.fixture
def two_runs(studio) -> tuple[int, int]:
    a = make_run(studio, "lora-run", "lora", cpu_lines(), 3000)
    b = make_run(studio, "qlora-run", "qlora", cuda_lines(), 1000, quantization="4bit", lora_r=16)
    return a, b


def test_summary_figures_come_from_the_metrics_and_the_best_is_marked(studio, two_runs) -> None:
    a, b = two_runs
    summary = studio.compare_runs([a, b]).summary
    ra, rb = summary.rows
    assert (ra["method"], rb["method"], rb["quantization"]) == ("lora", "qlora", "4bit")
    assert ra["steps"] == 4 and ra["final_loss"] == 1.5 and ra["best_eval_loss"] == 2.2
    # training begins when the step-0 evaluation ends (T0 + 1): tokens seen / seconds trained
    assert ra["tokens_per_s"] == pytest.approx((10 * 2 + 20 * 2 + 30 * 5) / 9)
    assert ra["seconds_per_step"] == pytest.approx(9 / 4) and ra["wall_time_s"] == pytest.approx(15)
    assert ra["peak_rss_gb"] == pytest.approx(1500 * 2**20 / 1e9) and ra["peak_gpu_allocated_gb"] is None
    assert rb["peak_gpu_allocated_gb"] == pytest.approx(4000 * 2**20 / 1e9)
    assert rb["peak_gpu_reserved_gb"] == pytest.approx(4200 * 2**20 / 1e9)
    assert rb["tokens_per_s"] == pytest.approx(100.0) and rb["best_eval_loss"] == 2.1
    assert (ra["trainable_params"], ra["total_params"]) == (1000 * a, 50_000)
    assert (ra["result_bytes"], rb["result_bytes"]) == (3000, 1000)
    assert summary.best["final_loss"] == {a} and summary.best["best_eval_loss"] == {b}
    assert summary.best["tokens_per_s"] == {b} and summary.best["seconds_per_step"] == {b}
    assert summary.best["result_bytes"] == {b}
    assert "method" not in summary.best and "peak_rss_gb" not in summary.best  # only one run has an RSS
    assert shown(next(c for c in summary.columns if c.key == "final_loss"), 1.5) == "1.5000"


def test_tokens_and_time_axes_and_smoothing(studio, two_runs) -> None:
    a, b = two_runs
    by_tokens = studio.compare_runs([a, b], x="tokens").charts
    assert [p[0] for p in by_tokens["loss"][0].points] == pytest.approx([20, 60, 210])
    assert [p[0] for p in by_tokens["eval_loss"][0].points] == pytest.approx([0, 60])
    by_time = studio.compare_runs([a, b], x="time", smoothing=0.5).charts
    assert [p[0] for p in by_time["loss"][0].points] == pytest.approx([2, 4, 9])
    # without a step-0 evaluation the first window is timed at the next window's pace (1 s a step)
    assert [p[0] for p in by_time["loss"][1].points] == pytest.approx([2, 4])
    assert [p[1] for p in by_time["loss"][0].points] == pytest.approx(ema([2.5, 2.0, 1.5], 0.5))
    assert [p[1] for p in by_time["memory"][1].points] == [3000.0, 4000.0]
    assert ema([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0]) and ema([1, 3], 0.0) == [1, 3]
    with pytest.raises(ProblemsError) as raised:
        studio.compare_runs([a, b], x="epochs", smoothing=2)
    assert {p.field for p in raised.value.problems} == {"x_axis", "smoothing"}


def test_colours_follow_the_run_id_not_the_order(studio, two_runs) -> None:
    a, b = two_runs
    forward, backward = studio.compare_runs([a, b]), studio.compare_runs([b, a])
    assert forward.colours == backward.colours
    assert forward.colours[forward.facts[0].label] == colour_of(a) != colour_of(b)
    assert all(c.colour == colour_of(c.run_id) for lines in forward.charts.values() for c in lines)
    assert len({colour_of(i) for i in range(7, 7 + len(PALETTE))}) == len(PALETTE)


def test_two_to_six_runs_are_compared(studio, two_runs) -> None:
    for ids in ([two_runs[0]], [1, 2, 3, 4, 5, 6, 7], [two_runs[0], two_runs[0]]):
        with pytest.raises(ProblemsError) as raised:
            studio.compare_runs(ids)
        assert raised.value.problems[0].field == "runs" and "2 to 6" in raised.value.problems[0].message
    with pytest.raises(ProblemsError, match="no run 99"):
        studio.compare_runs([two_runs[0], 99])


def test_config_diff_lists_only_differing_fields_by_label(studio, two_runs) -> None:
    diff = studio.compare_runs(list(two_runs)).diff
    by_field = {d.field: d for d in diff}
    # the 4-bit settings apply to the QLoRA run only; LISA's apply to neither run, so they are left out
    assert set(by_field) == {"run_name", "method", "quantization", "lora_r", "quant_type", "double_quant",
                             "compute_dtype"}
    assert by_field["lora_r"].label == "LoRA rank" and by_field["lora_r"].values == ["8", "16"]
    assert by_field["quantization"].values == ["— (not used)", "4bit"]  # shown for QLoRA only
    assert by_field["quant_type"].label == "4-bit type" and by_field["quant_type"].values == [NOT_USED, "nf4"]


def test_csv_holds_the_table_the_config_diff_and_the_best(studio, two_runs, tmp_path: Path) -> None:
    a, b = two_runs
    path = studio.comparisons.export_csv([a, b], dest_dir=tmp_path)
    assert path.parent.parent == tmp_path and path.suffix == ".csv"
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["run id"]) for r in rows] == [a, b]
    assert float(rows[0]["Final train loss"]) == 1.5 and float(rows[1]["Best eval loss"]) == 2.1
    assert float(rows[1]["Tokens/s"]) == pytest.approx(100.0)
    assert rows[0]["Peak GPU alloc. (GB)"] == "" and rows[1]["config: LoRA rank"] == "16"
    assert rows[0]["config: 4-bit type"] == NOT_USED
    assert "Final train loss" in rows[0]["best in"] and "Final train loss" not in rows[1]["best in"]
    assert "Tokens/s" in rows[1]["best in"]


def test_each_chart_is_written_as_a_png_in_the_runs_colours(studio, two_runs, tmp_path: Path) -> None:
    a, b = two_runs
    paths = studio.comparisons.export_pngs([a, b], x="time", dest_dir=tmp_path)
    assert sorted(p.name for p in paths) == ["eval_loss-by-time.png", "loss-by-time.png", "memory-by-time.png",
                                             "tokens_per_s-by-time.png"]
    with Image.open(next(p for p in paths if p.name.startswith("loss"))) as image:
        assert image.format == "PNG" and image.width >= 900
        colours = {c for _, c in image.convert("RGB").getcolors(1 << 20)}
    assert rgb_of(colour_of(a)) in colours and rgb_of(colour_of(b)) in colours


def test_chart_ticks_cover_the_whole_range() -> None:
    from core.compare.charts import nice_ticks

    for low, high in ((2, 9), (1.4, 2.5), (0, 4210.5), (5.55, 5.56), (3, 3)):
        ticks = nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high and len(ticks) <= 12, (low, high, ticks)


def test_a_finished_cuda_runs_true_peaks_and_its_estimate_are_shown(studio, two_runs) -> None:
    a, b = two_runs
    estimate = {"total_gb": 5.5, "allocated_gb": 4.0, "reserved_gb": 4.6, "breakdown": {}}
    studio.registry.set_run_estimate(b, **estimate)
    studio.registry.add_calibration_point(run_id=b, config={}, estimate=estimate, measured_allocated_gb=4.3,
                                          measured_reserved_gb=4.9)
    rows = studio.compare_runs([a, b]).summary.rows
    assert (rows[1]["peak_gpu_allocated_gb"], rows[1]["peak_gpu_reserved_gb"]) == (4.3, 4.9)
    assert rows[1]["estimated_peak_gb"] == 5.5 and rows[0]["estimated_peak_gb"] is None
