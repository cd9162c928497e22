"""One colour per run, derived from its id alone, so a run looks the same in every chart and view."""

from __future__ import annotations

# Tableau 10, then two more: distinguishable on white, for colour-blind readers too as far as ten colours can be.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#1f3a93", "#8cd17d")


def colour_of(run_id: int) -> str:
    """The run's colour: the same whatever the order runs are picked in; runs whose ids are fewer than
    len(PALETTE) apart never share one."""
    return PALETTE[(int(run_id) - 1) % len(PALETTE)]


def rgb_of(colour: str) -> tuple[int, int, int]:
    text = colour.lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
