"""Getting a Hub dataset's files: the usual Hugging Face cache, downloads that report their bytes, and the token,
which is used but never shown (only where it came from)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from core.datasets.tables import Fetch
from core.problems import Problem, ProblemsError

LOGIN_HINT = "log in with `hf auth login` (or the older `huggingface-cli login`), or set HF_TOKEN"
RESUME_NOTE = "what was downloaded stays in the Hugging Face cache, and importing again resumes it"


def token_source() -> str | None:
    """Where the Hub token comes from ("HF_TOKEN", "hf auth login"), or None without one. Never the token."""
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception:  # noqa: BLE001 - an unreadable token file is the same as none here
        return None
    if not token:
        return None
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return "the HF_TOKEN environment variable"
    return "hf auth login"


def scrub(text: str) -> str:
    """``text`` with the token, wherever it appears, replaced: messages from libraries never carry it out."""
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception:  # noqa: BLE001
        token = None
    return text.replace(token, "***") if token and token in text else text


def cache_dir() -> Path:
    """The Hugging Face hub cache (HF_HUB_CACHE, else ~/.cache/huggingface/hub), read when called."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_cache_folder(repo_id: str) -> Path:
    """The cache's folder for one dataset repo: its snapshots and the blobs they link to."""
    return cache_dir() / ("datasets--" + repo_id.replace("/", "--"))


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` (main by default), without touching the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", revision=revision or None,
                                      cache_dir=cache_dir(), local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        return None


def is_cached(repo_id: str, path: str, revision: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, path, cache_dir=cache_dir(), revision=revision, repo_type="dataset")
    return isinstance(found, str)


def bar_class(on_bytes: Callable[[int, int | None], None]) -> type:
    """A progress-bar class for ``hf_hub_download(tqdm_class=...)`` that reports the bytes instead of drawing."""

    class Bar:
        def __init__(self, *args: object, **kwargs: object):
            self.total = kwargs.get("total")
            self.n = int(kwargs.get("initial") or 0)
            self.counts = not str(kwargs.get("desc") or "").startswith("Downloading bytes")  # xet's second bar

        def update(self, n: float | None = 1) -> None:
            self.n += int(n or 0)
            if self.counts:
                on_bytes(self.n, self.total if isinstance(self.total, int) else None)

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> bool:
            return False

        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *args, **kwargs: None  # close, refresh, set_description, ... do nothing

    return Bar


def download_error(error: Exception, repo_id: str, path: str) -> ProblemsError:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(error, GatedRepoError):
        return ProblemsError([Problem(gated_message(repo_id, token_source()), field="hub_id")])
    if isinstance(error, RepositoryNotFoundError):
        return ProblemsError([Problem(f"{repo_id} is no longer reachable with your access (private or deleted?); "
                                      f"{LOGIN_HINT}", field="hub_id")])
    return ProblemsError([Problem(f"downloading {path} from {repo_id} failed: {scrub(str(error))[:300]}. "
                                  f"{RESUME_NOTE}", file=path)])


def gated_message(repo_id: str, token_from: str | None) -> str:
    page = f"https://huggingface.co/datasets/{repo_id}"
    if token_from is None:
        return (f"{repo_id} is gated: accept its conditions on {page} while logged in there, then {LOGIN_HINT} "
                "before importing")
    return (f"{repo_id} is gated and the account of your token ({token_from}) has not been granted access yet: "
            f"accept its conditions on {page}, or wait for the owners to approve the request")


def fetcher(repo_id: str, path: str, revision: str, ref: str | None, extras: list[str]) -> Fetch:
    """A fetch for one data file at the commit ``revision``. The first fetch also stores ``extras`` (the README,
    which names the configs) under the branch ``ref``, so the cache serves the dataset offline later."""

    def fetch(on_bytes: Callable[[int, int | None], None]) -> Path:
        from huggingface_hub import hf_hub_download

        try:
            for extra in list(extras):
                hf_hub_download(repo_id, extra, repo_type="dataset", revision=ref or revision, cache_dir=cache_dir())
                extras.remove(extra)
            return Path(hf_hub_download(repo_id, path, repo_type="dataset", revision=revision, cache_dir=cache_dir(),
                                        tqdm_class=bar_class(on_bytes)))
        except ProblemsError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure becomes a message naming the file
            raise download_error(e, repo_id, path) from None

    return fetch
