"""Uploads and imports that must never hurt the person's files or lose a row for nothing (issue 10, points 10-15):
same-named uploads, zips with their images in a subfolder, corrupt zip members, deep JSON, the encoding choice and
duplicate ids."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from test_dataset_support import BAD_INPUTS, solid

from core.datasets.catalog import ImportRequest
from core.datasets.importer import DatasetImportError, import_dataset, validate_dataset
from core.problems import ProblemsError

TURNS = [{"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "A colour."}]


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def llava(path: Path, images: list[str], ids: list[str] | None = None) -> Path:
    rows = [{"id": (ids or [f"r{i}" for i in range(len(images))])[i], "image": image, "conversations": TURNS}
            for i, image in enumerate(images)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


# --- point 10: never write through a link into a source ------------------------------------------------------------
def test_two_uploaded_images_with_one_name_are_refused_and_the_originals_keep_their_bytes(studio, tmp_path) -> None:
    cats, dogs = solid(tmp_path / "mine" / "cats" / "1.png"), solid(tmp_path / "mine" / "dogs" / "1.png", (0, 0, 255))
    data = llava(tmp_path / "mine" / "pets.json", ["cats/1.png", "dogs/1.png"])
    before = checksums(tmp_path / "mine")
    with pytest.raises(ProblemsError, match="2 uploaded files are named '1.png'.*one zip, where folders are kept"):
        studio.register_dataset(ImportRequest(files=[data, cats, dogs]), "pets")
    assert checksums(tmp_path / "mine") == before  # before the fix, cats/1.png held the dog's bytes here
    assert studio.registry.find_dataset("pets") is None
    assert not any(studio.paths.uploads_dir.iterdir())  # the staging folder is gone too


def test_no_import_of_any_kind_changes_its_sources(studio, tmp_path) -> None:
    mine = tmp_path / "mine"
    solid(mine / "red.png"), solid(mine / "blue.png", (0, 0, 255))
    data = llava(mine / "set.json", ["red.png", "blue.png", "red.png"])
    with zipfile.ZipFile(mine / "set.zip", "w") as zf:
        for name in ("set.json", "red.png", "blue.png"):
            zf.write(mine / name, f"bundle/{name}")
    before = checksums(mine)
    requests = [ImportRequest(files=[data, mine / "red.png", mine / "blue.png"], eval_ratio=0.34),
                ImportRequest(files=[mine / "set.zip"]), ImportRequest(server_path=str(mine / "set.json")),
                ImportRequest(server_path=str(mine)), ImportRequest(files=[data, mine / "red.png", mine / "red.png",
                                                                           mine / "blue.png"])]
    for i, request in enumerate(requests):
        record, summary = studio.register_dataset(request, f"kind-{i}")
        assert summary["rows_kept"] == 3 and summary["images"] == 2, (i, summary["problem_groups"])
        assert checksums(mine) == before, i
        for stored in Path(record.path).rglob("*"):
            assert stored.is_dir() or stored.stat().st_nlink == 1  # no link into anything of the person's


# --- point 11: a zip with its images in a subfolder -----------------------------------------------------------------
def test_a_zip_with_images_beside_the_data_file_in_a_subfolder(tmp_path) -> None:
    solid(tmp_path / "red.png")
    llava(tmp_path / "llava.json", ["red.png", "missing.png"])
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "llava.json", "bundle/llava.json")
        zf.write(tmp_path / "red.png", "bundle/images/red.png")
    report = import_dataset(archive, tmp_path / "ds")
    assert report.rows_kept == 1 and report.images == 1
    missing = next(p for p in report.problems if p.line is not None)
    assert "'missing.png' not found (looked in bundle inside bundle.zip, bundle/images inside bundle.zip" in \
        missing.message
    assert ".import-" not in json.dumps(report.summary()) and "unpacked" not in json.dumps(report.summary())


def test_an_image_root_named_inside_the_zip(tmp_path) -> None:
    solid(tmp_path / "red.png")
    llava(tmp_path / "llava.json", ["red.png"])
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "llava.json", "data/llava.json")
        zf.write(tmp_path / "red.png", "media/pictures/red.png")
    report = import_dataset(archive, tmp_path / "ds", image_root=Path("media/pictures"))
    assert report.rows_kept == 1 and report.image_root == "media/pictures inside set.zip"
    with pytest.raises(DatasetImportError, match="no folder 'photos' inside set.zip"):
        validate_dataset(archive, image_root=Path("photos"))
    llava(tmp_path / "escape.json", ["../../etc/passwd"])
    with zipfile.ZipFile(tmp_path / "escape.zip", "w") as zf:
        zf.write(tmp_path / "escape.json", "data/escape.json")
        zf.write(tmp_path / "red.png", "media/pictures/red.png")
    failed = validate_dataset(tmp_path / "escape.zip", image_root=Path("media/pictures"))
    assert failed.rows_kept == 0 and "outside the image root media/pictures inside escape.zip" in \
        failed.problems[0].message


# --- point 12: a corrupt zip member is named ------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["crc", "deflate"])
def test_a_corrupt_zip_member_is_named(tmp_path, damage: str) -> None:
    llava(tmp_path / "set.json", ["red.png"])
    solid(tmp_path / "red.png", size=(64, 64))
    archive = tmp_path / "set.zip"
    method = zipfile.ZIP_STORED if damage == "crc" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(archive, "w", compression=method) as zf:
        zf.write(tmp_path / "set.json", "set.json")
        zf.write(tmp_path / "red.png", "images/red.png")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("images/red.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the member's compressed bytes
    if damage == "crc":
        data[start + info.compress_size // 2] ^= 0x01  # stored bytes that no longer match their CRC
    else:
        data[start:start + 4] = b"\xff\xff\xff\xff"  # not a deflate stream any more
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetImportError) as caught:
        import_dataset(archive, tmp_path / "ds")
    message = caught.value.problems[0].message
    assert "zip member 'images/red.png' cannot be unpacked" in message and "create it again" in message
    assert caught.value.problems[0].file == "set.zip" and not (tmp_path / "ds").exists()


# --- point 13: deeply nested JSON excludes only its row -------------------------------------------------------------
def test_deeply_nested_json_excludes_only_that_row(tmp_path) -> None:
    solid(tmp_path / "red.png")
    good = {"image": "red.png", "conversations": TURNS}
    deep = "[" * 50_000 + "]" * 50_000
    (tmp_path / "rows.jsonl").write_text("\n".join([json.dumps(good), '{"image": "red.png", "conversations": '
                                                    + deep + "}", json.dumps(good)]) + "\n")
    (tmp_path / "rows.json").write_text("[\n" + json.dumps(good) + ",\n" + '{"x": "a \\" [ string", "y": ' + deep
                                        + "},\n" + json.dumps(good) + "\n]\n")
    for name, line in (("rows.jsonl", 2), ("rows.json", 3)):
        report = validate_dataset(tmp_path / name)
        assert (report.rows_total, report.rows_kept) == (3, 2), name
        problem = report.problems[0]
        assert report.problem_counts == {"too_deep": 1} and problem.line == line
        assert "nests deeper than the reader allows" in problem.message


# --- point 14: the encoding can be chosen ---------------------------------------------------------------------------
def test_the_encoding_hint_can_be_followed_through_the_request(studio, tmp_path) -> None:
    solid(tmp_path / "images" / "red.png")
    (tmp_path / "latin1.jsonl").write_bytes((BAD_INPUTS / "latin1.jsonl").read_bytes())
    plain = studio.validate_dataset(ImportRequest(server_path=str(tmp_path / "latin1.jsonl")))
    assert plain["problem_counts"] == {"encoding": 1} and "choose its encoding" in plain["problems"][0]["message"]
    record, summary = studio.register_dataset(ImportRequest(server_path=str(tmp_path / "latin1.jsonl"),
                                                            encoding="latin-1"), "latin")
    assert summary["rows_kept"] == summary["rows_total"] == 3 and summary["problem_counts"] == {}
    text = (Path(record.path) / "samples.jsonl").read_text(encoding="utf-8")
    assert "Un carré rouge." in text
    with pytest.raises(ProblemsError, match="unknown text encoding 'klingon'"):
        studio.validate_dataset(ImportRequest(server_path=str(tmp_path / "latin1.jsonl"), encoding="klingon"))


# --- point 15: duplicate sample ids are warned ----------------------------------------------------------------------
def test_duplicate_sample_ids_get_a_warning_naming_both_lines(tmp_path) -> None:
    solid(tmp_path / "red.png")
    rows = [{"id": i, "image": "red.png", "conversations": TURNS} for i in ("a", "b", "a", "c", "b")]
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = import_dataset(tmp_path / "set.jsonl", tmp_path / "ds")
    assert report.rows_kept == 5 and report.problem_counts == {"duplicate_id": 2}  # warned, not excluded
    first = report.problems[0]
    assert first.severity == "warning" and first.line == 3 and first.field == "id"
    assert "sample id 'a' is used again (first at line 1)" in first.message
    assert report.problem_groups[0]["severity"] == "warning"
