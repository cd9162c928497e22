"""Whether a model choice can be read here, said before anything starts: a local folder, the Hugging Face cache, or
the Hub asked once with a short timeout (no retries), so an offline hub id fails in seconds, not after a minute."""

from __future__ import annotations

import re
from pathlib import Path

from core.problems import Problem

HUB_TIMEOUT = 4.0  # seconds for the one question to the Hub
REPO_ID = re.compile(r"^[\w.\-]{1,96}/[\w.\-]{1,96}$|^[\w.\-]{1,96}$")
LOGIN = "log in with `hf auth login` (or set HF_TOKEN) with an account that has access"
NOT_CACHED_OFFLINE = ("'{spec}' is not a model folder on this machine and is not in the local Hugging Face cache, "
                      "and HF_HUB_OFFLINE is set: unset it and connect once to download the model, or give a local "
                      "model folder")
UNREACHABLE = ("'{spec}' is not a model folder on this machine and is not in the local Hugging Face cache, and the "
               "Hub cannot be reached ({why}): connect to the network to download it once, or give a local model "
               "folder")
UNKNOWN = ("no model '{spec}' on the Hugging Face Hub: check the id (owner/name, as in the model's URL); if it is "
           "private, " + LOGIN)
GATED = "'{spec}' is a gated model: accept its licence on its Hub page, then " + LOGIN
NO_CONFIG = ("the folder {spec} has no config.json: give a folder saved with save_pretrained (config.json, weights, "
             "tokenizer), or a hub id")
NO_FOLDER = "there is no folder {spec} on this machine, and it is not a hub id (owner/name)"


def _problem(message: str) -> Problem:
    return Problem(message, field="model")


def model_problem(spec: str, built_in: tuple[str, ...] = ()) -> Problem | None:
    """Why ``spec`` cannot be loaded here, or None when it can (a model the studio builds itself always can)."""
    spec = spec.strip()
    if not spec or spec in built_in:
        return None
    local = Path(spec).expanduser()
    if local.is_dir():
        return _folder_problem(local)
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1 or not REPO_ID.match(spec):
        return _problem(NO_FOLDER.format(spec=spec))
    from core.models.loading import read_config

    if read_config(spec) is not None:  # in the local cache
        return None
    return _hub_problem(spec)


def _folder_problem(folder: Path) -> Problem | None:
    if not (folder / "config.json").is_file():
        return _problem(NO_CONFIG.format(spec=folder))
    from core.models.loading import read_config

    if read_config(str(folder)) is None:
        return _problem(f"{folder / 'config.json'} cannot be read as a transformers model config")
    return None


def _hub_problem(spec: str) -> Problem | None:
    """Ask the Hub once whether the id exists and may be read."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:
        return _problem(NOT_CACHED_OFFLINE.format(spec=spec))
    try:
        HfApi().model_info(spec, timeout=HUB_TIMEOUT)
    except OfflineModeIsEnabled:
        return _problem(NOT_CACHED_OFFLINE.format(spec=spec))
    except GatedRepoError:
        return _problem(GATED.format(spec=spec))
    except RepositoryNotFoundError:
        return _problem(UNKNOWN.format(spec=spec))
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            return _problem(GATED.format(spec=spec))
        return _problem(f"the Hub answered {status or 'with an error'} for '{spec}'; try again later")
    except Exception as e:  # noqa: BLE001 - no network, a refused connection, a timeout: all "cannot be reached"
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        return _problem(UNREACHABLE.format(spec=spec, why=f"no network: {why}"))
    return None
