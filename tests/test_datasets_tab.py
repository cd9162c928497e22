"""The Datasets tab through the real app and gradio_client: inspect, map, validate, register, rename, delete, stats,
preview; and the registry behind it: restarts, size limits, nothing half-registered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from jobs_helpers import fast_config
from test_app_e2e import free_port
from test_dataset_support import FORMATS, bad_inputs_copy, solid

from core.datasets.catalog import ImportRequest
from core.problems import ProblemsError
from core.runs.launcher import record_run
from core.train_config import TINY_MODEL
from webui.datasets_tab import SLOTS
from webui.i18n import resolve


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    from gradio_client import Client

    import app as studio_app

    root = tmp_path_factory.mktemp("tab") / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    port = free_port()
    blocks, studio = studio_app.launch(studio_app.parse_args(["--port", str(port), "--data-dir", str(root)]),
                                       block=False)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    yield client, studio
    client.close()
    blocks.close()
    studio.registry.dispose()


def names(table: dict) -> list[str]:
    return [row[0] for row in table["data"]]


def row_of(table: dict, name: str) -> dict:
    return next(dict(zip(table["headers"], row, strict=True)) for row in table["data"] if row[0] == name)


def import_via_api(client, name: str, path: str = "", files: list | None = None, **options: object) -> tuple:
    columns = {f"column_{slot}": value for slot, value in (options.pop("columns", None) or {}).items()}
    return client.predict(paths=files or [], path=path, dataset_name=name, eval_upload=None, **options, **columns,
                          api_name="/import_dataset")


def test_inspect_override_map_columns_and_register_with_a_split(app, tmp_path: Path) -> None:
    client, studio = app
    for colour in ("red", "blue", "green", "yellow"):
        solid(tmp_path / "pics" / f"{colour}.png")
    (tmp_path / "shapes.csv").write_text("picture,desc,q\n" + "".join(
        f"pics/{c}.png,A {c} square.,Colour?\n" for c in ("red", "blue", "green", "yellow")))
    source = str(tmp_path / "shapes.csv")

    text, fmt, *slots = client.predict([], source, "", "", "", api_name="/inspect_dataset")
    assert "could not be detected" in text and "picture" in text and "Traceback" not in text
    text, fmt, *slots = client.predict([], source, "", "captions", "", api_name="/inspect_dataset")
    shown = {slot: box for slot, box in zip(SLOTS, slots, strict=True) if box.get("visible")}
    assert set(shown) == {"image", "text", "prompt", "id"}
    assert {c[0] for c in shown["image"]["choices"]} >= {"picture", "desc", "q"}
    assert resolve(shown["image"]["label"]) == "Required column for 'image'"  # as an English browser shows it
    assert resolve(shown["id"]["label"], "zh-CN") == "对应列： 'id'"

    report, table, chosen = import_via_api(client, "mapped", source, chosen_format="captions", ratio=0.25,
                                           columns={"image": "picture", "text": "desc", "prompt": "q"})
    assert "✅ Registered **mapped**: 4 rows, 4 images" in report, report
    assert "chosen by you (columns mapped by you)" in report and "3 rows to train on, 1 for evaluation" in report
    assert f"`{tmp_path.resolve()}`" in report  # the image root that was used
    row = row_of(table, "mapped")
    assert (row["format"], row["train"], row["eval"], row["validation"], row["source"]) == (
        "captions", 3, 1, "clean", str(tmp_path.resolve() / "shapes.csv"))
    assert chosen["value"] == "mapped"
    _, samples = studio.dataset_rows("mapped")
    assert samples[0].messages[0].content == "<image>\nColour?" and samples[0].messages[1].content.endswith("square.")


def test_bad_rows_are_reported_grouped_with_file_line_and_field(app, tmp_path: Path) -> None:
    client, studio = app
    corpus = bad_inputs_copy(tmp_path)
    report = client.predict([], str(corpus / "roles_and_order.jsonl"), "", "", "", 0, "", None,
                            api_name="/validate_dataset")
    assert report.startswith("🔎 Checked (nothing registered): 1 row,") and "**3 of 4 rows were excluded**" in report
    assert "**3 problems, by kind**" in report
    assert "**unknown role**: 1" in report and "**turn order**: 1" in report and "**empty text or answer**: 1" in report
    assert "`roles_and_order.jsonl:2, field 'messages[1].role'` — unknown role 'bot'" in report
    assert "`roles_and_order.jsonl:3, field 'messages[1]'` — two user turns in a row" in report
    assert studio.registry.find_dataset("roles") is None

    report, table, _ = import_via_api(client, "images", str(corpus / "bad_images.jsonl"))
    assert "Registered **images**" in report and "rows were excluded" in report
    for title in ("empty image file", "truncated or unreadable image", "image too large", "image file not found"):
        assert f"**{title}**" in report, title
    assert "`bad_images.jsonl:2, field 'image_path'` — image 'images/empty.png' is an empty file" in report
    assert "excluded" in row_of(table, "images")["validation"]

    before = names(table)
    report, table, chosen = import_via_api(client, "broken", str(corpus / "malformed_middle.json"))
    assert report.startswith("**Please fix these first:**") and "Nothing was registered" in report
    assert "`malformed_middle.json:3` — malformed JSON in the row starting at line 3" in report
    assert "Traceback" not in report and names(table) == before and chosen == {"__type__": "update"}
    assert not list((studio.paths.datasets_dir).glob(".import-*"))  # nothing half-made


def test_upload_files_with_the_legacy_endpoint_then_rename_and_delete(app) -> None:
    from gradio_client import handle_file

    client, studio = app
    files = [handle_file(str(FORMATS / "llava.json")), handle_file(str(FORMATS / "images" / "red.png")),
             handle_file(str(FORMATS / "images" / "blue.png"))]
    report, table, chosen = client.predict(files, "uploaded", api_name="/register_dataset")
    assert "Registered **uploaded**: 3 rows, 2 images" in report
    assert row_of(table, "uploaded")["source"] == "upload: llava.json, red.png, blue.png"
    folder = Path(studio.registry.find_dataset("uploaded").path)

    message, table, chosen, _ = client.predict("uploaded", "sample", api_name="/rename_dataset")
    assert "exists already" in message and "uploaded" in names(table)
    message, table, chosen, _ = client.predict("uploaded", "renamed set", api_name="/rename_dataset")
    assert "Renamed" in message and "renamed set" in names(table) and "uploaded" not in names(table)
    assert chosen["value"] == "renamed set"

    prompt = client.predict("renamed set", api_name="/delete_dataset_prompt")
    assert "Really delete" in prompt and "trained on it" not in prompt  # no run uses it yet
    run_id, _ = record_run(studio.paths, studio.registry, fast_config(run_name="uses-it", dataset="renamed set"))
    prompt = client.predict("renamed set", api_name="/delete_dataset_prompt")
    assert f"1 run trained on it: {run_id} (uses-it, queued)" in prompt and "cannot be resumed" in prompt

    message, table, chosen = client.predict("renamed set", api_name="/delete_dataset")
    assert "Deleted **renamed set**" in message and "renamed set" not in names(table)
    assert not folder.exists() and studio.registry.find_dataset("renamed set") is None
    message, *_ = client.predict("renamed set", api_name="/delete_dataset")
    assert "no registered dataset named 'renamed set'" in message


def test_uploaded_eval_file_is_stored_as_the_split(app, tmp_path: Path) -> None:
    import json

    from gradio_client import handle_file

    client, studio = app
    rows = json.loads((FORMATS / "llava.json").read_text())
    (tmp_path / "held_out.json").write_text(json.dumps(rows[:1]))
    files = [handle_file(str(p)) for p in (FORMATS / "llava.json", tmp_path / "held_out.json",
                                           FORMATS / "images" / "red.png", FORMATS / "images" / "blue.png")]
    report, table, _ = import_via_api(client, "with eval", files=files, eval_text="held_out.json")
    assert "choose which one to import" in report and "Nothing was registered" in report
    report, table, _ = import_via_api(client, "with eval", files=files, data="llava.json", eval_text="held_out.json")
    assert "3 rows to train on, 1 for evaluation (from `held_out.json`)" in report, report
    assert (row_of(table, "with eval")["train"], row_of(table, "with eval")["eval"]) == (3, 1)
    folder = Path(studio.registry.find_dataset("with eval").path)
    assert json.loads((folder / "split.json").read_text())["rows_eval"] == 1 and (folder / "eval.jsonl").is_file()


def test_statistics_and_preview_endpoints(app) -> None:
    client, _ = app
    text, plot = client.predict("sample", TINY_MODEL, 40, api_name="/dataset_stats")
    assert "**24 training rows**" in text and "cuts **12** rows" in text and "No duplicate rows" in text
    frame = plot
    rows = [dict(zip(frame["columns"], r, strict=True)) for r in frame["data"]]
    assert sum(r["rows"] for r in rows) == 24 and sum(r["rows"] for r in rows if r["max length"] == "cut") == 12

    text, plot = client.predict("sample", "no-such-org/no-such-model", 40, api_name="/dataset_stats")
    assert text.startswith("**Please fix these first:**") and "no-such-org/no-such-model" in text and plot is None

    pictures, conversation, seen, info = client.predict("sample", 2, TINY_MODEL, 512, api_name="/preview_row")
    assert len(pictures) == 1 and "red-triangle-0" in info and "trained" in info
    spans = [(s["token"], s["class_or_confidence"]) for s in seen]
    trained = "".join(t for t, kind in spans if kind == "trained")
    assert "The shape is red." in trained and "It is a triangle." in trained and "colour" not in trained
    assert ("<image ×16>", "masked") in spans
    assert [r[0] for r in conversation["data"]] == ["user", "assistant", "user", "assistant"]

    gallery, table = client.predict("sample", api_name="/preview_dataset")
    assert len(gallery) == 20 and table["data"][0][1] == "red-circle-0"


def test_registry_survives_a_restart_and_deleting_the_sample_sticks(data_dir: Path) -> None:
    from core.studio import Studio

    first = Studio(data_dir)
    first.register_dataset(ImportRequest(server_path=str(FORMATS / "sharegpt.json")), "kept")
    assert {d.name for d in first.list_datasets()} == {"kept", "sample", "shapes-qa"}
    first.delete_dataset("sample")
    first.delete_dataset("shapes-qa")
    first.close()

    second = Studio(data_dir)
    [kept] = second.list_datasets()
    assert (kept.name, kept.format, kept.rows, kept.images) == ("kept", "sharegpt", 2, 2)
    assert kept.source == str(FORMATS / "sharegpt.json") and kept.summary["rows_excluded"] == 0
    assert kept.summary["format_reason"] and Path(kept.path, "samples.jsonl").is_file()
    assert second.dataset_rows("sample")[1]  # asked for by name, the sample comes back
    assert second.dataset_rows("shapes-qa")[1] and second.catalog.get("shapes-qa").summary["rows_eval"] == 96
    second.close()


def test_server_paths_and_uploads_respect_the_configured_size_limit(studio, tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_text('{"instruction": "x", "output": "y"}\n' * 100)  # 3.5 KB
    studio.set_upload_limit("2kb")
    for request, field in ((ImportRequest(server_path=str(big)), "server_path"), (ImportRequest(files=[big]), "files"),
                           (ImportRequest(server_path=str(tmp_path)), "server_path")):  # a folder counts whole
        with pytest.raises(ProblemsError) as e:
            studio.register_dataset(request, "big")
        [problem] = e.value.problems
        assert problem.field == field and "3.5 KB, over the studio's limit of 2.0 KB" in problem.message
        assert "--max-upload" in problem.message
    assert studio.registry.find_dataset("big") is None and not list(studio.paths.uploads_dir.iterdir())
    studio.set_upload_limit("1mb")
    record, _ = studio.register_dataset(ImportRequest(server_path=str(big)), "big")
    assert record.rows == 100


def test_the_data_directory_is_not_a_source(studio) -> None:
    info = studio.inspect_dataset(ImportRequest(server_path=str(studio.paths.db_file)))
    assert info["format"] is None and "inside the studio's data directory" in info["problems"][0]["message"]
    with pytest.raises(ProblemsError, match="upload the dataset's files, or give a path"):
        studio.register_dataset(ImportRequest(), "nothing")
