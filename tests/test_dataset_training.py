"""A few training steps on the tiny model succeed for a dataset of every format, text-only ones included."""

from __future__ import annotations

import json
import math
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from test_dataset_support import COMPAT, FORMATS

from core.datasets.catalog import ImportRequest
from core.datasets.records import SAMPLES_FILE, read_samples
from core.models.loading import resolve_model
from core.runs.files import FINAL_DIR, METRICS_FILE
from core.train_config import TrainConfig

STEPS = 3
TEXT_ONLY = [{"instruction": "Say hello.", "input": "", "output": "Hello."},
             {"instruction": "Translate", "input": "bonjour", "output": "hello", "system": "You translate."},
             {"instruction": "Count to three.", "input": "", "output": "One, two, three."}]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    from core.studio import Studio

    root = tmp_path_factory.mktemp("training") / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    s = Studio(root)
    yield s
    s.registry.dispose()


def sources(tmp: Path) -> dict[str, tuple[Path, dict]]:
    """name -> (source, extra import options): every format, from the committed fixtures and the compat files."""
    (tmp / "text_only.json").write_text(json.dumps(TEXT_ONLY))
    import pyarrow as pa
    import pyarrow.parquet as pq

    red = (FORMATS / "images" / "red.png").read_bytes()
    pq.write_table(pa.table({"image": [{"bytes": red, "path": "red.png"}] * 2, "text": ["Red.", "A red square."]}),
                   tmp / "captions.parquet")
    archive = tmp / "sharegpt.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(FORMATS / "sharegpt.json", "set/sharegpt.json")
        for name in ("red.png", "blue.png"):
            zf.write(FORMATS / "images" / name, f"set/images/{name}")
    found = {
        "llava": (FORMATS / "llava.json", {}), "sharegpt": (FORMATS / "sharegpt.json", {}),
        "openai": (FORMATS / "openai.jsonl", {}), "alpaca-images": (FORMATS / "alpaca.json", {}),
        "alpaca-text-only": (tmp / "text_only.json", {}), "captions-csv": (FORMATS / "captions.csv", {}),
        "captions-jsonl": (FORMATS / "captions.jsonl", {}), "captions-parquet": (tmp / "captions.parquet", {}),
        "caption-folder": (FORMATS / "caption_folder", {}), "metadata-folder": (FORMATS / "metadata_folder", {}),
        "zip": (archive, {}),
    }
    if COMPAT.is_dir():
        rows = [{"id": n, "image": f"{n}.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat is unusual about this image?"}, {"from": "gpt", "value": "It."}]}
            for n in ("extreme_ironing", "waterview")]
        (tmp / "llava_photos.json").write_text(json.dumps(rows))
        found.update({
            "compat-mllm-demo": (COMPAT / "llamafactory" / "mllm_demo.json", {}),
            "compat-v1-multimodal": (COMPAT / "llamafactory" / "v1_multimodal_demo.jsonl", {}),
            "compat-identity": (COMPAT / "llamafactory" / "identity.json", {}),
            "compat-llava-photos": (tmp / "llava_photos.json", {"image_root": str(COMPAT / "llava")}),
        })
    return found


def train_steps(studio, dataset: str, dataset_dir: Path) -> tuple[object, Path]:
    """jobs.train's wiring, in this process: a registry row, a reporter, the loop."""
    from jobs.loop import train
    from jobs.reporter import Reporter

    config = TrainConfig.from_dict({"run_name": f"fmt-{dataset}", "dataset": dataset, "max_steps": STEPS,
                                    "batch_size": 2, "learning_rate": 5e-3, "logging_steps": 1, "seed": 1})
    run_id = studio.registry.create_run(config.run_name, config.model, config.method, dataset, config.to_dict())
    run_dir = studio.paths.run_dir(run_id)
    run_dir.mkdir(parents=True)
    studio.registry.update_run(run_id, run_dir=str(run_dir))
    reporter = Reporter(studio.registry, run_id, run_dir)
    reporter.running()
    try:
        outcome = train(config, resolve_model(config.model, studio.paths), dataset_dir, run_dir, reporter,
                        threading.Event())
    except BaseException as e:
        reporter.finish("failed", error=str(e), exit_code=1)
        raise
    reporter.finish("completed", step=outcome.steps, last_loss=outcome.final_loss,
                    artefact_dir=str(outcome.artefact_dir))
    return outcome, run_dir


def test_every_format_registers_and_trains(studio, tmp_path: Path) -> None:
    trained = []
    for name, (source, options) in sources(tmp_path).items():
        record, summary = studio.register_dataset(ImportRequest(server_path=str(source), **options), name)
        assert summary["rows_kept"] >= 1 and summary["rows_excluded"] == 0, (name, summary["problem_groups"])
        outcome, run_dir = train_steps(studio, name, Path(record.path))
        metrics = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
        assert outcome.steps == STEPS and [m["step"] for m in metrics] == [1, 2, 3], name
        assert all(math.isfinite(m["loss"]) for m in metrics), (name, metrics)
        assert (run_dir / FINAL_DIR).is_dir()
        trained.append((name, record.format))
    runs = studio.registry.list_runs()
    assert len(runs) == len(trained) and all(r.status == "completed" and r.step == STEPS for r in runs)
    assert {fmt for _, fmt in trained} == {"llava", "sharegpt", "openai", "alpaca", "captions"}


def test_a_text_only_batch_trains_the_vlm_without_pixel_values(studio, tmp_path: Path) -> None:
    from core.datasets.stats import EncoderCache
    from core.models.encoding import SampleEncoder
    from jobs.batches import Collator

    (tmp_path / "plain.json").write_text(json.dumps(TEXT_ONLY))
    record, _ = studio.register_dataset(ImportRequest(server_path=str(tmp_path / "plain.json")), "plain-text")
    folder = Path(record.path)
    encoder = SampleEncoder(EncoderCache(studio.paths).processor("tiny-random-llava"), 512)
    assert encoder.vision  # the VLM's processor, with no image in sight
    batch = Collator(encoder)([encoder.encode(s, folder) for s in read_samples(folder / SAMPLES_FILE)])
    assert "pixel_values" not in batch and batch["input_ids"].shape[0] == len(TEXT_ONLY)
    assert (batch["labels"] != -100).any()
