"""End to end through the real app and gradio_client: upload, train, watch, chat; closing the client keeps the run."""

from __future__ import annotations

import json
import re
import socket
import time
import zipfile
from pathlib import Path

import pytest
from jobs_helpers import FAST

from core.train_config import TrainConfig
from webui.i18n import resolve

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
    assert "Started run" in resolve(status), status
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


def wait_for_evaluation(client, eval_id: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next(e for e in json.loads(client.predict(api_name="/list_evaluations")) if e["id"] == eval_id)
        if found["status"] not in ("queued", "running"):
            return found
        time.sleep(0.5)
    raise AssertionError(f"evaluation {eval_id} did not finish in {timeout} s")


def test_evaluate_a_finished_run_and_a_base_and_read_the_before_after_table(running_app) -> None:
    from gradio_client import Client

    from core.evals.config import EvalConfig

    url, _studio = running_app
    client = Client(url, verbose=False)
    values = {f.name: f.default for f in TrainConfig.fields()}
    values.update(FAST, run_name="to-score", max_steps=12)
    client.predict(*values.values(), api_name="/start_run")
    (run,) = list_runs(client)
    deadline = time.monotonic() + 180
    while next(r for r in list_runs(client) if r["id"] == run["id"])["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the run did not finish"
        time.sleep(0.5)

    settings = {f.name: f.default for f in EvalConfig.fields() if f.name not in ("run_id", "result", "model",
                                                                                    "dataset")}
    settings.update(max_samples=4, max_new_tokens=8)
    notice, command = client.predict(f"run:{run['id']}", "sample", *settings.values(),
                                     api_name="/check_evaluation")
    assert "no eval split" in notice and f"-m jobs.evaluate --run {run['id']} --dataset sample" in command
    assert re.search(r"\*\*Rows\*\*: this dataset has no eval split", notice), notice  # named by its label
    started = {}
    for target in (f"run:{run['id']}", "tiny-random-llava"):
        notice, command, chosen = client.predict(target, "sample", *settings.values(),
                                                 api_name="/start_evaluation")
        assert "Started evaluation" in notice and "-m jobs.evaluate" in command, notice
        started[target] = chosen["value"]  # the Evaluation list now shows it
    for eval_id in started.values():
        assert wait_for_evaluation(client, eval_id)["status"] == "completed"

    progress, details, table, samples = client.predict(started[f"run:{run['id']}"], "rouge_l",
                                                       "improvement, best first", api_name="/evaluation_results")
    assert "8 of 8 samples scored" in progress  # the base and the fine-tuned result, 4 rows each
    assert "jobs.evaluate --run" in details
    rows = {row[0]: row[1:] for row in table["data"]}
    assert table["headers"] == ["metric", "base", "fine-tuned", "better by"]
    assert rows["Samples scored"][:2] == [4, 4]
    base_loss, tuned_loss, better = rows["Loss on references"]
    assert tuned_loss < base_loss and better > 0  # the run learned the sample's answers
    assert len(samples["data"]) == 4 and samples["headers"][3:5] == ["base answer", "fine-tuned answer"]

    _, _, base_table, _ = client.predict(started["tiny-random-llava"], "rouge_l", "score, best first",
                                         api_name="/evaluation_results")
    base_rows = {row[0]: row[1:] for row in base_table["data"]}
    assert base_rows["Loss on references"][0] == base_loss and base_rows["Loss on references"][1] is None


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
