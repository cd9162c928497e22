"""Prompt tuning, prefix tuning and P-tuning through peft on the tiny LLaVA; where they cannot run, validate says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from method_runs import check_learned, single_thread, tiny_path, train_run

from core.methods import get_method
from core.methods.base import Target
from core.models.loading import ModelFacts, load_model
from core.models.parts import count_parameters
from core.train_config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def expected_count(method: str, tokens: int, hidden: int, layers: int, kv_width: int) -> int:
    if method == "prompt":
        return tokens * hidden  # one embedding per virtual token
    if method == "prefix":
        return tokens * layers * 2 * kv_width  # a key and a value per token per layer
    return tokens * hidden + 3 * (hidden * hidden + hidden)  # P-tuning: embeddings + a 3-layer MLP encoder


@pytest.mark.parametrize("method", ["prompt", "prefix", "ptuning"])
def test_virtual_token_parameters_count_as_adapter(data_dir: Path, method: str) -> None:
    config = TrainConfig(method=method, prompt_tokens=10)
    base = load_model(tiny_path(data_dir))
    text = base.config.text_config
    kv_width = text.num_key_value_heads * (text.hidden_size // text.num_attention_heads)
    counts = count_parameters(get_method(method).prepare(base, config))
    expected = expected_count(method, 10, text.hidden_size, text.num_hidden_layers, kv_width)
    assert counts["adapter"]["trainable"] == counts["all"]["trainable"] == expected


@pytest.mark.parametrize("method, learning_rate", [("prompt", 0.3), ("prefix", 0.05), ("ptuning", 5e-3)])
def test_prompt_method_runs_learn_and_chat_answers(data_dir: Path, tmp_path: Path, method: str,
                                                   learning_rate: float) -> None:
    trained = train_run(data_dir, tmp_path, method=method, learning_rate=learning_rate)
    assert (Path(trained.run.artefact_dir) / "adapter_config.json").is_file()
    check_learned(data_dir, trained, min_drop=0.05)


def test_unsupported_models_and_switches_are_refused_before_launch() -> None:
    qwen = Target(ModelFacts("qwen2_vl", vision=True, text_layers=28, hidden_size=1536), cuda=True)
    for method in ("prompt", "prefix", "ptuning"):
        (problem,) = get_method(method).check(TrainConfig(method=method), qwen)
        assert problem.field == "method" and "qwen2_vl" in problem.message and "LoRA" in problem.message
    text = Target(ModelFacts("llama", vision=False, text_layers=2, hidden_size=64), cuda=False)
    assert not get_method("prompt").check(TrainConfig(method="prompt"), text)
    problems = TrainConfig(method="prefix", gradient_checkpointing=True).validate(cuda_available=False)
    assert [p.field for p in problems] == ["gradient_checkpointing"]
    assert "turn gradient checkpointing off" in problems[0].message
