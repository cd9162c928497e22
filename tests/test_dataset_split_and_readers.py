"""Train/eval split by ratio or file, deterministic by seed; streaming readers keep exact line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_dataset_support import solid

from core.datasets import readers
from core.datasets.importer import DatasetImportError, import_dataset, validate_dataset
from core.datasets.records import SAMPLES_FILE, read_samples
from core.datasets.split import EVAL_FILE, choose_eval_rows, read_split_info


def chat_rows(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"question {i}"},
                                         {"role": "assistant", "content": f"answer {i}"}]} for i in range(start, n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def ids(path: Path) -> list[str]:
    return [s.id for s in read_samples(path)]


def test_ratio_split_is_deterministic_by_seed(tmp_path):
    src = write_jsonl(tmp_path / "d.jsonl", chat_rows(50))
    a = import_dataset(src, tmp_path / "a", eval_ratio=0.2, seed=7)
    import_dataset(src, tmp_path / "b", eval_ratio=0.2, seed=7)
    c = import_dataset(src, tmp_path / "c", eval_ratio=0.2, seed=8)
    assert (a.rows_train, a.rows_eval, a.rows_kept) == (40, 10, 50)
    assert ids(tmp_path / "a" / EVAL_FILE) == ids(tmp_path / "b" / EVAL_FILE) != ids(tmp_path / "c" / EVAL_FILE)
    assert sorted(ids(tmp_path / "a" / SAMPLES_FILE) + ids(tmp_path / "a" / EVAL_FILE)) == sorted(f"r{i}" for i in
                                                                                                   range(50))
    info = read_split_info(tmp_path / "a")
    assert info == {"eval_file": EVAL_FILE, "rows_train": 40, "rows_eval": 10, "eval_ratio": 0.2, "seed": 7,
                    "eval_source": None}
    assert c.summary()["rows_eval"] == 10


def test_split_never_takes_every_row():
    assert choose_eval_rows(1, 0.5, 0) == set() and len(choose_eval_rows(2, 0.01, 0)) == 1
    assert len(choose_eval_rows(4, 0.5, 0)) == 2 and len(choose_eval_rows(10, 0.5, 3)) == 5


def test_bad_ratio_is_refused(tmp_path):
    with pytest.raises(DatasetImportError, match="eval share"):
        import_dataset(write_jsonl(tmp_path / "d.jsonl", chat_rows(4)), tmp_path / "ds", eval_ratio=0.9)


def test_separate_eval_file(tmp_path):
    solid(tmp_path / "evals" / "e.png")
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(5))
    eval_rows = chat_rows(8, 5) + [{"messages": [{"role": "user", "content": "<image>x"},
                                                 {"role": "assistant", "content": "y"}], "images": ["e.png"]}]
    evals = write_jsonl(tmp_path / "evals" / "eval.jsonl", eval_rows)
    report = import_dataset(train, tmp_path / "ds", eval_source=evals)
    assert (report.rows_train, report.rows_eval, report.images, report.eval_file) == (5, 4, 1, "eval.jsonl")
    assert ids(tmp_path / "ds" / EVAL_FILE)[:3] == ["r5", "r6", "r7"]
    assert read_split_info(tmp_path / "ds")["eval_source"] == "eval.jsonl"


def test_folder_with_train_and_eval_files(tmp_path):
    (tmp_path / "src").mkdir()
    write_jsonl(tmp_path / "src" / "train.jsonl", chat_rows(3))
    write_jsonl(tmp_path / "src" / "validation.jsonl", chat_rows(5, 3))
    report = import_dataset(tmp_path / "src", tmp_path / "ds")
    assert (report.rows_train, report.rows_eval) == (3, 2) and "for evaluation" in report.source_note


def test_folder_with_several_data_files_asks_which(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ("a.jsonl", "b.jsonl", "c.json"):
        write_jsonl(tmp_path / "src" / name, chat_rows(2))
    with pytest.raises(DatasetImportError, match="holds 3 data files"):
        import_dataset(tmp_path / "src", tmp_path / "ds")
    assert import_dataset(tmp_path / "src", tmp_path / "ds", data_file="b.jsonl").rows_kept == 2


def test_json_list_streams_across_chunks_with_exact_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK", 64)
    rows = chat_rows(30)
    rows[17]["messages"][1]["content"] = ""  # an empty answer at a known line
    text = json.dumps(rows, indent=2)
    (tmp_path / "d.json").write_text(text)
    starts = [n for n, t in enumerate(text.splitlines(), 1) if t == "  {"]
    report = validate_dataset(tmp_path / "d.json")
    assert report.rows_kept == 29 and [p.line for p in report.problems] == [starts[17]]


def test_json_list_truncated_keeps_earlier_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK", 100)
    text = json.dumps(chat_rows(6), indent=1)
    (tmp_path / "d.json").write_text(text[: len(text) - 40])
    report = validate_dataset(tmp_path / "d.json")
    assert report.rows_kept == 5 and report.problem_counts == {"json_syntax": 1}
    assert "the file ends inside this row" in report.problems[0].message


def test_top_level_object_with_a_data_list(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"version": 1, "data": chat_rows(3)}))
    assert validate_dataset(tmp_path / "d.json").rows_kept == 3


def test_json_file_holding_json_lines(tmp_path):
    write_jsonl(tmp_path / "d.json", chat_rows(4))
    assert validate_dataset(tmp_path / "d.json").rows_kept == 4


def test_csv_line_numbers_count_quoted_line_breaks(tmp_path):
    solid(tmp_path / "a.png")
    (tmp_path / "d.csv").write_text('image_path,text\na.png,"two\nlines"\na.png,\na.png,fine\n')
    report = validate_dataset(tmp_path / "d.csv")
    assert report.rows_kept == 2 and [(p.line, p.field) for p in report.problems] == [(4, "text")]
    assert "empty answer" in report.problems[0].message


def test_tsv_and_semicolon_csv(tmp_path):
    solid(tmp_path / "a.png")
    (tmp_path / "d.tsv").write_text("image_path\ttext\na.png\tA red square, small.\n")
    (tmp_path / "e.csv").write_text("image_path;text\na.png;A red square, small.\n")
    assert validate_dataset(tmp_path / "d.tsv").rows_kept == 1
    assert validate_dataset(tmp_path / "e.csv").rows_kept == 1


def test_encoding_can_be_chosen(tmp_path):
    rows = chat_rows(2)
    rows[1]["messages"][1]["content"] = "café"
    (tmp_path / "d.jsonl").write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("cp1252"))
    assert validate_dataset(tmp_path / "d.jsonl").problem_counts == {"encoding": 1}
    report = import_dataset(tmp_path / "d.jsonl", tmp_path / "ds", encoding="cp1252")
    assert report.rows_kept == 2 and list(read_samples(tmp_path / "ds" / SAMPLES_FILE))[1].messages[1].content == "café"


def test_utf16_is_named(tmp_path):
    (tmp_path / "d.jsonl").write_bytes(json.dumps(chat_rows(1)[0]).encode("utf-16"))
    with pytest.raises(DatasetImportError, match="UTF-16"):
        validate_dataset(tmp_path / "d.jsonl")


def test_progress_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr("core.datasets.importer._Ticker.interval", 0.0)
    seen = []
    import_dataset(write_jsonl(tmp_path / "d.jsonl", chat_rows(20)), tmp_path / "ds", eval_ratio=0.1,
                   progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) > 5
    assert "rows kept" in seen[-1][1]
