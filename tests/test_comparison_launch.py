"""Launch a comparison: variants per method from one config, checked all at once before anything is queued, then
run one after another through the queue; LISA warns when γ covers every layer."""

from __future__ import annotations

from jobs_helpers import fast_config, wait_for

from core.problems import ProblemsError
from core.runs.comparison_launch import comparison_variants, variant_name
from core.runs.queue import CANCELLED

FAST_CPU = {"max_steps": 3, "logging_steps": 1, "compute_dtype": "fp32", "save_steps": 0}


def test_variants_share_data_and_budget_and_differ_only_in_method() -> None:
    base = fast_config(run_name="colours", learning_rate=1e-3, quantization="none")
    lora, qlora, lisa = comparison_variants(base, ["lora", "qlora", "lisa", "lora"])
    assert [v.run_name for v in (lora, qlora, lisa)] == ["colours · LoRA", "colours · QLoRA", "colours · LISA"]
    assert [v.quantization for v in (lora, qlora, lisa)] == ["none", "4bit", "none"]
    for v in (lora, qlora, lisa):
        assert (v.dataset, v.max_steps, v.learning_rate, v.seed, v.batch_size) == \
            (base.dataset, base.max_steps, base.learning_rate, base.seed, base.batch_size)
    from_qlora = fast_config(method="qlora", quantization="8bit")
    assert [v.quantization for v in comparison_variants(from_qlora, ["qlora", "lora"])] == ["8bit", "none"]
    assert len(variant_name("x" * 200, "lora")) == 120


def test_every_variant_is_checked_before_any_is_queued(studio) -> None:
    values = fast_config(run_name="cmp", lisa_layers=5).to_dict()  # the tiny model has 2 decoder layers
    try:
        studio.launch_comparison(values, ["lora", "lisa", "full"])
    except ProblemsError as e:
        problems = e.problems
    else:
        raise AssertionError("a LISA variant with γ above the layer count was queued")
    assert [(p.field, p.message.split(":")[0]) for p in problems] == [("lisa_layers", "cmp · LISA, LISA layers (γ)")]
    assert "has 2 decoder layers" in problems[0].message
    assert studio.registry.list_runs() == []
    try:
        studio.launch_comparison(values, ["lora", "nope"])
    except ProblemsError as e:
        assert [p.field for p in e.problems] == ["methods"] and "nope" in e.problems[0].message
    assert studio.registry.list_runs() == []


def test_lisa_warns_when_gamma_covers_every_layer(studio) -> None:
    _, problems = studio.check_config(fast_config(method="lisa", lisa_layers=2).to_dict())
    (warning,) = [p for p in problems if p.field == "lisa_layers"]
    assert warning.severity == "warning"
    assert "this trains every layer: it is full fine-tuning" in warning.message
    _, problems = studio.check_config(fast_config(method="lisa", lisa_layers=1).to_dict())
    assert not [p for p in problems if p.field == "lisa_layers"]
    warned = studio.check_comparison(fast_config(run_name="cmp", lisa_layers=2).to_dict())
    assert [p.message.split(":")[0] for p in warned if p.field == "lisa_layers"] == ["cmp · LISA, LISA layers (γ)"]


def test_a_comparison_runs_its_variants_one_after_another_to_completion(studio) -> None:
    studio.start_queue()
    try:
        ids = studio.launch_comparison(fast_config(run_name="cmp", lisa_layers=1, **FAST_CPU).to_dict())
        assert len(ids) == 3
        assert [v.run.id for v in studio.queue_entries()] == ids[1:]  # the first started at once
        runs = [wait_for(studio.registry, run_id, ("completed", "failed", "failed_oom", "lost", "stopped"),
                         timeout=150) for run_id in ids]
    finally:
        studio.close()
    assert [(r.method, r.status) for r in runs] == [("lora", "completed"), ("qlora", "completed"),
                                                    ("lisa", "completed")], [r.error for r in runs]
    assert [r.name for r in runs] == ["cmp · LoRA", "cmp · QLoRA", "cmp · LISA"]
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later.started_at >= earlier.finished_at  # never two at once
    assert all(r.step == 3 and r.last_loss is not None for r in runs)
    assert CANCELLED not in {r.error for r in runs}
