"""Datasets from the datasets library and the Hugging Face Hub, offline: save_to_disk folders, Parquet shards, the
Hub's VLM layouts, a local repo folder, the local cache, a fake Hub for the online path, and the errors."""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image as PILImage
from test_datasets_tab import app as app  # the running studio, shared with the tab tests

from core.datasets.catalog import ImportRequest
from core.datasets.importer import SOURCE_FILE, DatasetImportError, import_dataset, validate_dataset
from core.datasets.peek import inspect_source
from core.datasets.records import SAMPLES_FILE, read_samples
from core.problems import ProblemsError
from core.runs.files import DATASET_FILE

SHA = "0123456789abcdef0123456789abcdef01234567"
SECRET = "hf_thisIsNotARealTokenButMustNeverBeShown"


def png(colour: str, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()


def image_features():
    from datasets import Features, Image, List, Value

    return Features, Image, List, Value


def cauldron_rows(n: int, offset: int = 0) -> dict:
    colours = ["red", "blue", "green", "yellow", "purple", "orange"]
    return {"images": [[{"bytes": png(colours[(i + offset) % 6]), "path": None}] for i in range(n)],
            "texts": [[{"user": "What colour is the square?", "assistant": f"It is {colours[(i + offset) % 6]}.",
                        "source": "test"}] for i in range(n)]}


def cauldron_dataset(n: int, offset: int = 0):
    from datasets import Dataset

    Features, Image, List, Value = image_features()
    features = Features({"images": List(Image()), "texts": List({"user": Value("string"),
                                                                 "assistant": Value("string"),
                                                                 "source": Value("string")})})
    return Dataset.from_dict(cauldron_rows(n, offset), features=features)


def write_repo(folder: Path, configs: dict[str, dict[str, int]]) -> Path:
    """A folder laid out as a Hub dataset repo: a README naming the configs, <config>/<split>-0000k-of-0000n.parquet
    shards of the_cauldron's layout (3 rows each)."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: {config}", "  data_files:"]
        for split, shards in splits.items():
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
            for k in range(shards):
                path = folder / config / f"{split}-{k:05d}-of-{shards:05d}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                cauldron_dataset(3, offset=k).to_parquet(str(path))
    (folder / "README.md").write_text("\n".join(lines + ["---", "# A test dataset", ""]))
    return folder


def samples(folder: Path) -> list:
    return list(read_samples(folder / SAMPLES_FILE))


# --- datasets folders -----------------------------------------------------------------------------------------------
def test_a_save_to_disk_folder_imports_with_its_rows_and_images(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict, Image

    for colour in ("red", "blue", "green"):
        PILImage.new("RGB", (8, 8), colour).save(tmp_path / f"{colour}.png")
    rows = {"image": [str(tmp_path / f"{c}.png") for c in ("red", "blue", "green", "red")],
            "text": ["A red square.", "A blue square.", "A green square.", "Red again."]}
    saved = Dataset.from_dict(rows).cast_column("image", Image())
    saved.save_to_disk(str(tmp_path / "saved"))
    DatasetDict({"train": saved, "test": saved.select([1])}).save_to_disk(str(tmp_path / "dict"))
    for colour in ("red", "blue", "green"):
        (tmp_path / f"{colour}.png").unlink()  # save_to_disk embedded the images: the originals are not needed
    report = import_dataset(tmp_path / "saved", tmp_path / "ds")
    assert (report.rows_total, report.rows_kept, report.images) == (4, 4, 3)
    assert report.format == "captions" and "embedded images" in report.format_reason
    assert "save_to_disk" in report.source_note
    first = samples(tmp_path / "ds")[0]
    with PILImage.open(tmp_path / "ds" / first.images[0]) as img:
        assert img.getpixel((0, 0)) == (255, 0, 0)

    assert validate_dataset(tmp_path / "dict").rows_kept == 4  # train by default
    test = validate_dataset(tmp_path / "dict", split="test")
    assert test.rows_kept == 1 and test.images == 1 and "'test'" in test.source_note
    with pytest.raises(DatasetImportError, match=r"no split 'tset'; its splits are train, test"):
        validate_dataset(tmp_path / "dict", split="tset")
    with zipfile.ZipFile(tmp_path / "saved.zip", "w") as zf:  # the folder zipped, and one of its Arrow files alone
        for file in (tmp_path / "saved").iterdir():
            zf.write(file, f"saved/{file.name}")
    assert validate_dataset(tmp_path / "saved.zip").rows_kept == 4
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    assert validate_dataset(arrow).images == 3


def test_a_folder_of_parquet_shards_imports_every_shard(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    for k in range(3):
        cauldron_dataset(3, offset=k).to_parquet(str(folder / f"train-{k:05d}-of-00003.parquet"))
    report = import_dataset(folder, tmp_path / "ds")
    assert (report.rows_kept, report.images) == (9, 5) and report.format == "cauldron"  # 5 distinct colours
    ids = [s.id for s in samples(tmp_path / "ds")]
    assert len(set(ids)) == 9 and ids[3].startswith("train-00001-of-00003")  # each shard's rows keep their file
    limited = validate_dataset(folder, row_limit=4)
    assert limited.rows_total == 4 and limited.row_limit == 4 and limited.rows_available is None


# --- the Hub's layouts ----------------------------------------------------------------------------------------------
def layouts() -> dict[str, tuple[dict, object, str, int]]:
    """name -> (columns, features, expected format, expected images)."""
    Features, Image, List, Value = image_features()
    red, blue = {"bytes": png("red"), "path": "red.png"}, {"bytes": png("blue"), "path": "blue.png"}
    turn = {"role": Value("string"), "content": Value("string")}
    part = List({"type": Value("string"), "text": Value("string")})
    return {
        "cauldron": (cauldron_rows(3), None, "cauldron", 3),
        "messages-parts-with-images": (
            {"messages": [[{"role": "user", "content": [{"type": "image", "text": None},
                                                        {"type": "text", "text": "Colour?"}]},
                           {"role": "assistant", "content": [{"type": "text", "text": c}]}] for c in ("Red.", "Blue.")],
             "images": [[red], [blue]]},
            Features({"messages": List({"role": Value("string"), "content": part}), "images": List(Image())}),
            "openai", 2),
        "messages-with-image": (
            {"messages": [[{"role": "user", "content": "<image>What colour?"},
                           {"role": "assistant", "content": c}] for c in ("Red.", "Blue.")], "image": [red, blue]},
            Features({"messages": List(turn), "image": Image()}), "sharegpt", 2),
        "conversations-with-image": (
            {"conversations": [[{"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": c}]
                               for c in ("Red.", "Blue.")], "image": [red, blue]},
            Features({"conversations": List({"from": Value("string"), "value": Value("string")}),
                      "image": Image()}), "llava", 2),
        "question-answer": (
            {"question": ["What colour?", "And this one?"], "answer": ["Red.", "Blue."], "image": [red, blue]},
            Features({"question": Value("string"), "answer": Value("string"), "image": Image()}), "qa", 2),
        "query-response-list": (
            {"query": ["Compare them.", "Which is red?"], "response": ["Red, then blue.", "The first."],
             "images": [[red, blue], [red, blue]]},
            Features({"query": Value("string"), "response": Value("string"), "images": List(Image())}), "qa", 2),
        "scienceqa-choices": (
            {"question": ["Which colour is shown?", "What is 2 + 2?"], "choices": [["red", "blue"], ["3", "4"]],
             "answer": [0, 1], "image": [red, None]},
            Features({"question": Value("string"), "choices": List(Value("string")), "answer": Value("int64"),
                      "image": Image()}), "qa", 1),
    }


@pytest.mark.parametrize("name", list(layouts()))
def test_each_hub_layout_written_as_parquet_imports(tmp_path: Path, name: str) -> None:
    from datasets import Dataset

    columns, features, expected, images = layouts()[name]
    table = cauldron_dataset(3) if features is None else Dataset.from_dict(columns, features=features)
    table.to_parquet(str(tmp_path / "train-00000-of-00001.parquet"))
    report = import_dataset(tmp_path / "train-00000-of-00001.parquet", tmp_path / "ds")
    assert report.format == expected, report.format_reason
    assert report.rows_kept == report.rows_total == len(table) and report.images == images, report.problem_groups
    assert "image features" in report.format_reason or images == 0
    rows = samples(tmp_path / "ds")
    assert all(s.placeholder_count() == len(s.images) for s in rows)
    if name == "scienceqa-choices":
        assert rows[1].messages[-1].content == "4" and "B. 4" in rows[1].messages[0].content and not rows[1].images
    if name == "cauldron":
        assert rows[0].messages[0].content.startswith("<image>") and rows[0].messages[1].content == "It is red."


def test_columns_that_fit_no_format_are_listed_with_the_mapping_offered(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_dict({"picture": [{"bytes": png("red"), "path": None}], "words": ["hi"]}).to_parquet(
        str(tmp_path / "odd.parquet"))
    info = inspect_source(tmp_path / "odd.parquet")
    message = info["problems"][0]["message"]
    assert info["format"] is None and info["keys"] == ["picture", "words"]
    assert "'picture', 'words'" in message and "map these columns" in message
    mapped = validate_dataset(tmp_path / "odd.parquet", format="captions", columns={"image": "picture",
                                                                                    "text": "words"})
    assert mapped.rows_kept == 1 and mapped.images == 1


# --- the Hub path: a local repo folder, the local cache, offline, a fake Hub ----------------------------------------
def test_the_hub_path_reads_a_local_folder_laid_out_as_a_hub_repo(studio, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"ai2d": {"train": 2, "test": 1}, "vqa": {"train": 1}})
    with pytest.raises(ProblemsError, match="2 configs \\(subsets\\): ai2d, vqa"):
        studio.validate_dataset(ImportRequest(hub_id=str(repo)))
    info = studio.inspect_dataset(ImportRequest(hub_id=str(repo), config="ai2d"))
    assert info["format"] == "cauldron" and "(ai2d, train)" in info["source_file"]
    record, summary = studio.register_dataset(ImportRequest(hub_id=str(repo), config="ai2d", split="test"), "local")
    assert summary["rows_kept"] == 3 and record.hub_id is None and "(ai2d, test)" in summary["source_file"]
    assert record.source == str(repo.resolve())  # a local folder is not passed off as a Hub dataset
    with pytest.raises(ProblemsError, match="no split 'dev'; its splits are train, test"):
        studio.validate_dataset(ImportRequest(hub_id=str(repo), config="ai2d", split="dev"))
    with pytest.raises(ProblemsError, match="no config \\(subset\\) 'ocr'; its configs are ai2d, vqa"):
        studio.validate_dataset(ImportRequest(hub_id=str(repo), config="ocr"))


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache that huggingface_hub uses for this test."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return cache


def cached_repo(cache: Path, repo_id: str, configs: dict[str, dict[str, int]]) -> Path:
    """``repo_id`` as huggingface_hub stores a download: refs/main naming a commit, and its snapshot."""
    folder = cache / ("datasets--" + repo_id.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(SHA)
    write_repo(folder / "snapshots" / SHA, configs)
    return folder


def test_offline_the_hub_path_reads_the_local_cache_and_records_the_commit(studio, hub_cache: Path) -> None:
    cached_repo(hub_cache, "someone/shapes", {"default": {"train": 2}})
    request = ImportRequest(hub_id="someone/shapes")
    info = studio.inspect_dataset(request)
    assert info["format"] == "cauldron" and "local Hugging Face cache" in info["source_note"], info["problems"]
    record, summary = studio.register_dataset(request, "from-cache")
    assert summary["rows_kept"] == 6 and summary["images"] == 4  # 4 distinct colours over the two shards
    assert (record.hub_id, record.hub_revision, record.hub_split) == ("someone/shapes", SHA, "train")
    assert record.source.startswith("hub: someone/shapes@0123456789ab")
    assert json.loads((Path(record.path) / SOURCE_FILE).read_text())["revision"] == SHA
    again = studio.registry.find_dataset("from-cache")
    assert again.hub_revision == SHA


def test_a_run_records_the_hub_commit_it_trained_on(studio, hub_cache: Path, tmp_path: Path) -> None:
    from jobs_helpers import fast_config

    from jobs.train import main

    cached_repo(hub_cache, "someone/shapes", {"default": {"train": 1}})
    studio.register_dataset(ImportRequest(hub_id="someone/shapes"), "pinned")
    config = tmp_path / "config.json"
    fast_config(dataset="pinned", max_steps=1, eval_steps=0).save(config)
    assert main(["--config", str(config), "--data-dir", str(studio.paths.root)]) == 0
    (run,) = studio.registry.list_runs()
    recorded = json.loads((Path(run.run_dir) / DATASET_FILE).read_text())
    assert recorded["name"] == "pinned" and recorded["origin"]["hub_id"] == "someone/shapes"
    assert recorded["origin"]["revision"] == SHA


def test_offline_without_a_cache_the_message_says_what_to_do_within_5_seconds(studio, hub_cache: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ProblemsError) as caught:
        studio.register_dataset(ImportRequest(hub_id="HuggingFaceM4/the_cauldron", config="ai2d"), "nope")
    assert time.monotonic() - start < 5
    message = str(caught.value)
    assert "not in the local Hugging Face cache" in message and "HF_HUB_OFFLINE is set" in message
    assert "unset HF_HUB_OFFLINE" in message and studio.registry.find_dataset("nope") is None


def test_no_network_gets_the_same_clear_message_fast(studio, hub_cache: Path, monkeypatch) -> None:
    import socket

    from huggingface_hub import constants

    with socket.socket() as s:  # a port nobody listens on: the connection is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    info = studio.inspect_dataset(ImportRequest(hub_id="someone/elsewhere"))
    assert time.monotonic() - start < 5
    assert "the Hub cannot be reached (no network" in info["problems"][0]["message"]


class FakeHub:
    """The network half of huggingface_hub and datasets, answered from a local repo folder: dataset_info, the
    builder's resolution into hf:// URLs, file sizes, and hf_hub_download into the test's cache."""

    def __init__(self, repo: Path, repo_id: str, cache: Path, gated: bool = False):
        self.repo, self.repo_id, self.cache, self.gated = repo, repo_id, cache, gated
        self.downloads: list[str] = []

    def dataset_info(self, api, repo_id: str, *, revision: str | None = None, timeout: float | None = None,
                     **kwargs):
        assert timeout is not None and timeout <= 5  # no long waits when the network is gone
        siblings = [SimpleNamespace(rfilename=p.relative_to(self.repo).as_posix())
                    for p in self.repo.rglob("*") if p.is_file()]
        return SimpleNamespace(sha=SHA, gated="manual" if self.gated else False, private=False, siblings=siblings)

    def load_builder(self, path: str, config, label, **kwargs):
        from core.datasets.hf_folders import load_builder

        local = load_builder(str(self.repo), config, label)
        files = {split: [f"hf://datasets/{self.repo_id}@{SHA}/{Path(f).relative_to(self.repo).as_posix()}"
                         for f in paths] for split, paths in local.config.data_files.items()}
        info = SimpleNamespace(splits={s: SimpleNamespace(num_examples=3 * len(f)) for s, f in files.items()})
        return SimpleNamespace(name=local.name, config=SimpleNamespace(name=local.config.name, data_files=files),
                               info=info, as_streaming_dataset=local.as_streaming_dataset)

    def sizes(self, repo_id: str, revision: str, paths: list[str]) -> dict[str, int]:
        return {p: (self.repo / p).stat().st_size for p in paths}

    def download(self, repo_id: str, filename: str, *, repo_type: str, revision: str, cache_dir, tqdm_class=None,
                 **kwargs) -> str:
        self.downloads.append(filename)
        source = self.repo / filename
        target = Path(cache_dir) / f"datasets--{repo_id.replace('/', '--')}" / "snapshots" / SHA / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        data = source.read_bytes()
        bar = tqdm_class(total=len(data), desc=filename) if tqdm_class else None
        with target.open("wb") as out:
            for start in range(0, len(data), 1024):
                out.write(data[start:start + 1024])
                if bar is not None:
                    bar.update(len(data[start:start + 1024]))
        return str(target)


@pytest.fixture
def fake_hub(tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    import huggingface_hub
    from huggingface_hub import HfApi

    from core.datasets import hub

    fake = FakeHub(write_repo(tmp_path / "remote", {"default": {"train": 2}}), "someone/shapes", hub_cache)
    monkeypatch.setattr(HfApi, "dataset_info", lambda api, *args, **kwargs: fake.dataset_info(api, *args, **kwargs))
    monkeypatch.setattr(hub, "load_builder", fake.load_builder)
    monkeypatch.setattr(hub, "_sizes", fake.sizes)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.download)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    return fake


def test_online_the_size_comes_first_and_a_row_limit_downloads_only_the_files_it_needs(studio, fake_hub) -> None:
    request = ImportRequest(hub_id="someone/shapes", row_limit=3)
    info = studio.inspect_dataset(request)
    hub = info["hub"]
    assert (hub["revision"], hub["split"], hub["rows"], hub["files"], hub["files_needed"]) == (SHA, "train", 6, 2, 1)
    assert hub["download_bytes"] == (fake_hub.repo / "default" / "train-00000-of-00002.parquet").stat().st_size
    assert hub["token"] == "the HF_TOKEN environment variable" and fake_hub.downloads == []  # nothing downloaded yet
    messages: list[str] = []
    record, summary = studio.register_dataset(request, "online", lambda f, m: messages.append(m))
    assert summary["rows_kept"] == 3 and summary["row_limit"] == 3 and summary["rows_available"] == 6
    assert fake_hub.downloads == ["README.md", "default/train-00000-of-00002.parquet"]  # not the second shard
    assert any(m.startswith("downloading default/train-00000-of-00002.parquet") for m in messages)
    assert (record.hub_id, record.hub_revision) == ("someone/shapes", SHA)
    shown = json.dumps([info, summary, messages, record.source])
    assert SECRET not in shown and SECRET not in (Path(record.path) / "report.json").read_text()
    streamed = studio.validate_dataset(ImportRequest(hub_id="someone/shapes", stream=True, row_limit=2))
    assert streamed["rows_total"] == 2 and "nothing stored in the cache" in streamed["source_note"]
    assert len(fake_hub.downloads) == 2  # streaming stored nothing


def test_a_failed_download_registers_nothing_and_the_next_import_finishes(studio, fake_hub, monkeypatch) -> None:
    import huggingface_hub

    def broken(repo_id, filename, **kwargs):
        if filename.startswith("default/train-00001"):
            raise ConnectionError("connection reset by peer")
        return fake_hub.download(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", broken)
    with pytest.raises(ProblemsError) as caught:
        studio.register_dataset(ImportRequest(hub_id="someone/shapes"), "half")
    message = str(caught.value)
    assert "downloading default/train-00001-of-00002.parquet from someone/shapes failed" in message
    assert "importing again resumes it" in message and SECRET not in message
    assert studio.registry.find_dataset("half") is None and not any(studio.paths.datasets_dir.glob("ds-*"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hub.download)
    record, summary = studio.register_dataset(ImportRequest(hub_id="someone/shapes"), "half")
    assert summary["rows_kept"] == 6 and record.hub_revision == SHA


def test_online_errors_say_what_to_do(studio, fake_hub, monkeypatch) -> None:
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    with pytest.raises(ProblemsError, match="has no split 'validation'; its splits are train"):
        studio.validate_dataset(ImportRequest(hub_id="someone/shapes", split="validation"))
    fake_hub.gated = True
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(ProblemsError, match="is gated: accept its conditions on https://huggingface.co/datasets/"):
        studio.validate_dataset(ImportRequest(hub_id="someone/shapes"))
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/api/datasets/x/y"))
    for error, request, expected in (
            (RepositoryNotFoundError("404", response=response), ImportRequest(hub_id="someone/typo"),
             "no dataset 'someone/typo' on the Hugging Face Hub.*private.*hf auth login"),
            (RevisionNotFoundError("404", response=response), ImportRequest(hub_id="someone/shapes", revision="v9"),
             "someone/shapes has no revision 'v9'; give a branch, a tag or a commit"),
            (GatedRepoError("403", response=response), ImportRequest(hub_id="someone/shapes"), "is gated")):
        def refuse(api, repo_id, error=error, **kwargs):
            raise error

        monkeypatch.setattr(HfApi, "dataset_info", refuse)
        with pytest.raises(ProblemsError, match=expected):
            studio.register_dataset(request, "never")
    with pytest.raises(ProblemsError, match="not a Hub dataset id"):
        studio.validate_dataset(ImportRequest(hub_id="not a/valid/id"))
    assert studio.registry.list_datasets() == [] and not any(studio.paths.datasets_dir.glob("ds-*"))


def test_three_training_steps_on_a_hub_layout_dataset(studio, tmp_path: Path) -> None:
    from test_dataset_training import STEPS, train_steps

    repo = write_repo(tmp_path / "repo", {"default": {"train": 1}})
    record, summary = studio.register_dataset(ImportRequest(hub_id=str(repo)), "cauldron-train")
    assert summary["format"] == "cauldron" and summary["rows_kept"] == 3
    outcome, run_dir = train_steps(studio, "cauldron-train", Path(record.path))
    assert outcome.steps == STEPS and (run_dir / "metrics.jsonl").read_text().count("\n") == STEPS
    shutil.rmtree(run_dir, ignore_errors=True)


def test_the_datasets_tab_takes_a_hub_form_and_an_encoding(app, tmp_path: Path) -> None:
    from test_dataset_support import BAD_INPUTS, solid
    from test_datasets_tab import import_via_api, names

    client, studio = app
    repo = write_repo(tmp_path / "repo", {"default": {"train": 2}})
    text, *_ = client.predict([], "", "", "", "", "utf-8", str(repo), "", "", "", 0, False,
                              api_name="/inspect_dataset")
    assert "Detected format: the\\_cauldron" in text and "user/assistant pairs" in text, text
    client.reset_session()  # Inspect's findings are session state: a fresh session imports as detected
    report, table, _ = import_via_api(client, "hub-form", hub_id=str(repo), row_limit=4)
    assert "Registered **hub-form**: 4 rows" in report and "Only the first 4 rows" in report, report
    assert "hub-form" in names(table)
    solid(tmp_path / "images" / "red.png")
    (tmp_path / "latin1.jsonl").write_bytes((BAD_INPUTS / "latin1.jsonl").read_bytes())
    client.reset_session()
    report, _, _ = import_via_api(client, "latin-form", path=str(tmp_path / "latin1.jsonl"), text_encoding="latin-1")
    assert "All 3 rows passed validation" in report, report
