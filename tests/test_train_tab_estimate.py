"""The Train tab's memory panel through the real app and gradio_client: estimate, card verdicts, fit and apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_app_e2e import free_port

from core.train_config import TrainConfig
from webui.i18n import resolve

CONFIGS = Path(__file__).resolve().parent / "fixtures" / "model_configs"
VERDICTS = ("fits", "tight", "will not fit")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    from gradio_client import Client

    import app as studio_app

    root = tmp_path_factory.mktemp("estimate") / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    port = free_port()
    blocks, studio = studio_app.launch(
        studio_app.parse_args(["--port", str(port), "--data-dir", str(root)]), block=False)
    c = Client(f"http://127.0.0.1:{port}/", verbose=False)
    yield c
    c.close()
    blocks.close()
    studio.registry.dispose()


@pytest.fixture(scope="module")
def llama7b(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("llama-2-7b")
    shutil.copyfile(CONFIGS / "llama-2-7b.json", folder / "config.json")
    return str(folder)


def form(**changes: object) -> list:
    values = {f.name: f.default for f in TrainConfig.fields()}
    values.update(changes)
    return list(values.values())


def test_estimate_of_the_tiny_model_adds_up_with_a_verdict(client) -> None:
    text, chart, terms, result = client.predict(*form(), "24", api_name="/estimate_memory")
    assert result["ok"] and result["verdict"] in VERDICTS and result["verdict"] == "fits"
    assert sum(result["breakdown"].values()) == pytest.approx(result["total_gb"], rel=1e-9)
    assert {row[0] for row in chart["data"]} == set(result["breakdown"])  # one bar per term
    assert [row[0] for row in terms["data"]] == list(result["breakdown"])
    assert "Fits" in text and "24 GiB card (25.8 GB)" in text


def test_the_verdict_changes_with_the_card(client, llama7b: str) -> None:
    *_, small = client.predict(*form(model=llama7b), "8", api_name="/estimate_memory")
    text, *_, large = client.predict(*form(model=llama7b), "80", api_name="/estimate_memory")
    assert (small["verdict"], large["verdict"]) == ("will not fit", "fits")
    assert small["total_gb"] == large["total_gb"] and "6.7B parameters" in text


def test_fit_to_card_and_apply_bring_a_7b_lora_under_24gb(client, llama7b: str) -> None:
    values = form(model=llama7b, method="lora", max_length=2048, batch_size=4)
    *_, before = client.predict(*values, "24", api_name="/estimate_memory")
    assert before["verdict"] == "will not fit"
    text, fit = client.predict(*values, "24", api_name="/fit_to_card")
    assert fit["proposals"] and all(p["saving_gb"] > 0 for p in fit["proposals"])
    assert fit["after_verdict"] != "will not fit" and "Saves" in text

    *updates, message, changes = client.predict(*values, "24", api_name="/apply_fit")
    names = TrainConfig.field_names()
    changed = {name: u["value"] for name, u in zip(names, updates, strict=True) if "value" in u}
    assert changed == changes == fit["changes"] and "Applied" in message
    after_values = dict(zip(names, values, strict=True)) | changed
    *_, after = client.predict(*after_values.values(), "24", api_name="/estimate_memory")
    assert after["verdict"] != "will not fit" and after["total_gb"] < after["card"]["gb"]
    assert after["total_gb"] == pytest.approx(fit["after_gb"])


def test_an_unknown_hub_model_gives_a_sentence(client) -> None:
    text, chart, _terms, result = client.predict(*form(model="no-such-org/no-such-model"), "24",
                                                 api_name="/estimate_memory")
    assert not result["ok"] and "Memory estimate unavailable." in resolve(text) and "Traceback" not in text
    assert chart["data"] == []


def test_check_config_keeps_its_arguments(client) -> None:
    verdict, _command, config_json = client.predict(*form(), api_name="/check_config")
    assert "Ready to start" in resolve(verdict) and '"model": "tiny-random-llava"' in config_json
