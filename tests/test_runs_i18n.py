"""The Runs tab's messages in the page's language: details, the run list, stop and resume, raw metrics, chart series,
the queue panel and core's queue reasons in Chinese with the values kept; English exactly as before; and every event
that draws them (the timer's included) reads the page's language."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from jobs_helpers import fast_config
from test_runs_tab import built as built  # one app over three finished runs, shared with the tab tests
from test_runs_tab import finished_run, fn_named

from core.runs.manifest import ResumePoint
from webui import queue_panel, queue_reasons, run_manage, runs_tab, runs_views
from webui.i18n import WITH_LOCALE_JS

ZH = "zh-CN"
ENGLISH_WORDS = re.compile(r"\b(Run|run|step|of|method|model|dataset|Headless|command|Trainable|Estimated|Result|"
                           r"Error|Lines|waiting|queue|finish|completed|failed|running|stopped)\b")


def english_left(text: str) -> list[str]:
    """The English words left in Chinese output, code blocks and inline code (values) set aside."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return ENGLISH_WORDS.findall(re.sub(r"`[^`]*`", "", prose))


def test_a_runs_details_in_chinese_keep_the_values_and_english_stays_as_it_was(built) -> None:
    _app, studio, ids = built
    view = studio.run_view(ids[1])  # "second", a failed LISA run
    params = {"all": {"trainable": 1234, "total": 56789}, "vision": {"trainable": 0, "total": 5000}}
    run = dataclasses.replace(view.run, total_steps=4, error="Traceback: boom", params=params,
                              estimate={"total_gb": 3.5, "allocated_gb": 2.25, "reserved_gb": 2.75},
                              artefact_dir="/data/runs/run-2/final")
    view = dataclasses.replace(view, run=run)
    english = runs_views.details_markdown(view)
    assert english == runs_views.details_markdown(view, "en") == runs_views.details_markdown(view, None)
    assert english.startswith(f"**Run {ids[1]} — second**: ❌ `failed`\nstep 0 of 4; method lisa; model `")
    assert "\nTrainable parameters: **1,234** of 56,789 (vision 0/5,000)" in english
    assert ("\nEstimated peak GPU memory when it started: **3.50 GB** (PyTorch allocated 2.25 GB, reserved 2.75 GB, "
            "plus the CUDA context)") in english
    assert "\nResult: `/data/runs/run-2/final`" in english and "\nHeadless command:\n```\n" in english
    chinese = runs_views.details_markdown(view, ZH)
    assert chinese.startswith(f"**运行 {ids[1]} — second**：❌ `失败`\n第 0 步，共 4 步；方法 lisa；模型 `")
    assert "；数据集 `sample`" in chinese and "\n**错误：**\n```\nTraceback: boom\n```" in chinese
    assert "\n可训练参数：**1,234** / 56,789（vision 0/5,000）" in chinese
    assert ("\n开始时估计的 GPU 显存峰值：**3.50 GB**（PyTorch 已分配 2.25 GB，已预留 2.75 GB，另加 CUDA 上下文）"
            in chinese)
    assert "\n结果：`/data/runs/run-2/final`" in chinese and f"\n命令行方式：\n```\n{view.command}\n```" in chinese
    assert english_left(chinese) == []


def test_the_run_list_and_its_statuses_in_chinese(built) -> None:
    _app, studio, ids = built
    runs = studio.list_runs()
    assert runs_tab.run_choices(runs) == [(f"{ids[2]}: third (completed)", ids[2]),
                                          (f"{ids[1]}: second (failed)", ids[1]), (f"{ids[0]}: first (completed)",
                                                                                   ids[0])]
    assert runs_tab.run_choices(runs, ZH)[:2] == [(f"{ids[2]}: third（已完成）", ids[2]),
                                                  (f"{ids[1]}: second（失败）", ids[1])]
    assert runs_tab.runs_table(runs)["status"].tolist() == ["✅ completed", "❌ failed", "✅ completed"]
    table = runs_tab.runs_table(runs, None, ZH)
    assert table["status"].tolist() == ["✅ 已完成", "❌ 失败", "✅ 已完成"]
    assert list(table.columns) == runs_views.RUN_COLUMNS  # the columns keep their names: code reads them
    assert [runs_views.status_word(s, ZH) for s in ("queued", "running", "stopped", "failed_oom", "lost", "odd")] == [
        "排队中", "运行中", "已停止", "失败（内存不足）", "失联", "odd"]


