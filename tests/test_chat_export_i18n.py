"""The Chat, Export and Compare tabs' messages in the page's language: Chat's memory line and refusals, Export's
descriptions, results and refusals, the comparison's table, diff and charts, and A/B chat's plan and progress, in
Chinese with the values (run ids, names, sizes, paths) as they are, and in English exactly as before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_app_e2e import free_port
from test_compare import cpu_lines, cuda_lines, make_run
from test_export import fake_run

from core.compare.ab_chat import ABChat
from core.export import NOT_MERGEABLE, ExportService, MergeExport
from core.problems import Problem, ProblemsError
from core.train_config import TINY_MODEL
from webui import chat_views as views
from webui.chat_tab import memory_markdown
from webui.compare_tab import charts_data, diff_html, summary_html
from webui.export_tab import about_markdown, merged_markdown, zip_markdown
from webui.messages import failure_markdown

ZH = "zh-CN"
CONFIGS = Path(__file__).parent / "fixtures" / "model_configs"
# Words of the English sentences that must not be left in their Chinese versions (values aside).
ENGLISH_WORDS = re.compile(r"\b(?:Chat needs|beside|fits|run\(s\)|evaluation\(s\)|Please fix|field|choose|there is|"
                           r"only|Merging|merged|Click|loaded|models|memory|training)\b")


def raised(action, *args, **kwargs) -> ProblemsError:
    with pytest.raises(ProblemsError) as caught:
        action(*args, **kwargs)
    return caught.value


def busy(studio) -> None:
    """A run training and an evaluation running, with their estimates: they hold 20 GB of the GPU."""
    run_id = studio.registry.create_run("busy", "tiny", "lora", "sample", {})
    studio.registry.set_status(run_id, "running")
    studio.registry.set_run_estimate(run_id, total_gb=12.0, allocated_gb=10.0, reserved_gb=11.0, breakdown={})
    eval_id = studio.registry.create_evaluation(run_id=None, result="", model="tiny", dataset="sample", config={},
                                                est_total_gb=8.0)
    studio.registry.set_status(eval_id, "running", kind="eval")


def test_the_chat_memory_line_in_chinese_keeps_the_figures_and_english_stays_as_it_was(studio, tmp_path) -> None:
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text((CONFIGS / "qwen2.5-vl-7b-instruct.json").read_text())
    alone = studio.chat_memory(str(folder), "4bit", "24")
    gb = f"{alone['chat_gb']:.1f}"
    assert memory_markdown(alone) == memory_markdown(alone, "en")
    assert memory_markdown(alone) == f"✅ Chat needs about {gb} GB on a 24 GiB card: fits."
    assert memory_markdown(alone, ZH) == f"✅ 对话约需 {gb} GB（24 GiB 显卡）：放得下。"
    busy(studio)
    both = studio.chat_memory(str(folder), "4bit", "24")
    assert memory_markdown(both) == (f"❌ Chat needs about {gb} GB on a 24 GiB card, beside 20.0 GB for the 1 run(s) "
                                     "training and 1 evaluation(s) running now: will not fit.")
    chinese = memory_markdown(both, ZH)
    assert chinese == (f"❌ 对话约需 {gb} GB（24 GiB 显卡，此外正在训练的 1 个运行和正在进行的 1 个评测"
                       "占用 20.0 GB）：放不下。")
    assert not ENGLISH_WORDS.search(chinese)
    missing = studio.chat_memory("run:999", "auto", "24")
    assert memory_markdown(missing) == "Memory estimate unavailable: There is no model or run 'run:999'."
    assert memory_markdown(missing, ZH) == "无法估计显存：没有模型或运行 'run:999'。"
    assert views.card_text("this machine's NVIDIA H200", ZH) == "本机的 NVIDIA H200"
    assert views.card_text("some card core names otherwise", ZH) == "some card core names otherwise"


def test_refusals_in_chinese_name_the_field_and_keep_cores_other_messages(studio) -> None:
    error = raised(lambda: list(studio.ab_chat_stream([TINY_MODEL], "  ", loading="x")))
    english = views.failure_text(error)
    assert english == views.failure_text(error, "en") == failure_markdown(error)
    assert english.startswith("**Please fix these first:**\n\n- ❌ `field 'models'` — choose 2 to 4 different models")
    assert views.failure_text(error, ZH) == (
        "**请先修正以下问题：**\n\n"
        "- ❌ `字段 'models'` — 请选择 2 到 4 个不同的模型（两三个检查点，可再加上基座）；当前为 1 个\n"
        "- ❌ `字段 'question'` — 请输入问题\n"
        "- ❌ `字段 'loading'` — 请从以下选项中选择一个：auto, half, 8bit, 4bit")
    chat = ProblemsError([Problem("2 image placeholders but 1 images"),
                          Problem("this model reads text only; remove the image", field="image"),
                          Problem("run 7 has no saved best result to load", field="model"),
                          Problem("something core says only in English, with *stars*", file="a.json", line=3)])
    assert views.failure_text(chat, ZH).splitlines()[2:] == [
        "- ❌ 有 2 个图像占位符，但给了 1 张图像",
        "- ❌ `字段 'image'` — 该模型只读取文本；请移除图像",
        "- ❌ `字段 'model'` — 运行 7 没有已保存的最佳结果可加载",
        "- ❌ `a.json:3` — something core says only in English, with \\*stars\\*"]  # escaped as before
    other = RuntimeError("generation failed: out of memory")
    assert views.failure_text(other, ZH) == views.failure_text(other)
    assert views.failure_text(other) == "❌ RuntimeError: generation failed: out of memory"
    compare = raised(studio.compare_runs, [1])
    assert views.failure_text(compare, ZH).endswith("- ❌ `字段 'runs'` — 请选择 2 到 6 个运行进行对比；当前为 1 个")


def test_exports_descriptions_results_and_refusals_in_chinese(studio, tmp_path) -> None:
    service = ExportService(studio.paths, studio.registry)
    lora, prompt, queued = (fake_run(studio, "lora"), fake_run(studio, "prompt"),
                            fake_run(studio, "lora", status="queued"))
    run = service.finished_run(lora)
    assert about_markdown(run) == (f"Run {lora} **fake-lora**: lora on `tiny`, completed. It can be merged into its "
                                   "base.")
    assert about_markdown(run, ZH) == f"运行 {lora} **fake-lora**：lora，基座 `tiny`，已完成。可以合并进基座。"
    assert about_markdown(service.finished_run(prompt)) == (
        f"Run {prompt} **fake-prompt**: prompt on `tiny`, completed. Merging: not offered — {NOT_MERGEABLE['prompt']}.")
    assert about_markdown(service.finished_run(prompt), ZH) == (
        f"运行 {prompt} **fake-prompt**：prompt，基座 `tiny`，已完成。合并：不提供——提示微调在输入前添加虚拟 token，"
        "并不改动权重，因此没有可合并进基座的内容；请直接下载适配器。")
    for method, why in NOT_MERGEABLE.items():
        assert views.merge_reason(method, why) == why
        assert not ENGLISH_WORDS.search(views.merge_reason(method, why, ZH)), method
    assert views.merge_reason("dpo", "only LoRA and QLoRA results can be merged into the base, not dpo", ZH) == (
        "只有 LoRA 和 QLoRA 的结果可以合并进基座，dpo 的不行")

    made = service.zip_result(lora, tmp_path)
    assert zip_markdown(made).startswith(f"✅ `{made.path.name}`: {len(made.files)} files, ")
    assert zip_markdown(made).endswith(". Click the file above to download it.")
    shown = rf"✅ `{re.escape(made.path.name)}`：{len(made.files)} 个文件，[\d.]+ [KMG]?B。点击上方文件即可下载。"
    assert re.fullmatch(shown, zip_markdown(made, ZH)), zip_markdown(made, ZH)
    merged = MergeExport(tmp_path / "run-00001-merged", 2_500_000, "bf16")
    assert merged_markdown(merged).startswith("✅ Merged model saved (bf16, ")
    assert merged_markdown(merged, ZH).startswith("✅ 合并后的模型已保存（bf16，")
    assert f"`{tmp_path / 'run-00001-merged'}`" in merged_markdown(merged, ZH)
    assert "点击 **将合并后的模型下载为 zip** 即可带走。" in merged_markdown(merged, ZH)

    refusals = {
        (prompt, service.merge): f"运行 {prompt}（prompt）无法合并：提示微调在输入前添加虚拟 token",
        (lora, service.zip_merged): f"运行 {lora} 的结果尚未合并；请先点击“合并并保存”",
        (queued, service.zip_result): f"运行 {queued} 的状态是排队中；只有已完成或已停止的运行可以导出",
        (99999, service.zip_result): "没有运行 99999",
        (None, service.merge): "请先选择一个已完成的运行",
    }
    for (run_id, action), chinese in refusals.items():
        error = raised(action, run_id)
        assert views.failure_text(error, ZH).startswith(f"**请先修正以下问题：**\n\n- ❌ `字段 'run'` — {chinese}")
        assert not ENGLISH_WORDS.search(views.failure_text(error, ZH))
        assert views.failure_text(error) == failure_markdown(error)  # English as before


def test_the_comparison_table_diff_and_charts_in_chinese(studio) -> None:
    a = make_run(studio, "lora-run", "lora", cpu_lines(), 3000)
    b = make_run(studio, "qlora-run", "qlora", cuda_lines(), 1000, quantization="4bit", lora_r=16)
    comparison = studio.compare_runs([a, b])
    english, chinese = summary_html(comparison), summary_html(comparison, ZH)
    assert english == summary_html(comparison, "en")
    assert "<th>Run</th>" in english and ">Final train loss</th>" in english and ">Peak GPU alloc.</th>" in english
    assert "<th>运行</th>" in chinese and ">最终训练损失</th>" in chinese and ">GPU 峰值分配</th>" in chinese
    assert '<th title="整个任务的用时，含模型加载和评测">总耗时</th>' in chinese
    assert 'data-col="final_loss" class="best">★ 1.5000</td>' in chinese  # keys and values as they were
    assert "lora-run (lora)" in chinese and "Final train loss" not in chinese and "Wall time" not in chinese
    diff = diff_html(comparison, ZH)
    assert '<tr data-field="lora_r"><td class="field">LoRA 秩</td><td>8</td><td>16</td></tr>' in diff
    assert '<td class="field">量化基座（QLoRA）</td><td>—（未使用）</td><td>4bit</td>' in diff
    assert "<th>设置</th>" in diff and "(not used)" not in diff and "LoRA rank" not in diff
    assert "— (not used)" in diff_html(comparison) and "LoRA rank" in diff_html(comparison)
    drawn = charts_data(comparison, "tokens", ZH)
    assert drawn["x_title"] == "已处理 token 数" and drawn["titles"]["loss"] == "训练损失"
    assert drawn["y_titles"]["eval_loss"] == "评测损失"
    assert drawn["charts"] == charts_data(comparison, "tokens")["charts"]
    assert charts_data(comparison, "tokens")["x_title"] == "Tokens seen"
    assert charts_data(comparison, "step")["titles"]["memory"].startswith("Memory (MB)")


def test_ab_chats_plan_and_progress_in_chinese(studio) -> None:
    ab: ABChat = studio.comparisons.ab
    busy(studio)
    together, apart = (ab.plan([TINY_MODEL, TINY_MODEL], card=card) for card in ("80", "0.05"))
    need = f"{together.needed_gb:.2f}"
    assert views.plan_text(together) == views.plan_text(together, "en") == together.message
    assert together.message == (f"✅ All 2 models fit together (about {need} GB of a 80 GiB card (85.9 GB) beside "
                                "20.0 GB for 1 run(s) training and 1 evaluation(s) running now): they are loaded at "
                                "once and answer side by side.")
    assert views.plan_text(together, ZH) == (f"✅ 2 个模型可以同时放下（约需 {need} GB，80 GiB 显卡（85.9 GB），"
                                             "此外正在训练的 1 个运行和正在进行的 1 个评测占用 20.0 GB）："
                                             "一次全部加载，并排作答。")
    assert views.plan_text(apart, ZH).startswith(f"⚠️ 2 个模型无法同时放下（约需 {need} GB，0.05 GiB 显卡（0.1 GB），")
    assert views.plan_text(apart, ZH).endswith("：将依次加载，每个用完即释放，回答也依次给出。")
    unknown = ab.plan([TINY_MODEL, "nowhere/none"], card="24")
    assert views.plan_text(unknown, ZH).startswith("⚠️ 无法估计 nowhere/none 的显存（ModelUnavailable: ")  # core's why
    assert views.plan_text(unknown, ZH).endswith("）：为稳妥起见，模型将依次加载。")
    assert views.room_text("3.5 GB of free memory on this machine", ZH) == "本机空闲内存 3.5 GB"
    assert views.room_text("somewhere core names otherwise", ZH) == "somewhere core names otherwise"
    assert views.progress_text("loading and asking model 2 of 3", ZH) == "\n\n⏳ 正在加载并询问第 2 个模型（共 3 个）…"
    assert views.progress_text("loading 3 models and asking them", ZH) == "\n\n⏳ 正在加载 3 个模型并提问…"
    assert views.progress_text("loading 3 models and asking them") == "\n\n⏳ loading 3 models and asking them…"


def test_the_tabs_answer_in_the_language_the_api_caller_gives(data_dir) -> None:
    from gradio_client import Client

    import app as studio_app

    blocks, studio = studio_app.launch(studio_app.parse_args(["--port", str(free_port()), "--data-dir",
                                                              str(data_dir)]), block=False)
    try:
        client = Client(blocks.local_url, verbose=False, download_files=False)
        _, _, notice = client.predict(TINY_MODEL, None, "  ", [], 8, 0.0, "auto", ZH, api_name="/chat")
        assert notice == "请先输入消息。"
        assert client.predict(TINY_MODEL, None, "  ", [], 8, 0.0, api_name="/chat")[2] == "Type a message first."
        assert client.predict(TINY_MODEL, "half", ZH, api_name="/chat_memory").startswith("✅ 对话约需 ")
        assert client.predict(TINY_MODEL, "half", api_name="/chat_memory").startswith("✅ Chat needs about ")
        assert "请先选择一个已完成的运行" in client.predict(None, "fp32", ZH, api_name="/export_merge")
        assert "请先选择一个已完成的运行" in client.predict(None, ZH, api_name="/export_zip")[1]
        assert "choose a finished run first" in client.predict(None, "fp32", api_name="/export_merge")
    finally:
        blocks.close()
        studio.close()
