"""Shared fixtures: offline settings, a data directory per test, the tiny model and the family models built once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def tiny_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding tiny-random-llava, built once and copied into each data directory."""
    from core.models.tiny_llava import ensure_tiny_llava

    models = tmp_path_factory.mktemp("models")
    ensure_tiny_llava(models)
    return models


@pytest.fixture
def data_dir(tmp_path: Path, tiny_model_cache: Path) -> Path:
    """A fresh studio data directory with the tiny model already in place."""
    root = tmp_path / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    return root


@pytest.fixture
def studio(data_dir: Path):
    from core.studio import Studio

    s = Studio(data_dir)
    yield s
    s.registry.dispose()


@pytest.fixture(scope="session")
def family_model(tmp_path_factory: pytest.TempPathFactory):
    """``family_model(name)``: the folder of that family's tiny random model, built once per session on first use."""
    from family_models import build

    root = tmp_path_factory.mktemp("families")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = build(name, root / name)
        return built[name]

    return get