def test_stop_resume_and_raw_metrics_in_chinese(built) -> None:
    app, studio, ids = built
    do_stop, do_resume = fn_named(app, "do_stop").fn, fn_named(app, "do_resume").fn
    assert do_stop(None) == "Choose a run first." and do_stop(None, ZH) == "请先选择一个运行。"
    assert do_resume(None, ZH) == "请先选择一个运行。"
    assert do_stop(ids[0]) == "That run is not running." and do_stop(ids[0], ZH) == "该运行当前不在运行中。"
    assert runs_views.stop_markdown(True, ZH) == "⏹️ 已请求停止：运行会保存结果后结束。"
    refused = do_resume(ids[0], ZH)  # a completed run does not resume: core's reason, under a Chinese title
    assert refused.startswith("**请先修正以下问题：**") and f"run {ids[0]} is completed" in refused
    assert do_resume(ids[0]).startswith("**Please fix these first:**")

    _text, where, *_ = runs_tab.raw_page(studio, ids[2], 0, ZH)
    assert where == "第 71–120 行，共 120 行。"
    assert runs_tab.raw_page(studio, ids[2], 0)[1] == "Lines 71–120 of 120."
    out = fn_named(app, "selected").fn(ids[0], [], ZH)
    assert out[5] == "还没有指标。" and out[0].startswith(f"**运行 {ids[0]} — first**：✅ `已完成`")
    assert runs_tab.raw_page(studio, ids[2], 1, ZH)[1] == "第 21–70 行，共 120 行。"  # one page older


def test_a_resume_that_waits_and_skips_says_so_in_chinese(tmp_path: Path) -> None:
    point = ResumePoint(tmp_path / "step-00000008", 8, skipped=[
        ("step-00000012", "model.safetensors changed since it was saved (its checksum differs)"),
        ("step-00000010", "its manifest.json is damaged"), ("step-00000009", "weights.bin is 10 bytes, 1,024 when "
                                                                              "it was saved"),
        ("step-00000011", "something core said")],
        waiting="next: waiting for run 2 (busy_one) to finish")
    english = runs_views.resume_markdown(7, point)
    assert english.startswith("⏳ Run 7 will resume from step 8 (checkpoint `step-00000008`) when its turn comes in "
                              "the queue: next: waiting for run 2 (busy\\_one) to finish.\n\n⚠️ Skipped "
                              "`step-00000012`: model.safetensors changed since it was saved (its checksum differs).")
    chinese = runs_views.resume_markdown(7, point, ZH).split("\n\n")
    assert chinese == [
        "⏳ 运行 7 将在队列中轮到它时从第 8 步继续（检查点 `step-00000008`）：排在最前：等待运行 2（busy\\_one）结束。",
        "⚠️ 已跳过 `step-00000012`：model.safetensors 在保存后被改动（校验和不一致）。",
        "⚠️ 已跳过 `step-00000010`：它的 manifest.json 已损坏。",
        "⚠️ 已跳过 `step-00000009`：weights.bin 为 10 字节，保存时为 1,024 字节。",
        "⚠️ 已跳过 `step-00000011`：something core said。"]  # a sentence core words otherwise stays English
    started = ResumePoint(tmp_path / "step-00000008", 8)
    assert runs_views.resume_markdown(7, started) == "▶️ Resuming run 7 from step 8 (checkpoint `step-00000008`)."
    assert runs_views.resume_markdown(7, started, ZH) == "▶️ 运行 7 从第 8 步继续（检查点 `step-00000008`）。"


def test_the_charts_series_in_chinese() -> None:
    metrics = [{"step": 1, "loss": 2.0, "mem_allocated_mb": 10.0, "mem_reserved_mb": 12.0},
               {"step": 2, "eval_loss": 1.5, "eval_perplexity": 4.5}]
    assert {r["run"] for r in runs_views.loss_rows(metrics, "3: x")} == {"3: x train", "3: x eval"}
    assert {r["run"] for r in runs_views.loss_rows(metrics, "3: x", ZH)} == {"3: x 训练", "3: x 评测"}
    estimate = {"total_gb": 3.0, "allocated_gb": 2.0, "reserved_gb": 2.5}
    assert set(runs_views.memory_frame(metrics[:1], estimate, locale=ZH)["series"]) == {
        "GPU 已分配", "GPU 已预留", "估计已分配峰值", "估计已预留峰值"}
    cpu = runs_views.memory_frame([{"step": 1, "mem_rss_mb": 900.0}], estimate, locale=ZH)
    assert set(cpu["series"]) == {"进程 RSS", "估计 GPU 峰值"}


