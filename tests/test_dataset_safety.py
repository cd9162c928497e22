"""Safety: image paths stay inside the root, zips cannot escape, uploads have a size limit, imports are atomic."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from test_dataset_support import leftovers, solid

from core.datasets import importer
from core.datasets.importer import DatasetImportError, import_dataset, validate_dataset
from core.datasets.limits import ImportLimits, check_upload_size


def caption_file(folder: Path, paths: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.jsonl"
    path.write_text("".join(json.dumps({"image_path": p, "text": "a caption"}) + "\n" for p in paths))
    return path


def test_absolute_and_symlinked_paths_outside_the_root_are_refused(tmp_path):
    outside = solid(tmp_path / "outside" / "secret.png")
    data_dir = tmp_path / "data"
    solid(data_dir / "ok.png")
    (data_dir / "link.png").symlink_to(outside)
    path = caption_file(data_dir, ["ok.png", str(outside), "link.png", str(data_dir / "ok.png"), "/etc/passwd"])
    report = validate_dataset(path)
    assert report.rows_kept == 2 and report.problem_counts == {"image_path": 3}
    assert {p.line for p in report.problems} == {2, 3, 5}
    assert all("resolves outside the image root" in p.message for p in report.problems)


def test_urls_are_not_downloaded(tmp_path):
    report = validate_dataset(caption_file(tmp_path, ["https://example.com/a.png"]))
    assert report.problem_counts == {"unsupported": 1} and "is a URL" in report.problems[0].message


def test_image_root_given_by_the_user(tmp_path):
    repo = tmp_path / "LLaMA-Factory"
    solid(repo / "data" / "demo_data" / "1.png")
    path = caption_file(repo / "data", ["data/demo_data/1.png"])
    report = validate_dataset(path, image_root=repo)
    assert report.rows_kept == 1 and report.image_root == str(repo.resolve()) and report.image_note == ""
    # without the root the file's own folder is the root, and the path is found by dropping 'data/'
    report = validate_dataset(path)
    assert report.rows_kept == 1 and "'data/'" in report.image_note
    # a path that climbs out of the given root is still refused
    report = validate_dataset(caption_file(repo / "data", ["../../x.png"]), image_root=repo)
    assert report.problem_counts == {"image_path": 1}


def test_zip_members_escaping_the_archive_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data.jsonl", json.dumps({"image_path": "a.png", "text": "x"}) + "\n")
        zf.writestr("../../escaped.txt", "gotcha")
    with pytest.raises(DatasetImportError) as info:
        import_dataset(archive, tmp_path / "out" / "ds")
    assert "zip member '../../escaped.txt' points outside the archive" in str(info.value)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "ds").exists()
    assert leftovers(tmp_path / "out") == []


def test_zip_symlinks_are_refused(tmp_path):
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data.jsonl", "{}\n")
        link = zipfile.ZipInfo("a.png")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetImportError, match="'a.png' is a symbolic link"):
        import_dataset(archive, tmp_path / "ds")


def test_zip_over_the_unpacked_size_limit_is_refused(tmp_path):
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.jsonl", "{}\n" + " " * 200_000)
    with pytest.raises(DatasetImportError, match="unpacks to .* over the limit"):
        import_dataset(archive, tmp_path / "ds", limits=ImportLimits(max_extracted_bytes=100_000))


def test_upload_size_limit(tmp_path, monkeypatch):
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"x" * 3000)
    assert check_upload_size([big], ImportLimits(max_upload_bytes=5000)) == []
    [problem] = check_upload_size([big, big], ImportLimits(max_upload_bytes=5000))
    assert "the upload is 5.9 KB, over the limit of 4.9 KB" in problem.message and problem.field == "files"
    monkeypatch.setenv("STUDIO_MAX_UPLOAD_MB", "0.001")
    assert "STUDIO_MAX_UPLOAD_MB" in check_upload_size(big)[0].message


def test_an_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(DatasetImportError, match="already exists"):
        import_dataset(caption_file(tmp_path / "src", ["a.png"]), tmp_path / "ds")


def test_a_crash_midway_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "src"
    for i in range(5):
        solid(src / f"{i}.png", (i * 40, 0, 0))
    path = caption_file(src, [f"{i}.png" for i in range(5)])
    calls = []

    def exploding(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return original(*args, **kwargs)

    original = importer.store_image
    monkeypatch.setattr(importer, "store_image", exploding)
    with pytest.raises(DatasetImportError, match="No space left on device"):
        import_dataset(path, tmp_path / "out" / "ds")
    assert not (tmp_path / "out" / "ds").exists() and leftovers(tmp_path / "out") == []


def test_missing_source_is_a_clear_problem(tmp_path):
    with pytest.raises(DatasetImportError, match="does not exist"):
        import_dataset(tmp_path / "nope.jsonl", tmp_path / "ds")
    assert leftovers(tmp_path) == []


def test_unusable_path_strings_are_row_errors(tmp_path):
    solid(tmp_path / "ok.png")
    report = validate_dataset(caption_file(tmp_path, ["ok.png", "a\x00.png", "x" * 5000 + ".png"]))
    assert report.rows_kept == 1 and report.problem_counts == {"image_path": 2}
    assert "NUL character" in report.problems[0].message and "cannot be used" in report.problems[1].message
