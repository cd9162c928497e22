"""Format detection over the first rows: which family matches best and why, with an override and column mapping."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field

from core.datasets.fields import close_name
from core.datasets.formats import FORMATS, find_columns
from core.problems import Problem, ProblemsError


@dataclass
class Detection:
    """The chosen format, the reason, the column used for each slot, and the other candidates with scores."""

    format: str
    title: str
    reason: str
    columns: dict[str, str]
    keys: list[str] = field(default_factory=list)  # column names seen in the first rows
    candidates: list[dict] = field(default_factory=list)
    mapped_by_user: list[str] = field(default_factory=list)  # slots whose column the user chose

    def fallbacks(self) -> dict[str, tuple[str, ...]]:
        """Per slot, the names a row may use instead of the mapped column (none for slots the user mapped)."""
        spec = FORMATS[self.format]
        return {slot: names for slot, names in spec.slots.items() if slot not in self.mapped_by_user}

    def to_dict(self) -> dict:
        return asdict(self)


def _image_kind(value: object) -> str | None:
    if isinstance(value, dict):
        return "embedded images (image features with bytes)" if value.get("bytes") else \
            "image features holding paths" if value.get("path") else None
    if isinstance(value, (bytes, bytearray)):
        return "embedded images (bytes)"
    return None  # plain paths need no word


def describe_images(rows: list[dict], column: str | None) -> str:
    """How the image column holds Hugging Face image features (bytes or paths), one or a list per row."""
    if not column:
        return ""
    kinds: dict[str, None] = {}
    lists = False
    for row in rows:
        value = row.get(column)
        if isinstance(value, list):
            lists = True
            for item in value[:4]:
                kind = _image_kind(item)
                if kind:
                    kinds.setdefault(kind, None)
        else:
            kind = _image_kind(value)
            if kind:
                kinds.setdefault(kind, None)
    if not kinds:
        return ""
    return f"'{column}' holds {' and '.join(kinds)}, {'a list per row' if lists else 'one per row'}"


def sample_keys(rows: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        for k in row:
            keys.setdefault(str(k), None)
    return list(keys)


def format_choices() -> list[dict]:
    """Every format with its slots, for an override menu and a column-mapping form."""
    return [{"name": s.name, "title": s.title, "expects": s.expects, "slots": list(s.slots),
             "required": list(s.required)} for s in FORMATS.values()]


def _no_match(keys: list[str], file: str | None) -> ProblemsError:
    known = {name for spec in FORMATS.values() for names in spec.slots.values() for name in names}
    wanted = sorted({names[0] for spec in FORMATS.values() for slot, names in spec.slots.items() if slot != "id"})
    hints = []
    for key in keys:
        if key in known:
            continue
        scored = [(difflib.SequenceMatcher(None, key.lower(), w).ratio(), w) for w in wanted if close_name(w, [key])]
        if scored:
            hints.append(f"'{key}' -> '{max(scored)[1]}'")
    shown = ", ".join(repr(k) for k in keys[:12]) or "none"
    expected = "; ".join(f"{s.title}: {s.expects}" for s in FORMATS.values())
    message = f"could not tell the dataset format from the columns ({shown}). Choose a format in the form and map " \
              f"these columns to its fields, or rename them. Expected one of: {expected}."
    if hints:
        message += " Did you mean " + ", ".join(hints) + "?"
    return ProblemsError([Problem(message, file=file, line=1)])


def detect_format(rows: list[dict], *, override: str | None = None, columns: dict[str, str] | None = None,
                  file: str | None = None) -> Detection:
    """Detect the format of ``rows`` (the first rows of a file); ``override`` and ``columns`` take precedence."""
    keys = sample_keys(rows)
    candidates = []
    for spec in FORMATS.values():
        found = find_columns(spec, rows)
        result = spec.match(rows, found)
        if result:
            candidates.append({"format": spec.name, "score": result[0], "reason": result[1], "columns": found})
    candidates.sort(key=lambda c: -c["score"])
    if override:
        if override not in FORMATS:
            raise ProblemsError([Problem(f"unknown format {override!r}; choose one of {', '.join(FORMATS)}",
                                         field="format")])
        spec = FORMATS[override]
        mapping = find_columns(spec, rows)
        reason = "chosen by you"
    else:
        if not candidates:
            raise _no_match(keys, file)
        spec = FORMATS[candidates[0]["format"]]
        mapping = dict(candidates[0]["columns"])
        reason = candidates[0]["reason"]
    problems = []
    for slot, column in (columns or {}).items():
        if slot not in spec.slots:
            problems.append(Problem(f"the {spec.title} format has no slot {slot!r}; its slots are "
                                    f"{', '.join(spec.slots)}", field="columns"))
        elif not column:
            mapping.pop(slot, None)
        elif rows and column not in keys:
            near = close_name(column, keys)
            hint = f"; did you mean '{near}'?" if near else f"; the columns are {', '.join(keys[:12])}"
            problems.append(Problem(f"column {column!r} (mapped to {slot!r}) is not in the file{hint}",
                                    field="columns", file=file))
        else:
            mapping[slot] = column
    if columns and not problems:
        reason += " (columns mapped by you)"
    for slot in spec.required:
        if slot not in mapping and not problems:
            wanted = spec.slots[slot][0]
            near = close_name(wanted, keys)
            hint = f"; this file has '{near}': did you mean '{wanted}'?" if near else \
                f"; map one of the columns ({', '.join(keys[:12])}) to '{slot}'"
            problems.append(Problem(f"the {spec.title} format needs a '{wanted}' column{hint}", field="columns",
                                    file=file, line=1))
    if problems:
        raise ProblemsError(problems)
    images = describe_images(rows, mapping.get("images") or mapping.get("image"))
    if images:
        reason += f"; {images}"
    return Detection(spec.name, spec.title, reason, mapping, keys, candidates, sorted(columns or {}))
