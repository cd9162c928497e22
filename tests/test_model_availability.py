"""Check refuses a model that cannot be read here, with the reason, in seconds: offline, no network, no config."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from jobs_helpers import fast_config


def model_messages(studio, model: str) -> list[str]:
    return [p.message for p in studio.launcher.check(fast_config(model=model)) if p.field == "model"]


def test_an_offline_hub_id_that_is_not_cached_is_refused_at_once(studio) -> None:
    start = time.monotonic()
    (message,) = model_messages(studio, "someone/not-downloaded-7b")
    assert time.monotonic() - start < 5
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE is set" in message
    estimate = studio.memory.estimate({"model": "someone/not-downloaded-7b"})
    assert not estimate["ok"] and "HF_HUB_OFFLINE is set" in estimate["reason"]


def test_without_a_network_the_hub_id_is_refused_within_5_seconds(studio, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    (message,) = model_messages(studio, "someone/elsewhere-7b")
    assert time.monotonic() - start < 5
    assert "the Hub cannot be reached (no network" in message


def test_folders_without_a_config_and_paths_that_do_not_exist_are_named(studio, tmp_path: Path) -> None:
    empty = tmp_path / "my-model"
    empty.mkdir()
    (message,) = model_messages(studio, str(empty))
    assert "has no config.json" in message and str(empty) in message
    (message,) = model_messages(studio, str(tmp_path / "nowhere"))
    assert "there is no folder" in message
    assert model_messages(studio, "tiny-random-llava") == []
