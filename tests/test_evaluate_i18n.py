"""The Evaluate tab's messages in the page's language: Check's problems, the evaluation list, the progress bar, the
headline, the before/after table, a sample in full and a run's in-run eval summary in Chinese with the values (ids,
scores, model and dataset names, core's unknown sentences) as they are; English as before."""

from __future__ import annotations

import math
import re

import pytest
from jobs_helpers import fast_config
from test_datasets_tab import app as app  # the running studio, shared with the Datasets tab's tests

import core.runs.queue as queue
from core.evals.config import EvalConfig
from core.evals.metrics import METRIC_LABELS
from core.evals.results import sample_rows
from core.problems import Problem, ProblemsError
from core.runs.launcher import record_run
from core.store.registry import EvalRecord
from webui import eval_views as views
from webui.messages import problems_markdown

ZH = "zh-CN"
LABELS = {f.name: f.metadata["label"] for f in EvalConfig.fields()}
SUMMARY = {"split": "eval", "complete": True,
           "base": {"samples": 4, "exact_match": 0.25, "accuracy": 0.5, "bleu": 10.0, "rouge_l": 0.4, "loss": 3.0,
                    "perplexity": math.exp(3.0)},
           "tuned": {"samples": 4, "exact_match": 0.75, "accuracy": 0.75, "bleu": 30.0, "rouge_l": 0.8, "loss": 1.0,
                     "perplexity": math.exp(1.0)}}


def record(**changes: object) -> EvalRecord:
    values = {"id": 7, "status": "running", "run_id": 3, "result": "best", "model": "tiny-random-llava",
              "dataset": "彩色", "config": {"split": "auto"}, "eval_dir": "", "created_at": 0.0, "started_at": None,
              "finished_at": None, "pid": None, "pid_started_at": None, "heartbeat_at": None,
              "stop_requested_at": None, "exit_code": None, "error": None, "step": 3, "total_steps": 8,
              "summary": None}
    return EvalRecord(**{**values, **changes})


def no_english(chinese: str, *words: str) -> None:
    for word in words:
        assert word not in chinese, word


def test_checks_problems_in_chinese_name_the_fields_and_keep_the_values(studio) -> None:
    _, problems = studio.check_evaluation("tiny-random-llava", {"dataset": "sample", "split": "eval",
                                                                "max_samples": -1, "result": "best"})
    english, chinese = views.problems_text(problems), views.problems_text(problems, ZH)
    assert english == problems_markdown(problems, labels=LABELS) == views.problems_text(problems, None)
    assert "- ❌ **Rows**: this dataset has no eval split; choose auto or train" in english
    assert chinese.startswith("**请先修正以下问题：**\n\n")
    assert "- ❌ **使用的行**：该数据集没有评测划分；请选择 auto 或 train" in chinese
    assert "- ❌ **结果**：只有运行才有最佳结果（best）；基座模型请选择 last" in chinese
    assert "- ❌ **样本数**：" in chinese and "-1" in chinese  # Check's shared template, the value kept
    no_english(chinese, "Please fix", "Rows", "no eval split", "only a run")

    _, problems = studio.check_evaluation("tiny-random-llava", {"dataset": "sample"})  # a warning: train rows
    assert "- ⚠️ **使用的行**：该数据集没有评测划分，因此评分的是训练行：这衡量的是记忆而不是泛化；" in \
        views.problems_text(problems, ZH)
    _, problems = studio.check_evaluation("tiny-random-llava", {"dataset": "nope"})
    assert "- ❌ **数据集**：没有名为 'nope' 的已注册数据集，该路径下也没有 samples.jsonl；请先在“数据集”页注册" in \
        views.problems_text(problems, ZH)
    _, problems = studio.check_evaluation("", {"dataset": ""})
    assert views.problems_text(problems, ZH).endswith("- ❌ **基座模型**：请选择一个运行或基座模型\n"
                                                      "- ❌ **数据集**：请选择数据集")
    _, problems = studio.check_evaluation("run:99", {"dataset": "sample"})
    assert "- ❌ **运行**：没有运行 99" in views.problems_text(problems, ZH)
    _, problems = studio.check_evaluation("run:zz", {"dataset": "sample"})
    assert "- ❌ **基座模型**：'run:zz' 不是一个运行" in views.problems_text(problems, ZH)


