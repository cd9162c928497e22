"""The Chat, Export and Compare tabs' server-built messages in the page's language: core's fixed sentences are
translated around their values; English comes out exactly as core and the tabs say it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from core.compare.summary import Column
from core.export import NOT_MERGEABLE, merge_refusal
from core.problems import Problem, ProblemsError
from webui.i18n import catalogues, say, status_word
from webui.messages import esc, failure_markdown

VERDICT_KEYS = {"fits": "ct_verdict_fits", "tight": "ct_verdict_tight", "will not fit": "ct_verdict_will_not_fit"}


def is_english(locale: str | None) -> bool:
    """True for English and for a language the studio has no catalogue of (shown in English)."""
    return (locale or "en") == "en" or locale not in catalogues()


def phrase(key: str, locale: str | None, fallback: str, **values: object) -> str:
    """The catalogue's ``key`` in ``locale`` with the values put in; ``fallback`` where the catalogue lacks it."""
    if key not in catalogues()["en"]:
        return fallback
    return say(key, locale, **values)


def merge_reason(method: str, why: str, locale: str | None = "en") -> str:
    """Core's reason a method's result is not merged, in ``locale`` when it is core's fixed sentence."""
    if is_english(locale):
        return why
    if why == NOT_MERGEABLE.get(method):
        return say(f"xt_why_{method}", locale)
    if why == merge_refusal(method):
        return say("xt_why_other", locale, method=method)
    return why


# Core's fixed problem sentences of these tabs (core/chat.py, core/export.py, core/compare/): each pattern's groups
# go into the catalogue sentence by name; a message no pattern matches stays English.
SENTENCES = [
    (re.compile(r"choose a finished run first"), "xt_p_choose_run"),
    (re.compile(r"there is no run (?P<run>.+)"), "xt_p_no_run"),
    (re.compile(r"run (?P<run>\d+) is (?P<status>\w+); only a completed or stopped run can be exported"),
     "xt_p_not_finished"),
    (re.compile(r"run (?P<run>\d+) has no complete saved (?P<which>last|best) result to export"), "xt_p_no_saved"),
    (re.compile(r"run (?P<run>\d+)'s result has not been merged yet; press Merge first"), "xt_p_not_merged"),
    (re.compile(r"run (?P<run>\d+) \((?P<method>[\w-]+)\) cannot be merged: (?P<why>.+)", re.S), "xt_p_cannot_merge"),
    (re.compile(r"another merge is running; try again when it has finished"), "xt_p_merge_busy"),
    (re.compile(r"run (?P<run>\d+) has no saved (?P<which>last|best) result to load"), "ct_p_no_result"),
    (re.compile(r"(?P<placeholders>\d+) image placeholders but (?P<images>\d+) images"), "ct_p_placeholders"),
    (re.compile(r"this model reads text only; remove the image"), "ct_p_text_only"),
    (re.compile(r"the conversation so far was with other models; start a new conversation"), "pt_p_other_models"),
    (re.compile(r"choose (?P<low>\d+) to (?P<high>\d+) different models \(two or three checkpoints and optionally "
                r"the base\); got (?P<got>\d+)"), "pt_p_models"),
    (re.compile(r"type a question"), "pt_p_question"),
    (re.compile(r"choose (?P<low>\d+) to (?P<high>\d+) runs to compare; got (?P<got>\d+)"), "pt_p_runs"),
    (re.compile(r"not a run id: (?P<value>.+)"), "pt_p_not_run_id"),
    (re.compile(r"choose one of (?P<choices>.+); got (?P<got>.+)"), "pt_p_choose_one_got"),
    (re.compile(r"choose one of (?P<choices>.+)"), "ct_p_choose_one"),
    (re.compile(r"must be between 0 and (?P<high>.+); got (?P<got>.+)"), "pt_p_between"),
]


def core_sentence(message: str, locale: str | None = "en", escape: Callable[[object], str] = esc) -> str:
    """One of core's messages in ``locale``, its values escaped; unknown messages (and English) escaped as they are."""
    if is_english(locale):
        return escape(message)
    for pattern, key in SENTENCES:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        values = {name: escape(value) for name, value in match.groupdict().items()}
        if "which" in values:
            values["which"] = say(f"ct_which_{match['which']}", locale)
        if "status" in values:
            values["status"] = status_word(match["status"], locale)
        if "why" in values:
            values["why"] = escape(merge_reason(match["method"], match["why"], locale))
        return say(key, locale, **values)
    return escape(message)


def where_text(problem: Problem, locale: str | None) -> str:
    """Where a problem is, as Problem.where says it, with the word "field" in ``locale``."""
    parts = []
    if problem.file:
        parts.append(problem.file + (f":{problem.line}" if problem.line is not None else ""))
    elif problem.line is not None:
        parts.append(f"line {problem.line}")  # no such problem in these tabs: left as core says it
    if problem.field:
        parts.append(say("ct_field", locale, name=problem.field))
    return ", ".join(parts)


def failure_text(error: BaseException, locale: str | None = "en") -> str:
    """failure_markdown in ``locale``: its title, the place and core's fixed sentences; other exceptions as they are."""
    if is_english(locale) or not isinstance(error, ProblemsError) or not error.problems:
        return failure_markdown(error)
    lines = [f"**{say('please_fix', locale)}**", ""]
    for p in error.problems:
        icon = "⚠️" if p.severity == "warning" else "❌"
        where = where_text(p, locale)
        where_code = "`" + where.replace("`", "'") + "` — " if where else ""
        lines.append(f"- {icon} {where_code}{core_sentence(p.message, locale)}")
    return "\n".join(lines)


CARD_THIS = re.compile(r"this machine's (?P<name>.+)")
CARD_SIZE = re.compile(r"a (?P<size>\S+) GiB card")