def test_the_queue_panel_and_cores_queue_reasons_in_chinese(studio) -> None:
    busy = finished_run(studio, "busy", status="running")
    a, b, c = studio.queue.enqueue([fast_config(run_name=n) for n in ("a", "b", "c")])
    reason = studio.start_queued_now(c)  # the busy run has no estimate, so c still waits, marked
    english, _, _ = queue_panel.queue_state(studio, None)
    assert english["waiting because"].tolist() == [f"next: waiting for run {busy} (busy) to finish",
                                                   "waiting its turn: second in the queue",
                                                   f"{reason} (start now asked)"]
    table, choices, _ = queue_panel.queue_state(studio, None, ZH)
    assert table["waiting because"].tolist() == [
        f"排在最前：等待运行 {busy}（busy）结束", "排队等候：队列中第 2 位",
        f"等待运行 {busy}（busy）结束：运行 {busy} 没有显存估计，无法确认能同时运行（已请求立即开始）"]
    assert list(table.columns) == queue_panel.QUEUE_COLUMNS
    assert choices["choices"] == [(f"1. 运行 {a}：a", a), (f"2. 运行 {b}：b", b), (f"3. 运行 {c}：c", c)]
    assert queue_panel.queue_state(studio, None)[1]["choices"][0] == (f"1. run {a}: a", a)
    said = queue_panel.queue_action(studio, c, "start now", ZH)
    assert said == (f"⏳ 运行 {c} 现在无法开始：等待运行 {busy}（busy）结束：运行 {busy} 没有显存估计，无法确认能同时"
                    "运行。它保持标记，一旦资源足够就会开始。")
    too_big = ("waiting for run 1 (a, b), evaluation 2 (m on d) to finish: together they need about 30.20 GB (run 1 "
               "20.00 GB, evaluation 2 0.50 GB, this run 9.70 GB), more than fits on this machine's NVIDIA H200 "
               "(24.0 GB)")
    assert queue_reasons.wait_reason(too_big) == too_big
    assert queue_reasons.wait_reason(too_big, ZH) == (
        "等待运行 1（a, b）、评测 2（d 上的 m）结束：它们一共需要约 30.20 GB（运行 1 20.00 GB、评测 2 0.50 GB、本运行 "
        "9.70 GB），超出本机 NVIDIA H200（24.0 GB）的容量")
    odd = "next: waiting for run 1 (x) y) to finish"  # a name that does not parse back: core's words as they are
    assert queue_reasons.wait_reason(odd, ZH) == odd


def test_delete_sizes_and_failures_in_chinese(built) -> None:
    _app, studio, ids = built
    assert run_manage.size_text(512) == "512 bytes" and run_manage.size_text(512, ZH) == "512 字节"
    assert run_manage.size_text(2_500_000, ZH) == "2.5 MB"
    message = run_manage.rename(studio, ids[0], "   ", ZH)
    assert message.startswith("**请先修正以下问题：**") and "`field 'name'`" in message


def test_every_event_that_draws_text_reads_the_pages_language(built) -> None:
    app, _studio, _ids = built
    names = {"webui.runs_tab": {"refresh", "selected", "show_run", "filtered", "do_stop", "do_resume", "views",
                                "handler"}, "webui.app_ui": {"open_runs", "evaluate_run"}}
    drawing = [f for f in app.fns.values()
               if getattr(f.fn, "__name__", "") in names.get(getattr(f.fn, "__module__", ""), ())]
    assert len(drawing) >= 14  # the ones named, the three filters and the two pager buttons
    for fn in drawing:
        if fn.inputs[-1].elem_id == "studio-language":
            continue  # the language switch's redraw: its value is the language chosen
        assert fn.js == WITH_LOCALE_JS, fn.fn.__name__
        assert type(fn.inputs[-1]).__name__ == "Textbox" and not fn.inputs[-1].visible, fn.fn.__name__
    ticks = [f for f in app.fns.values() if getattr(f.fn, "__name__", "") == "refresh"]
    assert any(any(t[1] == "tick" for t in f.targets) for f in ticks)  # the live refresh is among them
    assert any(f.inputs[-1].elem_id == "studio-language" for f in ticks)  # and it redraws after a switch
    evaluate = fn_named(app, "evaluate_run").fn
    assert evaluate(None, ZH)[0] == "请先选择一个运行。" and evaluate(None)[0] == "Choose a run first."
