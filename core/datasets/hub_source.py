"""What names a dataset on the Hugging Face Hub: its id (or a local folder laid out as a Hub repo), config, split,
revision, and whether to stream it instead of downloading its files into the cache."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HubSource:
    repo_id: str  # "owner/name", or a local folder that load_dataset accepts
    config: str | None = None  # the subset ("ai2d" of the_cauldron)
    split: str | None = None  # None: train, or the only split
    revision: str | None = None  # a branch, tag or commit; None: main
    stream: bool = False  # read rows over the network, storing nothing in the cache

    @property
    def label(self) -> str:
        return self.repo_id.strip()