def test_a_run_that_cannot_be_scored_yet_and_one_without_a_best_result(studio) -> None:
    run_id, _ = record_run(studio.paths, studio.registry, fast_config(run_name="r"))
    _, problems = studio.check_evaluation(f"run:{run_id}", {"dataset": "sample"})
    assert f"run {run_id} is queued; only a completed or stopped run" in views.problems_text(problems)
    assert f"- ❌ **运行**：运行 {run_id} 的状态是“排队中”；只有已完成或已停止的运行才有可评测的结果" in \
        views.problems_text(problems, ZH)
    studio.registry.set_status(run_id, "running")
    studio.registry.set_status(run_id, "completed")
    _, problems = studio.check_evaluation(f"run:{run_id}:best", {"dataset": "sample"})
    assert (f"- ❌ **结果**：运行 {run_id} 没有完整的最佳结果（它没有保留：没有评测划分，或者没有一次评测胜过"
            "其基座）") in views.problems_text(problems, ZH)
    _, problems = studio.check_evaluation(f"run:{run_id}", {"dataset": "sample"})
    assert f"- ❌ **结果**：运行 {run_id} 没有完整的 last 结果" in views.problems_text(problems, ZH)


def test_core_sentences_translated_as_templates_and_unknown_ones_left_as_they_are() -> None:
    # Check's warning about an evaluation that does not fit beside what is busy, its reason as the queue panel says it
    reason = "next: waiting for run 2 (big) to finish"
    sentence = queue.EVAL_WILL_WAIT.format(reason=reason)
    chinese = views.message_text(sentence, ZH)
    assert "以免与正在占用 GPU 的任务共用它" in chinese and "等待运行 2（big）结束" in chinese, chinese
    assert views.message_text(sentence) == sentence
    odd = "a reason core words some new way"
    assert odd in views.message_text(queue.EVAL_WILL_WAIT.format(reason=odd), ZH)  # left as core says it
    failure = views.failure_text(ProblemsError([Problem("evaluation 4 has no scored samples yet",
                                                        field="evaluation")]), ZH)
    assert failure == "**请先修正以下问题：**\n\n- ❌ `field 'evaluation'` — 评测 4 还没有已评分的样本"
    assert views.message_text("sample.jsonl has no row with an answer to score", ZH) == \
        "sample.jsonl 中没有带答案、可以评分的行"
    assert views.message_text("something *new* from core", ZH) == "something \\*new\\* from core"
    assert views.failure_text(RuntimeError("boom"), ZH) == "❌ RuntimeError: boom"  # an exception's own words


def test_the_list_the_progress_bar_and_the_headline_in_both_languages() -> None:
    running, done = record(), record(id=8, status="completed", run_id=None, result="", step=8, summary=SUMMARY)
    assert views.eval_choices([running, done]) == [("7: run 3 on 彩色 (running)", 7),
                                                   ("8: tiny-random-llava on 彩色 (completed)", 8)]
    assert views.eval_choices([running, done], ZH) == [("7：运行 3，数据集 彩色（运行中）", 7),
                                                       ("8：tiny-random-llava，数据集 彩色（已完成）", 8)]
    assert "🏃 running: 3 of 8 samples scored (38%)</div>" in views.progress_html(running)
    assert "🏃 运行中：已评分 3 / 8 个样本（38%）</div>" in views.progress_html(running, ZH)
    assert "✅ 已完成：已评分 8 / 8 个样本（100%）" in views.progress_html(done, ZH)
    assert "⏳ 排队中：已评分 0 / ? 个样本（0%）" in views.progress_html(record(status="queued", step=0,
                                                                           total_steps=0), ZH)
    assert views.headline(SUMMARY) == "EM 25 → 75, ROUGE-L 40 → 80, loss 3 → 1"
    assert views.headline(SUMMARY, ZH) == "EM 25 → 75，ROUGE-L 40 → 80，损失 3 → 1"
    assert views.headline({"base": SUMMARY["base"]}, ZH) == "EM 25，ROUGE-L 40，损失 3"

    english, chinese = views.evaluations_table([running, done]), views.evaluations_table([running, done], ZH)
    assert list(chinese.columns) == list(english.columns) == views.EVAL_COLUMNS  # headers stay English
    assert english["scores"].tolist() == ["run 3 (best) vs base", "base tiny-random-llava"]
    assert chinese["scores"].tolist() == ["运行 3（best）对比基座", "基座 tiny-random-llava"]
    assert english["status"].tolist() == ["🏃 running", "✅ completed"]
    assert chinese["status"].tolist() == ["🏃 运行中", "✅ 已完成"]
    assert chinese["result"].tolist() == ["", "EM 25 → 75，ROUGE-L 40 → 80，损失 3 → 1"]
    assert views.status_word("paused", ZH) == "paused"  # a status the catalogue lacks stays as it is


