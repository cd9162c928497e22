"""Quick start: two real runs, stage 2 trained from stage 1's result, and no stage 2 after a failed stage 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jobs_helpers import wait_for

from core.runs.files import FINAL_DIR
from core.runs.follow_up import FOLLOW_UP_FILE, start_follow_up
from core.store.registry import TERMINAL
from core.train_config import TINY_MODEL
from webui.quick_start import is_finished, state_markdown

# Tiny budgets on the tiny model: the chain is the point here (the recipe itself is measured in bench/quality.py).
BUDGET = {"max_steps": 2, "batch_size": 2, "eval_max_rows": 4, "max_length": 256}


def test_quick_start_trains_stage_2_from_stage_1s_result(studio) -> None:
    events: list[tuple[float, str]] = []
    started = studio.quick_starts.start(lambda f, m: events.append((f, m)), stage_1={**BUDGET, "model": TINY_MODEL},
                                 stage_2=BUDGET)
    assert [f for f, _ in events] == sorted(f for f, _ in events) and events[-1][0] == 1.0
    assert studio.registry.find_dataset("shapes-qa") is not None  # registered on the way
    first = wait_for(studio.registry, started.stage_1_run, TERMINAL, timeout=240)
    started.follower.join(timeout=30)
    state = studio.quick_starts.state(started.stage_1_run)
    assert state["follow_up"] == "started", state
    second = wait_for(studio.registry, state["stage_2"]["run"], TERMINAL, timeout=240)
    assert (first.status, first.method, first.config["freeze_preset"]) == ("completed", "freeze", "llava_stage1")
    assert (second.status, second.method, second.step) == ("completed", "lora", 2), second.error
    assert second.model == first.artefact_dir == str(Path(first.run_dir) / FINAL_DIR)
    adapter = json.loads((Path(second.artefact_dir) / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == first.artefact_dir  # LoRA sits on stage 1's weights
    assert start_follow_up(studio.launcher, studio.registry, first.id) is None  # never a second stage 2
    assert len(studio.registry.list_runs()) == 2
    shown = state_markdown(studio.quick_starts.state(first.id))  # what the Train tab's panel says at the end
    assert f"run **{first.id}**" in shown and f"run **{second.id}**" in shown and f"choose run {second.id}" in shown


def test_a_failed_stage_1_does_not_start_stage_2(studio, data_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"  # Check accepts it (a config.json); loading its weights fails in the job
    shutil.copytree(data_dir / "models" / TINY_MODEL, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    started = studio.quick_starts.start(stage_1={**BUDGET, "model": str(broken)}, stage_2=BUDGET)
    first = wait_for(studio.registry, started.stage_1_run, TERMINAL, timeout=240)
    started.follower.join(timeout=30)
    assert first.status == "failed"
    state = studio.quick_starts.state(started.stage_1_run)
    assert state["stage_2"] is None and state["follow_up"] == "not_started"
    assert f"run {first.id} ended failed" in state["reason"]
    assert "not started" in state_markdown(state) and is_finished(state)
    assert [r.id for r in studio.registry.list_runs()] == [first.id]
    kept = json.loads((Path(first.run_dir) / FOLLOW_UP_FILE).read_text())
    assert kept["config"]["model"] == str(Path(first.run_dir) / FINAL_DIR)  # made when stage 1 was recorded
