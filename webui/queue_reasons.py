"""Why a job waits in the queue, in the page's language: core's fixed waiting sentences (core/runs/queue.py)
translated around their job labels; a sentence that does not parse back exactly stays as core says it."""

from __future__ import annotations

import re

from webui.i18n import say

# Core's queue reasons (core/runs/queue.py): fixed sentences around job labels; anything else stays English.
JOB = r"(?:run \d+ \(.*?\)|evaluation \d+ \(.*? on .*?\))"
JOB_PARTS = re.compile(r"run (\d+) \((.*?)\)|evaluation (\d+) \((.*?) on (.*?)\)")
SHORT = r"(?:this run|this evaluation|run \d+|evaluation \d+)"
SHORT_PARTS = re.compile(r"this (run|evaluation)|(run|evaluation) (\d+)")
WAIT_FOR = re.compile(rf"next: waiting for ({JOB}(?:, {JOB})*) to finish")
WAIT_BEHIND = re.compile(r"waiting its turn: (first|second|third|number (\d+)) in the queue")
NO_ESTIMATE = re.compile(rf"waiting for ({JOB}(?:, {JOB})*) to finish: ({SHORT} has(?: and {SHORT} has)*) no memory "
                         r"estimate, so running them together cannot be shown to fit")
TOO_BIG = re.compile(rf"waiting for ({JOB}(?:, {JOB})*) to finish: together they need about ([\d.]+) GB "
                     rf"\(({SHORT} [\d.]+ GB(?:, {SHORT} [\d.]+ GB)*)\), more than fits "
                     r"(?:on this machine's (.+) \(([\d.]+) GB\)|in this machine's RAM \(([\d.]+) GB; it has no CUDA "
                     r"card\))")
PLACES = {"first": 1, "second": 2, "third": 3}


def _jobs(labels: str, locale: str | None) -> str | None:
    """Core's job labels ("run 3 (name), evaluation 4 (model on data)") in ``locale``; None when they do not parse
    back to the same text (a name holding ") " or " on ")."""
    found = list(JOB_PARTS.finditer(labels))
    if ", ".join(m.group(0) for m in found) != labels:
        return None
    return say("rt_comma", locale).join(
        say("rt_wait_run", locale, run_id=m.group(1), name=m.group(2)) if m.group(1) else
        say("rt_wait_eval", locale, eval_id=m.group(3), model=m.group(4), dataset=m.group(5)) for m in found)


def _short(label: str, locale: str | None) -> str:
    """"this run", "run 3", "this evaluation", "evaluation 4" in ``locale``."""
    m = SHORT_PARTS.fullmatch(label)
    return say(f"rt_this_{m.group(1)}", locale) if m.group(1) else say(f"rt_short_{m.group(2)}", locale,
                                                                         id=m.group(3))


def wait_reason(why: str, locale: str | None = "en") -> str:
    """Why a run waits in the queue, translated where core's sentence is a fixed one; as it is otherwise."""
    if locale in (None, "en"):
        return why
    match = WAIT_BEHIND.fullmatch(why)
    if match:
        return say("rt_wait_behind", locale, place=PLACES.get(match.group(1)) or match.group(2))
    for pattern in (WAIT_FOR, NO_ESTIMATE, TOO_BIG):
        match = pattern.fullmatch(why)
        runs = _jobs(match.group(1), locale) if match else None
        if runs is not None:
            break
    else:
        return why
    if pattern is WAIT_FOR:
        return say("rt_wait_for", locale, runs=runs)
    if pattern is NO_ESTIMATE:
        which = say("rt_and", locale).join(_short(part.removesuffix(" has"), locale)
                                          for part in match.group(2).split(" and "))
        return say("rt_wait_no_estimate", locale, runs=runs, which=which)
    needs = [part.removesuffix(" GB").rsplit(" ", 1) for part in match.group(3).split(", ")]  # "run 3 2.00 GB"
    parts = say("rt_comma", locale).join(f"{_short(label, locale)} {gb} GB" for label, gb in needs)
    card, card_gb, ram_gb = match.group(4, 5, 6)
    capacity = say("rt_card", locale, name=card, gb=card_gb) if card else say("rt_ram", locale, gb=ram_gb)
    return say("rt_wait_too_big", locale, runs=runs, total=match.group(2), parts=parts, capacity=capacity)
