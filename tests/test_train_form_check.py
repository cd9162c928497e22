"""The Train form through the real app and gradio_client: Check names every bad value by its label at once, Start
refuses the same, QLoRA brings its 4-bit NF4 base, an estimate over the card must be acknowledged, and Fit never
offers Apply when nothing fits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_app_e2e import free_port

from core.train_config import TrainConfig
from webui.i18n import resolve

CONFIGS = Path(__file__).resolve().parent / "fixtures" / "model_configs"
BAD = {"lora_r": -5, "batch_size": 0, "learning_rate": 1e9, "warmup_ratio": 5, "max_steps": "abc"}
LABELS = {"lora_r": "LoRA rank", "batch_size": "Micro-batch size", "learning_rate": "Learning rate",
          "warmup_ratio": "Warmup ratio", "max_steps": "Max steps"}


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    from gradio_client import Client

    import app as studio_app

    root = tmp_path_factory.mktemp("form-check") / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    port = free_port()
    blocks, studio = studio_app.launch(
        studio_app.parse_args(["--port", str(port), "--data-dir", str(root)]), block=False)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    yield client, studio
    client.close()
    blocks.close()
    studio.registry.dispose()


def form(**changes: object) -> list:
    values = {f.name: f.default for f in TrainConfig.fields()}
    values.update(changes)
    return list(values.values())


def problem_lines(verdict: str) -> list[str]:
    return [line for line in resolve(verdict).splitlines() if line.startswith("- ❌")]


def test_check_names_every_bad_value_by_its_label_at_once(app_client) -> None:
    client, _studio = app_client
    verdict, _command, _config = client.predict(*form(**BAD), "24", api_name="/check_config")
    lines = problem_lines(verdict)
    assert resolve(verdict).startswith("**Please fix these first:**")
    for label in LABELS.values():
        assert sum(f"**{label}**:" in line for line in lines) == 1, (label, lines)
    assert any("**LoRA rank**: must be at least 1; got -5" in line for line in lines)
    assert any("**Max steps**: expected a whole number, got 'abc'" in line for line in lines)
    assert "None" not in resolve(verdict) and "Ready" not in resolve(verdict)


def test_an_empty_number_box_says_what_was_expected_not_none(app_client) -> None:
    client, _studio = app_client
    verdict, *_ = client.predict(*form(max_steps=None), "24", api_name="/check_config")
    (line,) = problem_lines(verdict)
    assert "**Max steps**: expected a whole number; the field is empty" in line and "None" not in line


def test_start_lists_the_same_problems_and_starts_nothing(app_client) -> None:
    client, studio = app_client
    status, command, _config, _run = client.predict(*form(**BAD), "24", False, api_name="/start_run")
    assert {label for label in LABELS.values() if f"**{label}**:" in resolve(status)} == set(LABELS.values())
    assert command == "" and studio.list_runs() == []


def test_qlora_selects_a_4bit_nf4_base_and_lora_leaves_it(app_client) -> None:
    client, _studio = app_client
    assert client.predict("qlora", "none", "fp4", False, api_name="/follow_method") == ("4bit", "nf4", True)
    assert client.predict("qlora", "8bit", "nf4", True, api_name="/follow_method") == ("8bit", "nf4", True)
    assert client.predict("lora", "4bit", "nf4", True, api_name="/follow_method")[0] == "none"
    verdict, *_ = client.predict(*form(method="qlora", quantization="4bit"), "24", api_name="/check_config")
    assert "Ready to start" in resolve(verdict)


def test_over_the_card_check_asks_for_acknowledgement_and_start_refuses_without_it(app_client) -> None:
    client, studio = app_client
    verdict, *_ = client.predict(*form(), "0.1", api_name="/check_config")
    shown = resolve(verdict)
    assert "Ready, but over the card: acknowledge or Fit" in shown and "Ready to start" not in shown
    status, command, *_ = client.predict(*form(), "0.1", False, api_name="/start_run")
    assert "Not started" in resolve(status) and command == "" and studio.list_runs() == []


def test_fit_never_offers_apply_when_the_result_does_not_fit(app_client) -> None:
    client, _studio = app_client
    text, fit = client.predict(*form(), "0.1", api_name="/fit_to_card")
    assert fit["ok"] and not fit["applicable"] and fit["after_verdict"] == "will not fit"
    assert "Apply these changes" not in text and "No settings bring it under" in text
    *_, message, changes = client.predict(*form(), "0.1", api_name="/apply_fit")
    assert changes == {} and "Nothing applied" in message
