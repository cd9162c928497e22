"""Export: a finished run's result as a zip (also through the app's HTTP file route) and LoRA merged into its base."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from jobs_helpers import fast_config, wait_for
from method_runs import fixed_batch, tiny_path
from test_app_e2e import free_port

from core.export import NOT_MERGEABLE, ExportService
from core.problems import ProblemsError
from core.runs.files import COMPLETE_MARK
from core.studio import Studio


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    """One data directory with a short finished LoRA run, shared by this module's tests."""
    root = tmp_path_factory.mktemp("export") / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    studio = Studio(root)
    run_id = studio.launcher.start(fast_config(max_steps=6))
    run = wait_for(studio.registry, run_id, ("completed", "failed", "lost"))
    assert run.status == "completed", (run.status, run.error)
    yield studio, run
    studio.registry.dispose()


def fake_run(studio: Studio, method: str, status: str = "completed", files: tuple[str, ...] = ("w.bin",)) -> int:
    """A run row with a published result folder, without training (the refusals need no weights)."""
    run_id = studio.registry.create_run(f"fake-{method}", "tiny", method, "sample", {"method": method})
    run_dir = studio.paths.run_dir(run_id)
    artefact = run_dir / "final"
    artefact.mkdir(parents=True)
    for name in files:
        (artefact / name).write_bytes(b"x")
    (artefact / COMPLETE_MARK).write_text("ok\n")
    (run_dir / "config.json").write_text(json.dumps({"method": method}))
    studio.registry.update_run(run_id, run_dir=str(run_dir))
    if status != "queued":
        studio.registry.set_status(run_id, "running")
        studio.registry.set_status(run_id, status, artefact_dir=str(artefact))
    return run_id


def test_merged_model_stands_alone_and_matches_base_plus_adapter(finished) -> None:
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    from core.models.loading import load_model

    studio, run = finished
    service = ExportService(studio.paths, studio.registry)
    result = service.merge(run.id, "fp32")
    assert result.folder == studio.paths.root / "exports" / f"run-{run.id:05d}-merged"
    assert result.size > 0 and (result.folder / "config.json").is_file()
    assert (result.folder / "tokenizer_config.json").is_file() or (result.folder / "processor_config.json").is_file()
    assert not list(result.folder.parent.glob(".*"))  # no partial folder left behind

    _, batch = fixed_batch(studio.paths.root)
    batch = {k: v for k, v in batch.items() if k != "labels"}
    reference = PeftModel.from_pretrained(load_model(tiny_path(studio.paths.root)), run.artefact_dir).eval()
    merged = AutoModelForImageTextToText.from_pretrained(str(result.folder), dtype=torch.float32).eval()
    with torch.no_grad():
        expected, got = reference(**batch).logits, merged(**batch).logits
    assert torch.allclose(expected, got, atol=1e-5, rtol=1e-4), (expected - got).abs().max()

    again = service.merge(run.id, "bf16")  # replaces the earlier export in place
    assert again.folder == result.folder and again.size < result.size
    reloaded = AutoModelForImageTextToText.from_pretrained(str(again.folder))
    assert next(reloaded.parameters()).dtype == torch.bfloat16
    assert not list(result.folder.parent.glob(".*"))


def test_zip_holds_the_adapter_and_config(finished, tmp_path: Path) -> None:
    studio, run = finished
    result = ExportService(studio.paths, studio.registry).zip_result(run.id, tmp_path)
    assert result.path.is_file() and result.path.suffix == ".zip"
    with zipfile.ZipFile(result.path) as zf:
        names = zf.namelist()
        top = f"run-{run.id:05d}-lora"
        assert f"{top}/config.json" in names
        assert json.loads(zf.read(f"{top}/config.json"))["method"] == "lora"
        assert f"{top}/final/adapter_config.json" in names
        assert f"{top}/final/adapter_model.safetensors" in names
        assert not any(n.endswith(COMPLETE_MARK) for n in names)
        metrics = zf.read(f"{top}/metrics.jsonl").decode().splitlines()  # the run's files travel with it
        assert [json.loads(m)["step"] for m in metrics if "loss" in json.loads(m)] == list(range(1, 7))
        assert "completed after 6 steps" in zf.read(f"{top}/train.log").decode()
        assert json.loads(zf.read(f"{top}/dataset.json"))["name"] == "sample"