def test_the_before_after_table_and_a_sample_in_full_in_chinese() -> None:
    english, chinese = views.before_after_frame(SUMMARY), views.before_after_frame(SUMMARY, ZH)
    assert english["metric"].tolist() == [*METRIC_LABELS.values(), "Samples scored"]
    assert chinese["metric"].tolist() == ["完全匹配 (%)", "准确率 (%)", "BLEU", "ROUGE-L (F1, %)", "参考答案上的损失",
                                          "困惑度", "已评分样本数"]
    assert chinese.drop(columns="metric").equals(english.drop(columns="metric"))
    assert list(chinese.columns) == views.BEFORE_AFTER_COLUMNS
    assert views.before_after_frame(None, ZH).empty
    assert {m: views.metric_label(m) for m in METRIC_LABELS} == METRIC_LABELS

    results = [{"index": 0, "id": "red_square", "question": "What *colour*?", "reference": "Red.",
                "images": [], "base": {"answer": "", "rouge_l": 0.0}, "tuned": {"answer": "Red.", "rouge_l": 1.0}}]
    (row,) = sample_rows(results, "rouge_l", "dataset order")
    english = views.sample_markdown(row, METRIC_LABELS["rouge_l"])
    assert english == ("**Sample 1** (`red\\_square`)\n\n**Question:** What \\*colour\\*?\n\n**Reference:** Red.\n\n"
                       "**Base answer** (ROUGE-L (F1, %) 0.0): *(empty)*\n\n"
                       "**Fine-tuned answer** (ROUGE-L (F1, %) 100.0): Red.\n\nImprovement: **+100**")
    chinese = views.sample_markdown(row, views.metric_label("rouge_l", ZH), ZH)
    assert chinese == ("**样本 1**（`red\\_square`）\n\n**问题**：What \\*colour\\*?\n\n**参考答案**：Red.\n\n"
                       "**基座的回答**（ROUGE-L (F1, %) 0.0）：*（空）*\n\n"
                       "**微调后的回答**（ROUGE-L (F1, %) 100.0）：Red.\n\n提升：**+100**")
    assert views.sample_markdown(None, "", ZH) == "点击表格中的一行，查看该样本的完整内容。"
    assert views.sample_markdown(None, "") == "Click a row of the table to see the sample in full."


