"""Every bad input of the corpus gives its specific problem, with the right line and field, and nothing half-made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dataset_support import bad_inputs_copy, leftovers, solid

from core.datasets.importer import DatasetImportError, import_dataset, validate_dataset
from core.datasets.limits import ImportLimits
from core.datasets.records import SAMPLES_FILE, read_samples
from core.problems import ProblemsError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return bad_inputs_copy(tmp_path_factory.mktemp("corpus"))


def row_start_line(path: Path, index: int) -> int:
    """The line where the index-th row of an indent=1 JSON list starts."""
    starts = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line == " {"]
    return starts[index]


def only(report, kind: str):
    assert report.problem_counts.get(kind) == 1, report.problem_counts
    [problem] = [p for g in report.problem_groups if g["kind"] == kind for p in g["problems"]]
    return problem


# file, kind, line, field, words in the message, rows kept of rows total
PARTIAL = [
    ("truncated_last_line.jsonl", "json_syntax", 3, None, "ends before its JSON object is complete", (2, 3)),
    ("trailing_comma.jsonl", "json_syntax", 2, None, "trailing comma after the object", (2, 3)),
    ("latin1.jsonl", "encoding", 2, None, "not valid utf-8 text: byte 0xe9", (2, 3)),
    ("messages_string.jsonl", "wrong_type", 2, "messages", "'messages' is a string; expected a list of turns", (2, 3)),
    ("mixed_types.jsonl", "mixed_types", 3, "text", "holds a number here (42) but a string in earlier rows", (2, 3)),
    ("image_count.jsonl", "image_count", 2, "messages", "2 <image> placeholders in the messages but 1 image", (1, 2)),
    ("wrong_columns.csv", "csv_syntax", 3, None, "expected 2 columns (image_path, text), found 3", (2, 3)),
]


@pytest.mark.parametrize("name,kind,line,field,words,counts", PARTIAL, ids=[p[0] for p in PARTIAL])
def test_row_level_problem(corpus, tmp_path, name, kind, line, field, words, counts):
    dest = tmp_path / "ds"
    report = import_dataset(corpus / name, dest)
    problem = only(report, kind)
    assert (problem["file"], problem["line"], problem["field"]) == (name, line, field)
    assert words in problem["message"]
    assert (report.rows_kept, report.rows_total) == counts
    assert report.rows_excluded == counts[1] - counts[0]
    assert len(list(read_samples(dest / SAMPLES_FILE))) == counts[0]
    assert json.loads((dest / "report.json").read_text())["rows_excluded"] == counts[1] - counts[0]


def test_bom_is_accepted_with_a_note(corpus, tmp_path):
    report = import_dataset(corpus / "bom.jsonl", tmp_path / "ds")
    assert (report.rows_kept, report.rows_total) == (3, 3)
    note = only(report, "note")
    assert note["severity"] == "warning" and "byte order mark" in note["message"] and note["line"] == 1


def test_trailing_comma_in_a_json_list_is_a_warning(corpus, tmp_path):
    report = import_dataset(corpus / "trailing_comma_list.json", tmp_path / "ds")
    assert report.rows_kept == 3
    warning = only(report, "json_syntax")
    assert warning["severity"] == "warning" and warning["line"] == 5
    assert "trailing comma before ']'" in warning["message"]


def test_wrong_field_name_suggests_the_close_name(corpus, tmp_path):
    path = corpus / "wrong_field_names.json"
    report = import_dataset(path, tmp_path / "ds")
    problem = only(report, "missing_field")
    assert problem["line"] == row_start_line(path, 1) and problem["field"] == "conversations"
    assert "this row has 'conversation': did you mean 'conversations'?" in problem["message"]
    assert report.rows_kept == 2


def test_wrong_field_names_everywhere_is_fatal_with_a_hint(corpus, tmp_path):
    with pytest.raises(DatasetImportError) as info:
        import_dataset(corpus / "wrong_field_names_all.json", tmp_path / "ds")
    [problem] = info.value.problems
    assert "could not tell the dataset format" in problem.message
    assert "'conversation' -> 'conversations'" in problem.message
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


def test_roles_order_and_empty_answers(corpus, tmp_path):
    report = import_dataset(corpus / "roles_and_order.jsonl", tmp_path / "ds")
    assert (report.rows_kept, report.rows_total) == (1, 4)
    role, order, empty = only(report, "role"), only(report, "turn_order"), only(report, "empty_text")
    assert (role["line"], role["field"]) == (2, "messages[1].role") and "unknown role 'bot'" in role["message"]
    assert (order["line"], order["field"]) == (3, "messages[1]") and "two user turns in a row" in order["message"]
    assert (empty["line"], empty["field"]) == (4, "messages[1]") and "empty answer" in empty["message"]


def test_path_escaping_the_root_is_a_validation_error(corpus, tmp_path):
    path = corpus / "path_escape.json"
    report = import_dataset(path, tmp_path / "ds")
    problem = only(report, "image_path")
    assert problem["line"] == row_start_line(path, 1) and problem["field"] == "image"
    assert "'../../../../etc/passwd' resolves outside the image root" in problem["message"]
    assert report.rows_kept == 1
    assert sorted(p.name for p in (tmp_path / "ds" / "images").iterdir()) == ["000001_red.png"]


IMAGE_CASES = [
    (2, "image_empty", "'images/empty.png' is an empty file (0 bytes)"),
    (3, "image_corrupt", "'images/truncated.jpg' is truncated or corrupt"),
    (4, "image_format", "'images/text.png' is not a JPEG, PNG, WebP, GIF or BMP image: it is text"),
    (5, "image_too_large", "'images/bomb.png' is 8000x8000 = 64,000,000 pixels, over the limit of 40,000,000"),
    (6, "image_too_large", "'images/huge_header.png' is 3,600,000,000 pixels"),
    (7, "image_missing", "image file 'images/missing.png' not found"),
]


def test_bad_images(corpus, tmp_path):
    report = import_dataset(corpus / "bad_images.jsonl", tmp_path / "ds")
    assert (report.rows_kept, report.rows_total, report.images) == (1, 7, 1)
    found = {(p.line, p.field): p.message for p in report.problems}
    for line, kind, words in IMAGE_CASES:
        assert words in found[(line, "image_path")], (line, found)
        assert report.problem_counts[kind] >= 1
    assert report.problem_counts["image_too_large"] == 2


def test_pixel_limit_is_configurable(corpus):
    report = validate_dataset(corpus / "bad_images.jsonl", limits=ImportLimits(max_image_pixels=10))
    assert report.rows_kept == 0 and report.problem_counts["image_too_large"] == 3 and not report.written


def test_malformed_json_list_is_fatal_and_leaves_nothing(corpus, tmp_path):
    with pytest.raises(ProblemsError) as info:
        import_dataset(corpus / "malformed_middle.json", tmp_path / "ds")
    [problem] = info.value.problems
    assert problem.line == 3 and "Expecting ',' delimiter" in problem.message
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


def test_all_rows_bad_is_fatal_and_leaves_nothing(corpus, tmp_path):
    with pytest.raises(DatasetImportError) as info:
        import_dataset(corpus / "bad_images.jsonl", tmp_path / "ds", limits=ImportLimits(max_image_pixels=10))
    assert info.value.report is not None and info.value.report.rows_kept == 0
    assert any("over the limit of 10" in p.message for p in info.value.problems)
    assert not (tmp_path / "ds").exists() and leftovers(tmp_path) == []


def test_problems_are_grouped_and_capped(tmp_path):
    rows = [{"image_path": f"missing/{i}.png", "text": "x"} for i in range(60)]
    rows.append({"image_path": "ok.png", "text": "fine"})
    solid(tmp_path / "ok.png")
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = import_dataset(tmp_path / "data.jsonl", tmp_path / "ds", limits=ImportLimits(max_problems_per_kind=5))
    assert report.problem_counts == {"image_missing": 60}
    [group] = report.problem_groups
    assert (group["count"], group["shown"], group["title"]) == (60, 5, "image file not found")
    assert [p["line"] for p in group["problems"]] == [1, 2, 3, 4, 5]
    summary = report.summary()
    assert summary["problem_count"] == 60 and summary["rows_excluded"] == 60
    json.dumps(summary)


def test_accepted_image_formats(tmp_path):
    from PIL import Image

    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "a.webp")
    frames[0].save(tmp_path / "a.bmp")
    frames[0].save(tmp_path / "jpeg_named.png", format="JPEG")
    frames[0].save(tmp_path / "a.tiff")
    names = ["anim.gif", "a.webp", "a.bmp", "jpeg_named.png", "a.tiff"]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"image_path": n, "text": "x"}) + "\n" for n in names))
    report = import_dataset(tmp_path / "d.jsonl", tmp_path / "ds")
    assert (report.rows_kept, report.images) == (4, 4)
    [problem] = report.problems
    assert problem.line == 5
    assert "'a.tiff' is not a JPEG, PNG, WebP, GIF or BMP image: it is a TIFF image" in problem.message