@pytest.mark.parametrize("method", ["prompt", "adapter", "full", "prefix", "ptuning"])
def test_merge_is_refused_with_a_reason(finished, method: str) -> None:
    studio, _ = finished
    run_id = fake_run(studio, method)
    service = ExportService(studio.paths, studio.registry)
    with pytest.raises(ProblemsError) as caught:
        service.merge(run_id)
    assert NOT_MERGEABLE[method] in str(caught.value.problems[0].message)
    assert str(run_id) in [value for _, value in service.choices()]  # its zip is still offered


def test_unfinished_runs_are_refused(finished) -> None:
    studio, _ = finished
    service = ExportService(studio.paths, studio.registry)
    queued = fake_run(studio, "lora", status="queued")
    failed = fake_run(studio, "lora", status="failed")
    for run_id, word in ((queued, "queued"), (failed, "failed"), (99999, "there is no run"), (None, "choose")):
        for action in (service.zip_result, service.merge):
            with pytest.raises(ProblemsError, match=word):
                action(run_id)
    offered = [value for _, value in service.choices()]
    assert str(queued) not in offered and str(failed) not in offered


def test_download_and_refusal_through_the_app(finished, tmp_path: Path) -> None:
    import urllib.request

    from gradio_client import Client

    import app as studio_app

    studio, run = finished
    blocks, app_studio = studio_app.launch(studio_app.parse_args(
        ["--port", str(free_port()), "--data-dir", str(studio.paths.root)]), block=False)
    try:
        client = Client(blocks.local_url, verbose=False, download_files=False)
        listed = client.predict(api_name="/export_runs")
        assert str(run.id) in [value for _, value in listed["choices"]]
        file, notice = client.predict(str(run.id), api_name="/export_zip")
        assert "✅" in notice and file["url"].startswith(blocks.local_url.rstrip("/") + "/gradio_api/file=")
        with urllib.request.urlopen(file["url"], timeout=30) as response:
            assert response.status == 200
            (tmp_path / "got.zip").write_bytes(response.read())
        with zipfile.ZipFile(tmp_path / "got.zip") as zf:
            assert f"run-{run.id:05d}-lora/final/adapter_model.safetensors" in zf.namelist()
        shutil.rmtree(studio.paths.root / "exports", ignore_errors=True)  # an earlier test merged it
        file, notice = client.predict(str(run.id), api_name="/export_merged_zip")
        assert file is None and "has not been merged yet" in notice
        assert "✅" in client.predict(str(run.id), "bf16", api_name="/export_merge")
        file, notice = client.predict(str(run.id), api_name="/export_merged_zip")
        with urllib.request.urlopen(file["url"], timeout=30) as response:
            (tmp_path / "merged.zip").write_bytes(response.read())
        with zipfile.ZipFile(tmp_path / "merged.zip") as zf:
            names = zf.namelist()
        top = f"run-{run.id:05d}-merged"
        assert f"{top}/merged/config.json" in names and f"{top}/metrics.jsonl" in names and f"{top}/train.log" in names
        merged = [value for label, value in client.predict(api_name="/chat_models")["choices"]
                  if label.startswith(f"merged: run {run.id} ")]
        assert merged == [str(studio.paths.root / "exports" / top)]  # offered in Chat as a model of its own
        history, _, notice = client.predict(merged[0], None, "Hello", [], 8, 0.0, api_name="/chat")
        assert notice == "" and history[-1]["role"] == "assistant"
        prompt_run = fake_run(studio, "prompt")
        refusal = client.predict(str(prompt_run), "fp32", api_name="/export_merge")
        assert "virtual tokens" in refusal and "Traceback" not in refusal
    finally:
        blocks.close()
        app_studio.registry.dispose()