@pytest.mark.parametrize(("summary", "english", "chinese"), [
    ({}, "Eval loss: not measured yet.", "评测损失：尚未测量。"),
    ({"best_loss": 1.23456, "last_loss": 1.5, "rows": 6, "interval": 4, "best_step": 8, "last_step": 12,
      "evaluations": 4, "best_dir": "/x/best", "early_stopped_at": None},
     "Eval loss on 6 eval rows (every 4 steps): best **1.2346** at step 8, last 1.5000 at step 12. The best result "
     "is kept beside the last; Chat, Export and Evaluate can choose either.",
     "评测损失（6 个评测行，每 4 步一次）：最佳 **1.2346**，在第 8 步；最近一次 1.5000，在第 12 步。"
     "最佳结果与最终结果一同保留；对话、导出和评测页都可以任选其一。"),
    ({"best_loss": 2.0, "last_loss": 2.5, "rows": 6, "interval": 2, "best_step": 0, "last_step": 6,
      "evaluations": 4, "early_stopped_at": 6, "patience": 3},
     "Eval loss on 6 eval rows (every 2 steps): best **2.0000** at step 0, last 2.5000 at step 6. No evaluation "
     "beat the base model (step 0), so there is no best result of its own. Stopped early at step 6: no "
     "improvement in 3 evaluations.",
     "评测损失（6 个评测行，每 2 步一次）：最佳 **2.0000**，在第 0 步；最近一次 2.5000，在第 6 步。"
     "没有一次评测胜过基座模型（第 0 步），因此它没有自己的最佳结果。在第 6 步提前停止：连续 3 次评测没有改进。"),
])
def test_a_runs_in_run_eval_summary_in_both_languages(summary: dict, english: str, chinese: str) -> None:
    assert views.eval_summary_markdown(summary) == views.eval_summary_markdown(summary, "en") == english
    assert views.eval_summary_markdown(summary, ZH) == chinese


def test_the_tabs_endpoints_take_the_pages_language_last(app) -> None:
    client, _ = app
    settings = {f.name: f.default for f in EvalConfig.fields() if f.name not in ("run_id", "result", "model",
                                                                                    "dataset")}
    settings.update(split="eval")
    notice, command = client.predict("tiny-random-llava", "sample", *settings.values(), ZH,
                                     api_name="/check_evaluation")
    assert notice.startswith("**请先修正以下问题：**") and "**使用的行**：该数据集没有评测划分" in notice
    assert "-m jobs.evaluate --model tiny-random-llava --dataset sample" in command
    notice, _ = client.predict("tiny-random-llava", "sample", *settings.values(), api_name="/check_evaluation")
    assert re.search(r"\*\*Rows\*\*: this dataset has no eval split", notice)
    notice, _, _ = client.predict("tiny-random-llava", "sample", *settings.values(), ZH,
                                  api_name="/start_evaluation")
    assert "**使用的行**：该数据集没有评测划分；请选择 auto 或 train" in notice
    assert client.predict(None, ZH, api_name="/stop_evaluation") == "请先选择一次评测。"
    assert client.predict(None, api_name="/stop_evaluation") == "Choose an evaluation first."
    _, message = client.predict(None, "rouge_l", "dataset order", ZH, api_name="/export_evaluation_csv")
    assert message == "请先选择一次评测。"
    _, details, *_ = client.predict(None, "rouge_l", "dataset order", ZH, api_name="/evaluation_results")
    assert details == "在上方选择一次评测以查看结果。"


def test_start_says_in_the_pages_language_when_an_evaluation_waits_in_the_queue_and_stop_takes_it_out(app) -> None:
    client, studio = app
    settings = {f.name: f.default for f in EvalConfig.fields() if f.name not in ("run_id", "result", "model",
                                                                                    "dataset")}
    settings.update(split="auto", max_samples=2)
    busy = studio.registry.create_evaluation(run_id=None, result="", model="big-model", dataset="d", config={},
                                             est_total_gb=23.0)  # recorded, not waiting: it holds the GPU
    studio.queue.capacity = lambda: queue.Capacity(24.0, "on this machine's Test GPU (24.0 GB)")
    try:
        notice, _, _ = client.predict("tiny-random-llava", "sample", *settings.values(), ZH,
                                      api_name="/start_evaluation")
        assert studio.queue_entries(), notice
        waiting = studio.queue_entries()[-1].job.id
        assert notice.startswith(f"⏳ 评测 {waiting} 在任务队列中等待") and "**停止评测** 可将它移出队列" in notice
        assert f"等待评测 {busy}（d 上的 big-model）结束" in notice and "Test GPU" in notice, notice
        assert "waiting for" not in notice
        assert client.predict(waiting, ZH, api_name="/stop_evaluation").startswith("⏹️")
        assert studio.registry.get_evaluation(waiting).status == "stopped" and studio.queue_entries() == []
    finally:
        studio.queue.capacity = queue.machine_capacity
        studio.registry.set_status(busy, "stopped", kind="eval")
