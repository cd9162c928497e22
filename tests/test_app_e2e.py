"""End to end through the real app and gradio_client: upload, train, watch, chat; closing the client keeps the run."""

from __future__ import annotations

import json
import socket
import time
import zipfile
from pathlib import Path

import pytest
from jobs_helpers import FAST

from core.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "assets" / "sample_dataset"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def running_app(data_dir: Path):
    import app as studio_app

    port = free_port()
    blocks, studio = studio_app.launch(
        studio_app.parse_args(["--port", str(port), "--data-dir", str(data_dir)]), block=False)
    yield f"http://127.0.0.1:{port}/", studio
    blocks.close()
    studio.registry.dispose()


def zip_sample(dest: Path) -> Path:
    archive = dest / "colours.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(SAMPLE / "data.json", "colours/data.json")
        for image in sorted((SAMPLE / "images").iterdir()):
            zf.write(image, f"colours/images/{image.name}")
    return archive


def list_runs(client) -> list[dict]:
    return json.loads(client.predict(api_name="/list_runs"))


def test_upload_train_watch_and_chat(running_app, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, studio = running_app
    client = Client(url, verbose=False)
    report, _table, _choice = client.predict([handle_file(str(zip_sample(tmp_path)))], "colours",
                                             api_name="/register_dataset")
    assert "Registered **colours**: 24 rows, 24 images" in report

    values = {f.name: f.default for f in TrainConfig.fields()}
    values.update(FAST, run_name="e2e", dataset="colours", max_steps=40)
    status, command, config_json, _run = client.predict(*values.values(), api_name="/start_run")
    assert "Started run" in status, status
    assert "-m jobs.train --config" in command and json.loads(config_json)["dataset"] == "colours"
    (run,) = list_runs(client)

    client.close()  # the browser goes away; the run must not notice
    client = Client(url, verbose=False)
    deadline = time.monotonic() + 240
    seen_steps = set()
    while time.monotonic() < deadline:
        *_, metrics = client.predict(run["id"], [], api_name="/run_metrics")
        seen_steps.add(len(metrics))
        current = next(r for r in list_runs(client) if r["id"] == run["id"])
        if current["status"] not in ("queued", "running"):
            break
        time.sleep(1)
    assert current["status"] == "completed", current
    *_, metrics = client.predict(run["id"], [], api_name="/run_metrics")
    assert [m["step"] for m in metrics] == list(range(1, 41))
    assert len(seen_steps) > 1  # the chart data grew while we watched

    image = handle_file(str(SAMPLE / "images" / "blue_square_0.png"))
    history, _, _ = client.predict(f"run:{run['id']}", image, "What colour is the shape?", [], 48, 0.0,
                                   api_name="/chat")
    assert history[-1]["role"] == "assistant" and text_of(history[-1]).strip()

    # A second turn in the same session continues the conversation (the image stays attached to turn one).
    history, _, _ = client.predict(f"run:{run['id']}", image, "And what shape is it?", history, 48, 0.0,
                                   api_name="/chat")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert text_of(history[2]) == "And what shape is it?" and text_of(history[3]).strip()
    client.close()


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def test_chat_says_in_words_when_the_image_is_not_an_image(running_app, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, studio = running_app
    fake = tmp_path / "holiday.jpg"
    fake.write_text("This is a shopping list, not a picture.\n")
    client = Client(url, verbose=False)
    history, question, notice = client.predict("tiny-random-llava", handle_file(str(fake)), "What is this?", [], 16,
                                            0.0, api_name="/chat")
    assert "'holiday.jpg' is not a JPEG, PNG, WebP, GIF or BMP image: it is text" in notice, notice
    assert [m["role"] for m in history] == ["user"] and question == "What is this?"  # kept, to retry
    assert not any((studio.paths.uploads_dir / "chat").glob("*/holiday.jpg"))
    # and a real picture in the same conversation still gets an answer
    image = handle_file(str(SAMPLE / "images" / "blue_square_0.png"))
    history, _, notice = client.predict("tiny-random-llava", image, "What colour?", [], 8, 0.0, api_name="/chat")
    assert notice == "" and history[-1]["role"] == "assistant"
    client.close()
