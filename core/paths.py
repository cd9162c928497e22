"""Where the studio keeps its files: one data directory, chosen by flag or the STUDIO_DATA_DIR variable."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "STUDIO_DATA_DIR"
DEFAULT_DATA_DIR = Path.home() / ".finetune-studio"


@dataclass(frozen=True)
class StudioPaths:
    """The layout of a data directory."""

    root: Path

    @classmethod
    def resolve(cls, data_dir: str | os.PathLike | None = None) -> StudioPaths:
        chosen = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
        paths = cls(Path(chosen).expanduser().resolve())
        paths.ensure()
        return paths

    @property
    def db_file(self) -> Path:
        return self.root / "studio.db"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def uploads_dir(self) -> Path:
        return self.root / "uploads"

    @property
    def evals_dir(self) -> Path:
        return self.root / "evals"

    def run_dir(self, run_id: int) -> Path:
        return self.runs_dir / f"run-{run_id:05d}"

    def eval_dir(self, eval_id: int) -> Path:
        return self.evals_dir / f"eval-{eval_id:05d}"

    def ensure(self) -> None:
        for d in (self.root, self.runs_dir, self.evals_dir, self.datasets_dir, self.models_dir, self.uploads_dir):
            d.mkdir(parents=True, exist_ok=True)
