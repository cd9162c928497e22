"""A hand-written samples.jsonl used as a dataset in place is confined like an import: image paths with '..', absolute
paths and links leading out are refused (in Check and headless), with the file, line and path named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jobs_helpers import fast_config

import jobs.train
from core.store.registry import Registry

SAMPLE_IMAGE = Path(__file__).resolve().parents[1] / "assets" / "sample_dataset" / "images" / "red_circle_0.png"


def row(image: str) -> str:
    return json.dumps({"id": image, "images": [image], "messages": [
        {"role": "user", "content": "<image>\nWhat colour?"}, {"role": "assistant", "content": "Red."}]})


def hand_written(tmp_path: Path, images: list[str]) -> Path:
    folder = tmp_path / "mine"
    (folder / "images").mkdir(parents=True)
    shutil.copyfile(SAMPLE_IMAGE, folder / "images" / "ok.png")
    shutil.copyfile(SAMPLE_IMAGE, tmp_path / "secret.png")
    (folder / "images" / "link.png").symlink_to(tmp_path / "secret.png")
    (folder / "samples.jsonl").write_text("".join(row(image) + "\n" for image in images))
    return folder


def test_images_outside_the_folder_are_refused_with_file_and_line(studio, tmp_path: Path) -> None:
    folder = hand_written(tmp_path, ["images/ok.png", "../secret.png", str(tmp_path / "secret.png"),
                                     "images/link.png", "images/../../secret.png", "images/none.png"])
    problems = studio.launcher.check(fast_config(dataset=str(folder)))
    where = {p.line: p.message for p in problems if p.field == "dataset"}
    samples = str(folder / "samples.jsonl")
    assert all(p.file == samples for p in problems if p.field == "dataset")
    assert sorted(where) == [2, 3, 4, 5, 6], problems
    assert "climbs out" in where[2] and "absolute" in where[3] and "through a link" in where[4]
    assert "climbs out" in where[5] and "not found" in where[6]


def test_a_confined_file_passes_and_the_headless_path_refuses_the_rest(studio, tmp_path: Path, capsys) -> None:
    good = hand_written(tmp_path / "good", ["images/ok.png", "images/ok.png"])
    assert [p for p in studio.launcher.check(fast_config(dataset=str(good / "samples.jsonl")))
            if p.field == "dataset" and p.severity == "error"] == []
    bad = hand_written(tmp_path / "bad", ["images/ok.png", "../secret.png"])
    config = tmp_path / "config.json"
    fast_config(dataset=str(bad)).save(config)
    assert jobs.train.main(["--config", str(config), "--data-dir", str(studio.paths.root)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {bad / 'samples.jsonl'}:2, field 'dataset': image path '../secret.png'")
    assert Registry(studio.paths.db_file).list_runs() == []
