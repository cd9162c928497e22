"""Datasets on the Hugging Face Hub: an id resolved to a commit and a split's files, what the import will download
said before it starts, files fetched into the usual cache as rows need them (or rows streamed), the cache used when
offline, and the Hub's failures turned into messages that say what to do."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

from core.datasets.hf_folders import READABLE_BUILDERS, load_builder, rows_of, split_files
from core.datasets.hub_fetch import (
    LOGIN_HINT,
    cache_dir,
    cached_snapshot,
    fetcher,
    gated_message,
    is_cached,
    repo_cache_folder,
    scrub,
    token_source,
)
from core.datasets.hub_source import HubSource
from core.datasets.limits import ImportLimits, human_size
from core.datasets.sources import SourcePlan, plan_source
from core.datasets.tables import Table, TablePart
from core.problems import Problem, ProblemsError

HUB_TIMEOUT = 4.0  # seconds for the first request: without a network the answer comes within it, with no retries
REPO_ID = re.compile(r"^[\w.\-]{1,96}(/[\w.\-]{1,96})?$")
DISK_MARGIN = 1.2  # the cache needs the download, the studio's copy of the kept images needs some of it again
OFFLINE = ("{repo} is not in the local Hugging Face cache ({cache}) and the Hub cannot be reached ({why}). Connect "
           "to the network{unset} and import it once; after that it imports offline from the cache.")
NO_ID = "give a Hub dataset id such as HuggingFaceM4/the_cauldron (owner/name, as in the dataset's URL)"


def _unknown(repo: str) -> str:
    token_from = token_source()
    if token_from is None:
        return (f"no dataset {repo!r} on the Hugging Face Hub. Check the id (owner/name, as in its URL); if it is a "
                f"private dataset, {LOGIN_HINT}")
    return (f"no dataset {repo!r} on the Hugging Face Hub that your token ({token_from}) can see. Check the id "
            "(owner/name, as in its URL) and that the token's account has access")


def _offline_why(error: Exception | None) -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    return f"no network: {scrub(str(error))[:120]}" if error is not None else "no network"


def dataset_info(repo: str, revision: str | None):
    """The repo's info from the Hub, or None when the Hub cannot be reached (offline mode, no network, timeout)."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return HfApi().dataset_info(repo, revision=revision or None, timeout=HUB_TIMEOUT), None
    except OfflineModeIsEnabled as e:
        return None, e
    except RevisionNotFoundError:
        raise ProblemsError([Problem(f"{repo} has no revision {revision!r}; give a branch, a tag or a commit id "
                                     "(or leave it empty for main)", field="revision")]) from None
    except GatedRepoError:
        raise ProblemsError([Problem(gated_message(repo, token_source()), field="hub_id")]) from None
    except RepositoryNotFoundError:
        raise ProblemsError([Problem(_unknown(repo), field="hub_id")]) from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise ProblemsError([Problem(f"the Hub refused access to {repo}: {LOGIN_HINT}", field="hub_id")]) from None
        raise ProblemsError([Problem(f"the Hub answered {status or 'with an error'} for {repo}; try again later "
                                     f"({scrub(str(e))[:160]})", field="hub_id")]) from None
    except (httpx2.TransportError, OSError, TimeoutError) as e:
        return None, e


def _offline_plan(source: HubSource, workdir: Path, limits: ImportLimits, why: Exception | None,
                  image_root: Path | None) -> SourcePlan:
    repo = source.label
    snapshot = cached_snapshot(repo, source.revision)
    if snapshot is None:
        unset = ", unset HF_HUB_OFFLINE" if "HF_HUB_OFFLINE" in _offline_why(why) else ""
        raise ProblemsError([Problem(OFFLINE.format(repo=repo, cache=cache_dir(), why=_offline_why(why), unset=unset),
                                     field="hub_id")])
    plan = plan_source(snapshot, workdir, limits, image_root=image_root, config=source.config, split=source.split,
                       name=repo)
    if image_root is None:
        plan.root = repo_cache_folder(repo).resolve()  # the snapshot's files link into the repo's blobs
        plan.root_label = f"the cached copy of {repo}"
    plan.shown_base, plan.shown_in = snapshot, f"in the cached copy of {repo}"
    files = len(plan.table.parts) if plan.table is not None and plan.table.parts else 1
    plan.note = (f"offline ({_offline_why(why)}): read from the local Hugging Face cache, revision {snapshot.name[:12]}"
                 f", {files} file{'s' if files != 1 else ''} of the split cached" + (f"; {plan.note}" if plan.note
                                                                                      else ""))
    table = plan.table
    plan.origin = {"hub_id": repo, "revision": snapshot.name, "config": table.config if table else source.config,
                   "split": table.split if table else source.split, "offline": True}
    return plan


def _repo_path(url: str, repo: str) -> str:
    """The path inside the repo of a data file the datasets library names as hf://datasets/<repo>@<rev>/<path>."""
    rest = url.split(f"hf://datasets/{repo}", 1)[-1]
    rest = rest.split("/", 1)[1] if rest.startswith("@") else rest.lstrip("/")
    return unquote(rest)


def _needed(parts: list[TablePart], rows: int | None, row_limit: int | None) -> list[TablePart]:
    """The first parts a row limit needs, taking the split's rows as spread evenly over its files (the Hub's shards
    hold about the same number of rows each); all of them without a limit or a row count."""
    if not row_limit or not rows or row_limit >= rows or not parts:
        return parts
    return parts[:max(1, math.ceil(row_limit * len(parts) / rows))]


