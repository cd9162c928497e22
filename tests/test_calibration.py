"""Memory calibration: run estimates stored at start, CUDA peaks recorded at the end, errors, older databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from jobs_helpers import fast_config, wait_for

from core.memory.advisor import MemoryAdvisor
from core.store.registry import Registry
from core.store.schema import SCHEMA_VERSION
from jobs.reporter import Reporter, cuda_peaks

ESTIMATE = {"total_gb": 20.0, "allocated_gb": 17.0, "reserved_gb": 18.7,
            "breakdown": {"Language model weights": 13.5, "Activations": 3.5, "Allocator overhead": 1.7,
                          "CUDA context and kernels": 0.5}}


def test_run_estimate_round_trips(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "studio.db")
    run_id = registry.create_run("r", "m", "lora", "d", {})
    assert registry.get_run(run_id).estimate is None
    registry.set_run_estimate(run_id, **ESTIMATE)
    assert registry.get_run(run_id).estimate == ESTIMATE
    assert Registry(tmp_path / "studio.db").list_runs()[0].estimate == ESTIMATE


def test_calibration_points_round_trip_with_their_errors(studio) -> None:
    config = fast_config(run_name="cal", batch_size=4, max_length=1024, precision="bf16")
    run_id = studio.registry.create_run("cal", config.model, config.method, config.dataset, config.to_dict())
    studio.registry.set_run_estimate(run_id, **ESTIMATE)
    point_id = studio.memory.record_calibration(run_id, config, 16.0, 20.0, device_name="NVIDIA H100 80GB HBM3",
                                                card_gb=85.0, steps=24)
    reopened = MemoryAdvisor(studio.paths, Registry(studio.paths.db_file))  # read back through a new connection
    (point,) = reopened.calibration_points()
    assert point["id"] == point_id and point["run_id"] == run_id and point["steps"] == 24
    assert point["device"] == "NVIDIA H100 80GB HBM3" and point["card_gb"] == 85.0
    assert (point["estimated_total_gb"], point["estimated_allocated_gb"], point["estimated_reserved_gb"]) == (
        20.0, 17.0, 18.7)
    assert (point["measured_allocated_gb"], point["measured_reserved_gb"]) == (16.0, 20.0)
    assert point["allocated_error_gb"] == pytest.approx(1.0) and point["allocated_error_pct"] == pytest.approx(6.25)
    assert point["reserved_error_gb"] == pytest.approx(-1.3) and point["reserved_error_pct"] == pytest.approx(-6.5)
    assert point["config"]["batch_size"] == 4 and "batch 4×1024" in point["summary"]


def test_a_run_without_a_stored_estimate_is_estimated_when_it_records(studio) -> None:
    config = fast_config(run_name="headless")
    run_id = studio.registry.create_run("headless", config.model, config.method, config.dataset, config.to_dict())
    studio.memory.record_calibration(run_id, config, 0.02, 0.03)
    (point,) = studio.memory.calibration_points()
    stored = studio.registry.get_run(run_id).estimate
    assert stored and point["estimated_total_gb"] == pytest.approx(stored["total_gb"])
    assert sum(stored["breakdown"].values()) == pytest.approx(stored["total_gb"])


def test_the_reporter_records_given_cuda_peaks_and_nothing_on_cpu(studio, tmp_path: Path) -> None:
    config = fast_config(run_name="rep")
    run_id = studio.registry.create_run("rep", config.model, config.method, config.dataset, config.to_dict())
    reporter = Reporter(studio.registry, run_id, tmp_path)
    if cuda_peaks() is None:  # this process never used CUDA (always so on a CPU machine)
        assert reporter.record_memory_peaks(studio.memory, config, 10) is None
        assert studio.memory.calibration_points() == []
    peaks = {"allocated_gb": 1.5, "reserved_gb": 2.0, "name": "Some GPU", "card_gb": 25.4}
    point_id = reporter.record_memory_peaks(studio.memory, config, 10, peaks=peaks)
    (point,) = studio.memory.calibration_points()
    assert point["id"] == point_id and point["measured_reserved_gb"] == 2.0 and point["device"] == "Some GPU"


def test_a_launched_run_stores_its_estimate_and_a_cpu_run_records_no_calibration_point(studio) -> None:
    config = fast_config(max_steps=3, device="cpu")
    expected = studio.memory.estimate(config, "24")
    run_id = studio.launcher.start(config)
    stored = studio.registry.get_run(run_id).estimate  # stored before the process started
    assert stored is not None
    assert stored["total_gb"] == pytest.approx(expected["total_gb"])
    assert stored["allocated_gb"] == pytest.approx(expected["allocated_gb"])
    assert stored["breakdown"] == pytest.approx(expected["breakdown"])
    run = wait_for(studio.registry, run_id, ("completed", "failed", "lost"))
    assert run.status == "completed", run.error
    assert studio.memory.calibration_points() == []


def test_a_version_2_database_opens_with_estimates_and_calibration(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from core.store.schema import migrate

    db_file = tmp_path / "studio.db"
    engine = create_engine(f"sqlite:///{db_file}")
    with engine.begin() as conn:
        assert migrate(conn, target=2) == 2
        conn.execute(text(
            "INSERT INTO runs (name, status, model, method, dataset, config_json, created_at, attempt) "
            "VALUES ('v2 run', 'completed', 'm', 'lora', 'd', '{}', 1.0, 2)"))
    engine.dispose()
    registry = Registry(db_file)
    (run,) = registry.list_runs()
    assert (run.name, run.attempt, run.estimate) == ("v2 run", 2, None)
    assert registry.list_calibration_points() == []
    registry.set_run_estimate(run.id, **ESTIMATE)
    registry.add_calibration_point(run_id=run.id, config={"model": "m", "method": "lora"}, estimate=ESTIMATE,
                                   measured_allocated_gb=1.0, measured_reserved_gb=2.0)
    assert registry.get_run(run.id).estimate == ESTIMATE and len(registry.list_calibration_points()) == 1
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_memory_chart_draws_the_estimate_beside_the_measured_curve() -> None:
    from webui.runs_tab import MB_PER_GB, calibration_table, memory_frame

    cuda = [{"step": s, "mem_allocated_mb": 100.0, "mem_reserved_mb": 120.0, "mem_peak_allocated_mb": 110.0}
            for s in (1, 2)]
    frame = memory_frame(cuda, ESTIMATE)
    lines = frame[frame["series"].str.startswith("estimated")]
    assert set(lines["series"]) == {"estimated peak allocated", "estimated peak reserved"}
    assert list(lines["step"]) == [0, 1, 2, 0, 1, 2]
    assert lines[lines["series"] == "estimated peak reserved"]["MB"].iloc[0] == pytest.approx(18.7 * MB_PER_GB)
    assert {"GPU allocated", "GPU reserved", "GPU peak allocated"} <= set(frame["series"])
    cpu = memory_frame([{"step": 1, "mem_rss_mb": 900.0}], ESTIMATE)
    assert set(cpu["series"]) == {"process RSS", "estimated GPU peak"}
    assert cpu["MB"].iloc[-1] == pytest.approx(20.0 * MB_PER_GB)
    assert set(memory_frame([], ESTIMATE, total_steps=30)["step"]) == {0, 30}
    assert memory_frame([{"step": 1, "mem_rss_mb": 900.0}])["series"].tolist() == ["process RSS"]
    point = {"run_id": 3, "created_at": 0.0, "summary": "s", "device": "d", "estimated_total_gb": 20.0,
             "estimated_allocated_gb": 17.0, "measured_allocated_gb": 16.0, "allocated_error_gb": 1.0,
             "allocated_error_pct": 6.25, "estimated_reserved_gb": 18.7, "measured_reserved_gb": 20.0,
             "reserved_error_gb": -1.3, "reserved_error_pct": -6.5}
    row = calibration_table([point]).iloc[0]
    assert (row["allocated error"], row["reserved error"]) == ("+1.00 GB (+6.2%)", "-1.30 GB (-6.5%)")