def card_text(label: str, locale: str | None = "en") -> str:
    """The memory advisor's card label ("this machine's X", "a 24 GiB card") in ``locale``."""
    if is_english(locale):
        return label
    if match := CARD_THIS.fullmatch(label):
        return say("ct_card_this_machine", locale, name=match["name"])
    if match := CARD_SIZE.fullmatch(label):
        return say("ct_card_size", locale, size=match["size"])
    return label


def busy_text(runs: int, evaluations: int, locale: str | None = "en") -> str:
    """What holds the GPU in ``locale``, as core's busy_jobs says it in English."""
    parts = ([say("ct_busy_runs", locale, n=runs)] * bool(runs)
             + [say("ct_busy_evals", locale, n=evaluations)] * bool(evaluations))
    return say("ct_busy_both", locale, runs=parts[0], evals=parts[1]) if len(parts) == 2 else "".join(parts)


NO_MODEL = re.compile(r"There is no model or run (?P<choice>.+)\.")


def memory_text(result: dict[str, Any], locale: str | None, icons: dict[str, str]) -> str:
    """The Chat tab's memory line in ``locale``; ``icons``: the verdict's icon by verdict."""
    if not result.get("ok"):
        reason = str(result.get("reason", ""))
        if match := NO_MODEL.fullmatch(reason):
            reason = say("ct_no_model", locale, choice=match["choice"])
        return say("ct_memory_unavailable", locale, reason=reason)
    runs, evaluations = len(result["runs"]), len(result.get("evaluations", []))
    beside = (say("ct_beside", locale, gb=f"{result['training_gb']:.1f}", jobs=busy_text(runs, evaluations, locale))
              if runs or evaluations else "")
    verdict = phrase(VERDICT_KEYS.get(result["verdict"], ""), locale, result["verdict"])
    return say("ct_fits", locale, icon=icons[result["verdict"]], chat=f"{result['chat_gb']:.1f}",
               card=card_text(result["card"]["label"], locale), beside=beside, verdict=verdict)


ROOM_FREE = re.compile(r"(?P<gb>[\d.]+) GB of free memory on this machine")
ROOM_CARD = re.compile(r"(?P<card>.+) \((?P<gb>[\d.]+) GB\)(?: beside (?P<used>[\d.]+) GB for (?P<jobs>.+) now)?")
BUSY = re.compile(r"(?:(?P<runs>\d+) run\(s\) training)?(?: and )?(?:(?P<evals>\d+) evaluation\(s\) running)?")


def room_text(room: str, locale: str | None = "en") -> str:
    """Where A/B chat's models must fit (core's words: the free memory, or the card beside the jobs) in ``locale``."""
    if is_english(locale):
        return room
    if match := ROOM_FREE.fullmatch(room):
        return say("pt_room_free", locale, gb=match["gb"])
    match = ROOM_CARD.fullmatch(room)
    if match is None:
        return room
    beside = ""
    if match["used"]:
        jobs = BUSY.fullmatch(match["jobs"])
        if jobs is None or not (jobs["runs"] or jobs["evals"]):
            return room
        busy = busy_text(int(jobs["runs"] or 0), int(jobs["evals"] or 0), locale)
        beside = say("pt_room_beside", locale, gb=match["used"], jobs=busy)
    return say("pt_room_card", locale, card=card_text(match["card"], locale), gb=match["gb"], beside=beside)


UNKNOWN = re.compile(r"⚠️ The memory of (?P<model>.+?) cannot be estimated \((?P<why>.+)\): the models are loaded "
                     r"one after another to be safe\.", re.S)


def plan_text(plan: Any, locale: str | None = "en") -> str:
    """A/B chat's plan (core's ABPlan) in ``locale``: together or one after another, from its values."""
    if is_english(locale):
        return plan.message
    if plan.needed_gb is None:
        match = UNKNOWN.fullmatch(plan.message)
        return say("pt_unknown", locale, model=match["model"], why=match["why"]) if match else plan.message
    return say("pt_together" if plan.together else "pt_apart", locale, n=len(plan.choices),
               need=f"{plan.needed_gb:.2f}", room=room_text(plan.room, locale))


STATUS_ONE = re.compile(r"loading and asking model (?P<i>\d+) of (?P<n>\d+)")
STATUS_ALL = re.compile(r"loading (?P<n>\d+) models and asking them")


def progress_text(status: str, locale: str | None = "en") -> str:
    """The line under A/B chat's plan while it answers: what it is doing now."""
    if not is_english(locale):
        if match := STATUS_ONE.fullmatch(status):
            status = say("pt_status_one", locale, i=match["i"], n=match["n"])
        elif match := STATUS_ALL.fullmatch(status):
            status = say("pt_status_all", locale, n=match["n"])
    return say("pt_status", locale, status=status)


def column_label(column: Column, locale: str | None = "en") -> str:
    """A summary column's name in ``locale`` (core's label in English)."""
    if is_english(locale):
        return column.label
    if column.key.startswith("eval_") and f"pt_col_{column.key}" not in catalogues()["en"]:
        metric = column.key.removeprefix("eval_")
        name = phrase(f"pt_metric_{metric}", locale, column.label.removeprefix("Eval: "))
        return say("pt_col_eval", locale, metric=name)
    return phrase(f"pt_col_{column.key}", locale, column.label)


def column_help(column: Column, locale: str | None = "en") -> str:
    return column.help if is_english(locale) or not column.help else phrase(f"pt_help_{column.key}", locale,
                                                                            column.help)


def field_label(field: str, label: str, locale: str | None = "en") -> str:
    """A config field's label in the diff: the Train form's own translation of it (field_<name>)."""
    return label if is_english(locale) else catalogues()[locale].get(f"field_{field}", label)
