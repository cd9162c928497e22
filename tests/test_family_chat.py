"""Chat with every family through ChatService: the base loads in the inference dtype (half on CUDA, fp32 on CPU) or
4-/8-bit as chosen, for bases and adapter runs alike; switching models releases the previous one."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from family_cases import ALL_MODELS, loaded, write_images
from family_models import TEXT_MODELS
from method_runs import single_thread

from core.chat import RUN_PREFIX, ChatService
from core.datasets.records import Message
from core.methods import get_method
from core.models.loading import inference_dtype
from core.paths import StudioPaths
from core.runs.files import COMPLETE_MARK
from core.store.registry import Registry
from core.train_config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[ChatService]:
    paths = StudioPaths.resolve(tmp_path / "studio")
    registry = Registry(paths.db_file)
    yield ChatService(paths, registry)
    registry.dispose()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"))


def ask(chat: ChatService, choice: str, name: str, images: Path, **kwargs: object) -> str:
    if name in TEXT_MODELS:
        messages, pictures = [Message("user", "What colour is the sky?")], []
    else:
        messages, pictures = [Message("user", "<image>What colour is it?")], [images / "wide.png"]
    replies = list(chat.stream(choice, messages, pictures, max_new_tokens=6, **kwargs))
    return replies[-1] if replies else ""


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_family_answers_in_chat_in_the_inference_dtype(chat: ChatService, family_model, images: Path,
                                                             name: str) -> None:
    choice = str(family_model(name))
    assert ask(chat, choice, name, images)  # random weights: some text, maybe only whitespace
    model = chat._loaded.model
    assert {p.dtype for p in model.parameters()} == {inference_dtype(chat._loaded.device)}


def test_the_inference_dtype_is_half_on_cuda_and_fp32_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert inference_dtype("cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert inference_dtype("cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert inference_dtype("cuda") == torch.float16  # GPUs before Ampere


def test_switching_models_releases_the_previous_one(chat: ChatService, family_model, images: Path) -> None:
    ask(chat, str(family_model("qwen2_vl")), "qwen2_vl", images)
    first = weakref.ref(chat._loaded.model)
    ask(chat, str(family_model("llama")), "llama", images)
    gc.collect()
    assert first() is None and chat._loaded.key[0] == str(family_model("llama"))


@pytest.mark.parametrize("name, bits", [("qwen2_5_vl", "4bit"), ("gemma3", "8bit"), ("qwen3", "4bit")])
def test_a_base_loads_quantized_when_chosen(chat: ChatService, family_model, images: Path, name: str,
                                            bits: str) -> None:
    import bitsandbytes as bnb

    from core.models.parts import part_names

    assert ask(chat, str(family_model(name)), name, images, loading=bits)
    model = chat._loaded.model
    part_of = part_names(model)
    kind = bnb.nn.Linear4bit if bits == "4bit" else bnb.nn.Linear8bitLt
    assert {part_of(n) for n, m in model.named_modules() if isinstance(m, kind)} == {"language"}


def adapter_run(chat: ChatService, base: Path, tmp_path: Path) -> int:
    """A finished LoRA run row whose result is an adapter on ``base`` (no job: the adapter is saved directly)."""
    config = TrainConfig(method="lora", model=str(base), lora_r=4)
    model = get_method("lora").prepare(loaded(base), config)
    run_id = chat.registry.create_run("family-chat", str(base), "lora", "sample", config.to_dict())
    artefact = chat.paths.run_dir(run_id) / "final"
    model.save_pretrained(artefact)
    (artefact / COMPLETE_MARK).write_text("ok\n")
    (chat.paths.run_dir(run_id) / "config.json").write_text(json.dumps(config.to_dict()))
    chat.registry.update_run(run_id, run_dir=str(chat.paths.run_dir(run_id)))
    chat.registry.set_status(run_id, "running")
    chat.registry.set_status(run_id, "completed", artefact_dir=str(artefact))
    return run_id


def test_an_adapter_run_chats_on_a_4bit_base_when_chosen(chat: ChatService, family_model, images: Path,
                                                         tmp_path: Path) -> None:
    import bitsandbytes as bnb

    run_id = adapter_run(chat, family_model("mllama"), tmp_path)
    choice = f"{RUN_PREFIX}{run_id}"
    assert ask(chat, choice, "mllama", images, loading="4bit")
    model = chat._loaded.model
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert any("lora_A" in n for n, _ in model.named_parameters())
    ask(chat, choice, "mllama", images)  # "auto": a LoRA run's base in the half dtype
    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in chat._loaded.model.modules())


def test_the_chat_estimate_counts_the_chosen_bits_and_the_jobs_holding_the_gpu(studio, tmp_path: Path) -> None:
    from webui.chat_tab import memory_markdown

    folder = tmp_path / "qwen"
    folder.mkdir()
    configs = Path(__file__).parent / "fixtures" / "model_configs"
    (folder / "config.json").write_text((configs / "qwen2.5-vl-7b-instruct.json").read_text())
    half, four = (studio.chat_memory(str(folder), loading, "24") for loading in ("half", "4bit"))
    assert half["ok"] and 15 < half["chat_gb"] < 22 and four["chat_gb"] < half["chat_gb"] / 2
    assert half["verdict"] == "fits" and half["runs"] == []
    run_id = studio.registry.create_run("busy", "tiny", "lora", "sample", {})
    studio.registry.set_status(run_id, "running")
    studio.registry.set_run_estimate(run_id, total_gb=12.0, allocated_gb=10.0, reserved_gb=11.0, breakdown={})
    beside = studio.chat_memory(str(folder), "half", "24")
    assert beside["runs"] == [run_id] and beside["training_gb"] == 12.0 and beside["verdict"] == "will not fit"
    assert studio.chat_memory(str(folder), "4bit", "24")["verdict"] == "fits"
    eval_id = studio.registry.create_evaluation(run_id=None, result="", model="tiny", dataset="sample", config={},
                                                est_total_gb=8.0)
    studio.registry.set_status(eval_id, "running", kind="eval")  # an evaluation holds the GPU as a run does
    both = studio.chat_memory(str(folder), "4bit", "24")
    assert both["evaluations"] == [eval_id] and both["training_gb"] == 20.0 and both["verdict"] != "fits"
    assert "beside 20.0 GB for the 1 run(s) training and 1 evaluation(s) running now" in memory_markdown(both)
    assert studio.comparisons.ab.room("24")[1].endswith("beside 20.0 GB for 1 run(s) training and 1 evaluation(s) "
                                                       "running now")