def _sizes(repo: str, revision: str, paths: list[str]) -> dict[str, int]:
    from huggingface_hub import HfApi

    sizes = {}
    for start in range(0, len(paths), 500):
        for entry in HfApi().get_paths_info(repo, paths[start:start + 500], repo_type="dataset", revision=revision):
            sizes[entry.path] = int(getattr(entry, "size", 0) or 0)
    return sizes


def plan_hub(source: HubSource, limits: ImportLimits, *, workdir: Path, row_limit: int | None = None,
             image_root: Path | None = None, peek: bool = False) -> SourcePlan:
    """Resolve ``source`` to the rows of one split. Online, the commit is pinned and the split's files are fetched
    into the Hugging Face cache only as rows need them (or streamed); offline, the cached copy is read. ``peek``
    streams only the first rows. ``plan.preflight`` says what the import will download before it does."""
    repo = source.label
    if not repo:
        raise ProblemsError([Problem(NO_ID, field="hub_id")])
    local = Path(repo).expanduser()
    if local.is_dir():  # a local folder laid out as a Hub dataset repo, as load_dataset takes it
        plan = plan_source(local, workdir, limits, image_root=image_root, config=source.config, split=source.split)
        plan.origin = {"hub_id": None, "local_path": str(local.resolve())}
        return plan
    if not REPO_ID.match(repo) or ".." in repo:
        raise ProblemsError([Problem(f"{repo!r} is not a Hub dataset id. {NO_ID}, or a local folder", field="hub_id")])
    info, why = dataset_info(repo, source.revision)
    if info is None:
        return _offline_plan(source, workdir, limits, why, image_root)
    token_from = token_source()
    if getattr(info, "gated", False) and token_from is None:
        raise ProblemsError([Problem(gated_message(repo, None), field="hub_id")])
    sha = getattr(info, "sha", None) or source.revision or "main"
    builder = load_builder(repo, source.config, repo, revision=sha)
    split, urls = split_files(builder, source.split, repo)
    paths = [_repo_path(u, repo) for u in urls]
    rows = rows_of(builder, split)
    subset = builder.config.name if builder.config.name not in (None, "default") else None
    display = f"{repo} ({subset + ', ' if subset else ''}{split})"
    streamed = source.stream or builder.name not in READABLE_BUILDERS  # how the import reads it
    stream = streamed or peek  # a peek streams the first rows in any case
    siblings = {s.rfilename for s in (getattr(info, "siblings", None) or [])}
    extras = [name for name in ("README.md",) if name in siblings]
    sizes = _sizes(repo, sha, paths) if paths else {}
    parts = [TablePart(p, sizes.get(p, 0), fetch=fetcher(repo, p, sha, source.revision, extras),
                       cached=is_cached(repo, p, sha)) for p in paths]
    needed = _needed(parts, rows, row_limit)
    download = sum(p.size for p in needed if not p.cached)
    if stream:
        def rows_of_stream():
            return builder.as_streaming_dataset(split=split).decode(False)

        table = Table(display, stream=rows_of_stream, num_rows=rows)
    else:
        table = Table(display, parts=parts, num_rows=rows)
    preflight = {"repo_id": repo, "revision": sha, "revision_asked": source.revision or "main", "config": subset,
                 "split": split, "splits": {name: rows_of(builder, name) for name in builder.config.data_files},
                 "rows": rows, "row_limit": row_limit or None, "files": len(parts), "files_needed": len(needed),
                 "total_bytes": sum(p.size for p in parts), "download_bytes": 0 if streamed else download,
                 "cached_files": sum(p.cached for p in parts),
                 "mode": "stream" if streamed else "download",
                 "format": builder.name, "cache_dir": str(cache_dir()), "token": token_from,
                 "gated": bool(getattr(info, "gated", False)), "private": bool(getattr(info, "private", False))}
    if not streamed:
        free = shutil.disk_usage(_existing(cache_dir())).free
        if download * DISK_MARGIN > free:
            raise ProblemsError([Problem(
                f"importing {display} downloads about {human_size(download)} into {cache_dir()}, which has "
                f"{human_size(free)} free. Set a row limit (the first files are then enough), or choose Stream to "
                "read the rows without storing the files", field="row_limit")])
    unreadable = Table(display, parts=parts).unsupported_parts()
    if not streamed and unreadable:
        raise ProblemsError([Problem(f"{display} has files the studio cannot read itself ({', '.join(unreadable[:3])})"
                                     "; choose Stream to read them through the datasets library", field="stream")])
    root = Path(image_root).expanduser().resolve() if image_root else repo_cache_folder(repo).resolve()
    note = f"revision {sha[:12]}" + (f", {rows:,} rows in the split" if rows else "")
    if streamed:
        note += ", streamed through the datasets library (nothing stored in the cache)"
    elif not peek:
        note += f", {len(needed)} of {len(parts)} files needed" + \
            (f" ({human_size(download)} to download)" if download else " (all in the cache)")
    plan = SourcePlan(None, display, root, root, [root], note=note, root_label=str(root) if image_root else
                      f"the Hugging Face cache of {repo}", table=table)
    plan.origin = {"hub_id": repo, "revision": sha, "config": subset, "split": split}
    plan.preflight = preflight
    return plan


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
