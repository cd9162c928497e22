"""Folders of the ``datasets`` library: what ``save_to_disk`` writes, and folders laid out as a Hub dataset repo
(README configs, ``data/train-00000-of-00002.parquet`` shards), whose splits are resolved as ``load_dataset`` does."""

from __future__ import annotations

import re
from pathlib import Path

from core.datasets.tables import Table, TablePart
from core.problems import Problem, ProblemsError

SAVED_DICT = "dataset_dict.json"
SAVED_STATE = "state.json"
READABLE_BUILDERS = ("parquet", "json", "csv", "arrow")  # the builders whose data files the studio's readers read
SHARD_NAME = re.compile(r"-\d{5}-of-\d{5}$")
SPLIT_ORDER = ("train",)
NO_CONFIG = ("{label} has {count} configs (subsets): {names}. Choose one in 'Config (subset)'.")


def _names(items: list[str], limit: int = 30) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    return (folder / SAVED_DICT).is_file() or ((folder / SAVED_STATE).is_file() and any(folder.glob("*.arrow")))


def _front_matter(readme: Path) -> str:
    try:
        text = readme.read_text(encoding="utf-8", errors="replace")[:200_000]
    except OSError:
        return ""
    if not text.startswith("---"):
        return ""
    end = text.find("\n---", 3)
    return text[3:end] if end > 0 else ""


def has_repo_card(folder: Path) -> bool:
    """A README whose YAML header names configs or splits, as a Hub dataset repo's does."""
    return bool(re.search(r"^(configs|dataset_info)\s*:", _front_matter(folder / "README.md"), re.MULTILINE))


def looks_like_repo(folder: Path, data_files: list[Path]) -> bool:
    """Several Parquet/Arrow files, or files named as a Hub repo names its shards (``train-00000-of-00002``)."""
    if len(data_files) < 2:
        return False
    return all(p.suffix.lower() in (".parquet", ".arrow") for p in data_files) or \
        all(SHARD_NAME.search(p.stem) for p in data_files)


def pick_split(available: list[str], wanted: str | None, label: str) -> str:
    """The split asked for, else 'train', else the only one; a missing split names the ones there are."""
    wanted = (wanted or "").strip() or None
    if wanted is not None:
        if wanted in available:
            return wanted
        raise ProblemsError([Problem(f"{label} has no split {wanted!r}; its splits are {_names(available)}",
                                     field="split")])
    for name in (*SPLIT_ORDER, *available):
        if name in available and (name in SPLIT_ORDER or len(available) == 1):
            return name
    raise ProblemsError([Problem(f"{label} has several splits ({_names(available)}); choose one in 'Split'",
                                 field="split")])


def saved_table(folder: Path, split: str | None, label: str) -> Table:
    """The rows of a ``save_to_disk`` folder (one split of a DatasetDict), memory-mapped, images undecoded."""
    from datasets import DatasetDict, load_from_disk

    try:
        saved = load_from_disk(str(folder))
    except Exception as e:  # noqa: BLE001 - datasets raises several kinds for a damaged folder
        raise ProblemsError([Problem(f"{label} looks like a folder written by save_to_disk but cannot be loaded: "
                                     f"{str(e)[:300]}", file=label)]) from None
    note = "a datasets folder written by save_to_disk"
    name = None
    if isinstance(saved, DatasetDict):
        name = pick_split(list(saved), split, label)
        saved = saved[name]
        note += f", split {name!r}"
    elif split:
        note += " (one split only: the split setting was not needed)"

    def rows():
        for batch in saved.with_format("arrow").iter(batch_size=256):
            yield from batch.to_pylist()

    return Table(display=label, stream=rows, num_rows=len(saved), note=note, split=name if split or
                 isinstance(saved, DatasetDict) else None)


def builder_error(error: Exception, label: str, config: str | None) -> ProblemsError:
    """What a failed ``load_dataset_builder`` means, for a local folder or a Hub id."""
    text = str(error)
    found = re.search(r"Available: \[(.*?)\]", text)
    if "BuilderConfig" in text and found:
        names = [n.strip(" '\"") for n in found.group(1).split(",") if n.strip()]
        return ProblemsError([Problem(f"{label} has no config (subset) {config!r}; its configs are {_names(names)}",
                                      field="config")])
    if "Config name is missing" in text:
        found = re.search(r"configs: \[(.*?)\]", text)
        names = [n.strip(" '\"") for n in found.group(1).split(",")] if found else []
        return ProblemsError([Problem(NO_CONFIG.format(label=label, count=len(names), names=_names(names)),
                                      field="config")])
    if "script" in text.lower() and "support" in text.lower():
        return ProblemsError([Problem(f"{label} is loaded by a Python script, which the datasets library no longer "
                                      "runs. Many such sets have a Parquet copy: try the revision "
                                      "'refs/convert/parquet'", field="revision")])
    if isinstance(error, FileNotFoundError):
        return ProblemsError([Problem(f"no data files that the datasets library recognises in {label} (Parquet, "
                                      "Arrow, JSON, CSV or images)", file=label)])
    return ProblemsError([Problem(f"the datasets library could not read {label}: {text[:300]}", file=label)])


def load_builder(path: str, config: str | None, label: str, **kwargs: object):
    """``load_dataset_builder`` with its errors turned into problems; several configs need a choice."""
    from datasets import get_dataset_config_names, load_dataset_builder

    try:
        if not config:
            names = get_dataset_config_names(path, **kwargs)
            if len(names) > 1 and "default" not in names:
                raise ProblemsError([Problem(NO_CONFIG.format(label=label, count=len(names), names=_names(names)),
                                             field="config")])
            config = names[0] if len(names) == 1 else None
        return load_dataset_builder(path, name=config or None, **kwargs)
    except ProblemsError:
        raise
    except Exception as e:  # noqa: BLE001 - mapped to a message
        raise builder_error(e, label, config) from None


def split_files(builder, split: str | None, label: str) -> tuple[str, list[str]]:
    """The split chosen from the builder's data files, and its files in order."""
    files = dict(builder.config.data_files or {})
    if not files:
        raise ProblemsError([Problem(f"{label} lists no data files", file=label)])
    name = pick_split(list(files), split, label)
    return name, [str(f) for f in files[name]]


def rows_of(builder, split: str) -> int | None:
    splits = builder.info.splits or {}
    info = splits.get(split) if hasattr(splits, "get") else None
    return getattr(info, "num_examples", None) or None


def repo_table(folder: Path, config: str | None, split: str | None, label: str) -> Table:
    """A local folder laid out as a Hub dataset repo (a local copy, or a snapshot in the Hugging Face cache)."""
    builder = load_builder(str(folder), config, label)
    if builder.name not in READABLE_BUILDERS:
        raise ProblemsError([Problem(f"{label} is stored as {builder.name!r} files; the studio reads Parquet, Arrow, "
                                     "JSON and CSV data files (and image folders with a metadata file)", file=label)])
    name, files = split_files(builder, split, label)
    parts = []
    for f in files:
        path = Path(f)
        try:
            shown = path.relative_to(folder).as_posix()
        except ValueError:
            shown = path.name
        parts.append(TablePart(shown, path.stat().st_size, path=path))
    config = builder.config.name if builder.config.name not in (None, "default") else None
    return Table(display=f"{label} ({config + ', ' if config else ''}{name})", parts=parts,
                 num_rows=rows_of(builder, name), config=config, split=name,
                 note=f"split {name!r}" + (f" of config {config!r}" if config else "")
                 + f": {len(parts)} file{'s' if len(parts) != 1 else ''}")
