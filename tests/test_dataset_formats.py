"""Every format round-trips into the internal form with the right roles, placeholders and images; compat files load."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from test_dataset_support import COMPAT, formats_copy, solid

from core.datasets.importer import DatasetImportError, import_dataset, validate_dataset
from core.datasets.peek import inspect_source
from core.datasets.records import IMAGE_PLACEHOLDER, SAMPLES_FILE, read_samples


@pytest.fixture()
def fmt(tmp_path) -> Path:
    return formats_copy(tmp_path)


def load(dest: Path) -> list:
    samples = list(read_samples(dest / SAMPLES_FILE))
    for s in samples:
        assert s.placeholder_count() == len(s.images)
        for image in s.images:
            assert (dest / image).is_file() and image.startswith("images/")
    return samples


def roles(sample) -> list[str]:
    return [m.role for m in sample.messages]


def test_llava(fmt, tmp_path):
    report = import_dataset(fmt / "llava.json", tmp_path / "ds")
    assert report.format == "llava" and "'conversations' with 'from'/'value'" in report.format_reason
    a, b, c = load(tmp_path / "ds")
    assert a.id == "a" and roles(a) == ["user", "assistant", "user", "assistant"]
    assert a.messages[0].content == "<image>\nColour?" and len(a.images) == 1
    assert b.messages[0].content == IMAGE_PLACEHOLDER + "\nColour?"  # implied image goes first
    assert roles(c) == ["system", "user", "assistant"] and c.images == []
    assert report.images == 2 and report.rows_kept == 3


def test_sharegpt_multi_image_multi_turn_with_dedupe(fmt, tmp_path):
    report = import_dataset(fmt / "sharegpt.json", tmp_path / "ds")
    assert report.format == "sharegpt" and "'images' list" in report.format_reason
    first, second = load(tmp_path / "ds")
    assert roles(first) == ["system", "user", "assistant", "user", "assistant"]
    assert first.placeholder_count() == 3 and len(first.images) == 3
    assert first.images[0] == first.images[2] != first.images[1]  # the reused image is stored once
    assert roles(second) == ["user", "assistant"] and second.messages[1].content == "Blue."
    assert report.images == 2 and len(list((tmp_path / "ds" / "images").iterdir())) == 2


def test_openai_content_parts(fmt, tmp_path):
    report = import_dataset(fmt / "openai.jsonl", tmp_path / "ds")
    assert report.format == "openai" and "image" in report.format_reason
    a, b, c = load(tmp_path / "ds")
    assert roles(a) == ["system", "user", "assistant"]
    assert a.messages[1].content == "What colour?<image>" and a.messages[2].content == "Red."
    assert b.messages[0].content == "<image>And this?" and len(b.images) == 1
    assert c.images == [] and c.messages[1].content == "Yes."


def test_alpaca_with_system_history_and_images(fmt, tmp_path):
    report = import_dataset(fmt / "alpaca.json", tmp_path / "ds")
    assert report.format == "alpaca"
    a, b, c = load(tmp_path / "ds")
    assert a.messages[0].content == "<image>\nName the colour." and a.messages[1].content == "Red."
    assert roles(b) == ["system", "user", "assistant", "user", "assistant"]
    assert b.messages[3].content == "Translate\nbonjour" and b.images == []
    assert len(c.images) == 1


@pytest.mark.parametrize("name,image_col,text_col", [("captions.csv", "image_path", "text"),
                                                     ("captions.jsonl", "file", "caption")])
def test_captions_tables(fmt, tmp_path, name, image_col, text_col):
    report = import_dataset(fmt / name, tmp_path / "ds", caption_prompt="What is shown?")
    assert report.format == "captions" and report.columns["image"] == image_col and report.columns["text"] == text_col
    a, b = load(tmp_path / "ds")
    assert a.messages[0].content == "<image>\nWhat is shown?" and roles(a) == ["user", "assistant"]
    assert b.messages[1].content in ("A blue square, small.", "Blue.")


def test_captions_parquet(fmt, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    red = (fmt / "images" / "red.png").read_bytes()
    table = pa.table({"image": [{"bytes": red, "path": "red.png"}, {"bytes": None, "path": "images/blue.png"}],
                      "text": ["Red square.", "Blue square."]})
    pq.write_table(table, fmt / "captions.parquet")
    report = import_dataset(fmt / "captions.parquet", tmp_path / "ds")
    assert report.format == "captions" and report.rows_kept == 2 and report.images == 2
    a, b = load(tmp_path / "ds")
    assert a.messages[1].content == "Red square." and (tmp_path / "ds" / a.images[0]).read_bytes() == red


def test_image_folder_with_txt_captions(fmt, tmp_path):
    report = import_dataset(fmt / "caption_folder", tmp_path / "ds")
    assert report.format == "captions" and ".txt caption" in report.format_reason
    samples = load(tmp_path / "ds")
    assert sorted(s.messages[1].content for s in samples) == ["A green square.", "A yellow square."]


def test_image_folder_with_metadata(fmt, tmp_path):
    report = import_dataset(fmt / "metadata_folder", tmp_path / "ds")
    assert report.format == "captions" and "metadata.jsonl" in report.source_note
    [sample] = load(tmp_path / "ds")
    assert sample.messages[1].content == "A green square."


def test_zip_of_a_dataset_with_images(fmt, tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(fmt / "sharegpt.json", "mydata/sharegpt.json")
        zf.write(fmt / "images" / "red.png", "mydata/images/red.png")
        zf.write(fmt / "images" / "blue.png", "mydata/images/blue.png")
        zf.writestr("__MACOSX/._sharegpt.json", "junk")
    report = import_dataset(archive, tmp_path / "ds")
    assert report.format == "sharegpt" and report.rows_kept == 2 and report.images == 2
    assert report.source_file == "mydata/sharegpt.json" and "upload.zip" in report.image_root
    load(tmp_path / "ds")


def test_flat_upload_folder_finds_images_by_dropping_folders(fmt, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "llava.json").write_text((fmt / "llava.json").read_text())
    for name in ("red.png", "blue.png"):
        (flat / name).write_bytes((fmt / "images" / name).read_bytes())
    report = import_dataset(flat, tmp_path / "ds")
    assert report.rows_kept == 3 and "'images/'" in report.image_note


def test_format_override_and_column_mapping(tmp_path):
    solid(tmp_path / "pics" / "a.png")
    (tmp_path / "t.csv").write_text("picture,desc,q\npics/a.png,A red square.,Colour?\n")
    info = inspect_source(tmp_path / "t.csv")
    assert info["format"] is None and "could not tell the dataset format" in info["problems"][0]["message"]
    columns = {"image": "picture", "text": "desc", "prompt": "q"}
    info = inspect_source(tmp_path / "t.csv", format="captions", columns=columns)
    assert info["format"] == "captions" and info["columns"]["image"] == "picture" and info["rows"][0]["q"] == "Colour?"
    report = import_dataset(tmp_path / "t.csv", tmp_path / "ds", format="captions", columns=columns)
    assert report.format_reason == "chosen by you (columns mapped by you)"
    [sample] = load(tmp_path / "ds")
    assert sample.messages[0].content == "<image>\nColour?" and sample.messages[1].content == "A red square."


def test_mapping_to_a_missing_column_suggests(tmp_path):
    (tmp_path / "t.csv").write_text("image_path,caption\na.png,x\n")
    with pytest.raises(DatasetImportError) as info:
        import_dataset(tmp_path / "t.csv", tmp_path / "ds", columns={"text": "captions"})
    assert "did you mean 'caption'?" in str(info.value)
    assert not (tmp_path / "ds").exists()


def test_detection_prefers_the_specific_format():
    from core.datasets.detect import detect_format
    assert detect_format([{"messages": [{"role": "user", "content": "hi"}]}]).format == "sharegpt"
    assert detect_format([{"messages": [{"role": "user", "content": [{"type": "text"}]}]}]).format == "openai"
    assert detect_format([{"conversations": [{"from": "human", "value": "x"}], "image": "a"}]).format == "llava"
    assert detect_format([{"conversations": [{"from": "human", "value": "x"}], "images": ["a"]}]).format == "sharegpt"
    assert detect_format([{"instruction": "x", "output": "y", "image": "a.png"}]).format == "alpaca"
    assert detect_format([{"image_path": "a.png", "text": "y"}]).format == "captions"


# --- the real files in ../shared/compat --------------------------------------------------------------------------
needs_compat = pytest.mark.skipif(not COMPAT.is_dir(), reason="shared/ is not beside the repository")


@needs_compat
def test_llamafactory_mllm_demo(tmp_path):
    report = import_dataset(COMPAT / "llamafactory" / "mllm_demo.json", tmp_path / "ds")
    assert (report.format, report.rows_kept, report.rows_excluded, report.images) == ("sharegpt", 6, 0, 3)
    samples = load(tmp_path / "ds")
    assert samples[0].messages[0].content == "<image>Who are they?" and len(samples[0].images) == 2
    assert samples[0].images[0] == samples[0].images[1]


@needs_compat
def test_llamafactory_v1_multimodal_demo_paths_relative_to_its_repo_root(tmp_path):
    report = import_dataset(COMPAT / "llamafactory" / "v1_multimodal_demo.jsonl", tmp_path / "ds")
    assert (report.format, report.rows_kept, report.rows_excluded, report.images) == ("openai", 24, 0, 3)
    assert "'data/'" in report.image_note
    samples = load(tmp_path / "ds")
    assert samples[0].messages[0].content == "<image>Who are they?"
    assert samples[0].messages[2].content == "What are they doing?<image>"


@needs_compat
@pytest.mark.parametrize("name,rows", [("alpaca_en_demo.json", 999), ("identity.json", 91)])
def test_llamafactory_text_datasets(tmp_path, name, rows):
    report = import_dataset(COMPAT / "llamafactory" / name, tmp_path / "ds")
    assert (report.format, report.rows_kept, report.rows_excluded, report.images) == ("alpaca", rows, 0, 0)
    assert all(roles(s)[-1] == "assistant" for s in load(tmp_path / "ds"))


@needs_compat
def test_llava_photos_in_a_llava_dataset(tmp_path):
    rows = [{"id": name, "image": f"{name}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is unusual about this image?"}, {"from": "gpt", "value": "It is."}]}
        for name in ("extreme_ironing", "waterview")]
    (tmp_path / "llava.json").write_text(json.dumps(rows))
    report = validate_dataset(tmp_path / "llava.json", image_root=COMPAT / "llava")
    assert (report.format, report.rows_kept, report.images) == ("llava", 2, 2)
    assert report.image_root == str((COMPAT / "llava").resolve())
