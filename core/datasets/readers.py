"""Streaming readers for JSONL, JSON (a top-level list is streamed) and CSV/TSV files, row by row; Parquet and Arrow
in ``columnar``."""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path

from core.datasets.columnar import read_arrow, read_parquet
from core.datasets.limits import ImportLimits, human_size
from core.datasets.problem_log import ProblemLog, RowError
from core.datasets.rows import Progress, RawRow
from core.problems import Problem, ProblemsError

CHUNK = 1024 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")
UTF8_BOM = codecs.BOM_UTF8
UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
JSON_SUFFIXES = (".json",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv")
PARQUET_SUFFIXES = (".parquet",)
ARROW_SUFFIXES = (".arrow",)
TOO_DEEP = ("the JSON nests deeper than the reader allows (about 1,000 levels of lists or objects); the row was "
            "excluded")
DATA_SUFFIXES = JSON_SUFFIXES + JSONL_SUFFIXES + CSV_SUFFIXES + PARQUET_SUFFIXES + ARROW_SUFFIXES


def _encoding_error(raw: bytes, err: UnicodeDecodeError, encoding: str) -> RowError:
    column = len(raw[:err.start].decode(encoding, errors="replace")) + 1
    return RowError("encoding", f"not valid {encoding} text: byte 0x{raw[err.start]:02x} at column {column}; "
                    "save the file as UTF-8, or choose its encoding (for example cp1252 or latin-1)")


def _json_error(err: json.JSONDecodeError, text: str, what: str = "line") -> RowError:
    if err.pos >= len(text.rstrip()) - 1 or err.msg.startswith("Unterminated string"):
        return RowError("json_syntax", f"the {what} ends before its JSON object is complete (column {err.colno}: "
                        f"{err.msg}); the file may be truncated")
    if err.msg.startswith("Expecting property name") and text[err.pos:].lstrip().startswith("}"):
        return RowError("json_syntax", f"trailing comma before '}}' at column {err.colno}; JSON allows no comma after "
                        "the last field")
    return RowError("json_syntax", f"malformed JSON at column {err.colno}: {err.msg}")


def _check_bom(head: bytes, name: str) -> None:
    if head.startswith(UTF16_BOMS):
        raise ProblemsError([Problem("the file is UTF-16 text; save it as UTF-8", file=name, line=1)])


def _first_line(raw: bytes, name: str, log: ProblemLog) -> bytes:
    """The first line with a UTF-8 byte order mark skipped (and noted); other encodings' marks are errors."""
    _check_bom(raw, name)
    if raw.startswith(UTF8_BOM):
        log.warn("note", "the file starts with a UTF-8 byte order mark; it was skipped", file=name, line=1)
        return raw[len(UTF8_BOM):]
    return raw


def read_jsonl(path: Path, name: str, progress: Progress, log: ProblemLog, encoding: str = "utf-8") -> Iterator[RawRow]:
    """One JSON object per line; a bad line is an error for that line only."""
    decoder = json.JSONDecoder()
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            progress.done += len(raw)
            if lineno == 1:
                raw = _first_line(raw, name, log)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as e:
                yield RawRow(lineno, None, _encoding_error(raw, e, encoding))
                continue
            text = text.strip()
            if not text:
                continue
            try:
                value, end = decoder.raw_decode(text)
            except json.JSONDecodeError as e:
                yield RawRow(lineno, None, _json_error(e, text))
                continue
            except RecursionError:
                yield RawRow(lineno, None, RowError("too_deep", TOO_DEEP))
                continue
            rest = text[end:].strip()
            if rest == ",":
                yield RawRow(lineno, None, RowError("json_syntax", "trailing comma after the object; JSONL has one "
                                                    "object per line with no commas between lines"))
            elif rest:
                yield RawRow(lineno, None, RowError("json_syntax", f"unexpected text after the JSON object at column "
                                                    f"{end + 1}: {rest[:20]!r}; JSONL has one object per line"))
            elif not isinstance(value, dict):
                yield RawRow(lineno, None, RowError("wrong_type", f"expected a JSON object on this line, found "
                                                    f"{type(value).__name__}"))
            else:
                yield RawRow(lineno, value)


class _JsonStream:
    """A growing text buffer over a file, with the line number of any position."""

    def __init__(self, f, encoding: str, progress: Progress, name: str):
        self.f = f
        self.encoding = encoding
        self.decoder = codecs.getincrementaldecoder(encoding)()
        self.progress = progress
        self.name = name
        self.buf = ""
        self.pos = 0
        self.line = 1  # line number at self.pos
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(CHUNK)
        self.progress.done += len(chunk)
        try:
            text = self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            line = self.line + self.buf.count("\n", self.pos)
            byte = chunk[e.start] if e.start < len(chunk) else 0
            raise ProblemsError([Problem(f"not valid {self.encoding} text near line {line} (byte 0x{byte:02x}); "
                                         "save the file as UTF-8, or choose its encoding (for example cp1252)",
                                         file=self.name, line=line)]) from None
        if not chunk:
            self.eof = True
        if self.pos > CHUNK:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += text
        return bool(chunk)

    def advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def skip_ws(self) -> str:
        """The next non-space character ('' at the end of the file), leaving pos on it."""
        while True:
            self.advance(_WHITESPACE.match(self.buf, self.pos).end())
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def fatal(self, message: str, line: int | None = None) -> ProblemsError:
        return ProblemsError([Problem(message, file=self.name, line=line or self.line)])


def read_json(path: Path, name: str, progress: Progress, log: ProblemLog, limits: ImportLimits,
              encoding: str = "utf-8") -> Iterator[RawRow]:
    """A JSON file: a top-level list is streamed element by element; a top-level object is loaded whole."""
    decoder = json.JSONDecoder()
    with path.open("rb") as f:
        head = f.read(4)
        _check_bom(head, name)
        if head.startswith(UTF8_BOM):
            f.seek(len(UTF8_BOM))
            log.warn("note", "the file starts with a UTF-8 byte order mark; it was skipped", file=name, line=1)
        else:
            f.seek(0)
        s = _JsonStream(f, encoding, progress, name)
        first = s.skip_ws()
        if first == "{":
            yield from _json_object_rows(path, s, name, limits)
            return
        if first != "[":
            raise s.fatal("expected a JSON list of rows ('[' ...) or an object" if first else "the file is empty")
        s.advance(s.pos + 1)
        expect_value, after_comma = True, False
        while True:
            c = s.skip_ws()
            if c == "":
                raise s.fatal("the file ends before the JSON list is closed with ']'; it may be truncated")
            if c == "]":
                if not after_comma:
                    break
                log.warn("json_syntax", "trailing comma before ']'; JSON allows no comma after the last row "
                         "(the rows were read anyway)", file=name, line=s.line)
                break
            if c == ",":
                if expect_value:
                    raise s.fatal("unexpected ',' where a row was expected (two commas in a row?)")
                s.advance(s.pos + 1)
                expect_value = after_comma = True
                continue
            if not expect_value:
                raise s.fatal(f"expected ',' or ']' between rows, found {c!r} (is a comma missing before this row?)")
            start_line = s.line
            value, end = _decode_element(s, decoder, start_line)
            if value is _TRUNCATED:
                yield RawRow(start_line, None, RowError("json_syntax", "the file ends inside this row; it looks "
                                                        "truncated (the rows before it were read)"))
                return
            s.advance(end)
            if value is _TOO_DEEP:
                yield RawRow(start_line, None, RowError("too_deep", TOO_DEEP))
                expect_value = after_comma = False
                continue
            expect_value = after_comma = False
            if isinstance(value, dict):
                yield RawRow(start_line, value)
            else:
                yield RawRow(start_line, None, RowError("wrong_type", f"expected an object for this row, found "
                                                        f"{type(value).__name__}"))
        s.advance(s.pos + 1)
        if s.skip_ws():
            raise s.fatal("unexpected text after the closing ']' of the list")


_TRUNCATED = object()
_TOO_DEEP = object()


def _skip_nested(s: _JsonStream) -> int:
    """The end of the object or list at s.pos, found by counting brackets outside strings (for a value too deeply
    nested to decode); reads more of the file as needed. The file's end before it closes is a truncated row."""
    depth, i, in_string, escaped = 0, s.pos, False, False
    while True:
        if i >= len(s.buf):
            offset = i - s.pos
            if not s.more():
                return -1
            i = s.pos + offset  # more() may have dropped what lay before pos
            continue
        c = s.buf[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1


def _decode_element(s: _JsonStream, decoder: json.JSONDecoder, start_line: int):
    """Decode the value at s.pos, reading more of the file until the value is complete or clearly malformed."""
    last = None
    while True:
        try:
            return decoder.raw_decode(s.buf, s.pos)
        except RecursionError:
            end = _skip_nested(s)
            return (_TRUNCATED, 0) if end < 0 else (_TOO_DEEP, end)
        except json.JSONDecodeError as e:
            key = (e.msg, s.buf.count("\n", s.pos, e.pos), e.pos - s.pos)
            if s.eof:
                if e.pos >= len(s.buf.rstrip()) - 1 or e.msg.startswith("Unterminated string"):
                    return _TRUNCATED, 0
                raise s.fatal(f"malformed JSON in the row starting at line {start_line} (column {e.colno}): {e.msg}; "
                              "rows after it cannot be read", line=_abs_line(s, e)) from None
            if key == last:
                raise s.fatal(f"malformed JSON in the row starting at line {start_line} (column {e.colno}): {e.msg}; "
                              "rows after it cannot be read", line=_abs_line(s, e)) from None
            last = key
            s.more()


def _abs_line(s: _JsonStream, e: json.JSONDecodeError) -> int:
    return s.line + s.buf.count("\n", s.pos, e.pos)


def _json_object_rows(path: Path, s: _JsonStream, name: str, limits: ImportLimits) -> Iterator[RawRow]:
    size = path.stat().st_size
    if size > limits.max_json_object_bytes:
        raise s.fatal(f"a JSON file whose top level is an object is read whole, and this one is {human_size(size)} "
                      f"(limit {human_size(limits.max_json_object_bytes)}); convert it to JSONL or a JSON list", line=1)
    while s.more():
        pass
    try:
        data = json.loads(s.buf[s.pos:])
    except json.JSONDecodeError as e:
        raise s.fatal(f"malformed JSON at column {e.colno}: {e.msg}", line=s.line + e.lineno - 1) from None
    except RecursionError:
        raise s.fatal("the file is one JSON object and " + TOO_DEEP.replace("; the row was excluded", "")) from None
    lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
    if len(lists) == 1 and not {"messages", "conversations", "images"} & {lists[0]}:
        for row in data[lists[0]]:
            yield RawRow(None, row)
    else:
        yield RawRow(1, data)


def _csv_lines(f, encoding: str, progress: Progress, bad: dict[int, RowError], name: str,
               log: ProblemLog) -> Iterator[str]:
    """Decoded lines; a line that is not valid text is recorded in ``bad`` and yielded with replacements."""
    for lineno, raw in enumerate(f, 1):
        progress.done += len(raw)
        if lineno == 1:
            raw = _first_line(raw, name, log)
        try:
            yield raw.decode(encoding)
        except UnicodeDecodeError as e:
            bad[lineno] = _encoding_error(raw, e, encoding)
            yield raw.decode(encoding, errors="replace")


def read_csv(path: Path, name: str, progress: Progress, log: ProblemLog, encoding: str = "utf-8") -> Iterator[RawRow]:
    """A CSV (or TSV) file with a header row; line numbers are those an editor shows."""
    csv.field_size_limit(64 * 1024 * 1024)
    bad: dict[int, RowError] = {}
    with path.open("rb") as f:
        sample = f.read(64 * 1024)
        f.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(sample)
        reader = csv.reader(_csv_lines(f, encoding, progress, bad, name, log), delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ProblemsError([Problem("the CSV file is empty; expected a header row", file=name, line=1)]) from None
        except csv.Error as e:
            raise ProblemsError([Problem(f"the header row is malformed CSV: {e}", file=name, line=1)]) from None
        header = [h.strip() for h in header]
        if not any(header):
            raise ProblemsError([Problem("the first line should name the columns", file=name, line=1)])
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise ProblemsError([Problem(f"column names appear twice in the header: {', '.join(dupes)}",
                                         file=name, line=1)])
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield RawRow(start, None, RowError("csv_syntax", f"malformed CSV: {e}"))
                continue
            spanned = range(start, reader.line_num + 1)
            bad_here = [n for n in spanned if n in bad]
            for n in bad_here[1:]:
                bad.pop(n)
            if bad_here:
                yield RawRow(bad_here[0], None, bad.pop(bad_here[0]))
                continue
            if not values or values == [""]:
                continue
            if len(values) != len(header):
                yield RawRow(start, None, RowError(
                    "csv_syntax", f"expected {len(header)} columns ({', '.join(header)}), found {len(values)}; a value "
                    "containing the separator or a line break must be in double quotes"))
                continue
            yield RawRow(start, dict(zip(header, values, strict=True)))


def _sniff_delimiter(sample: bytes) -> str:
    text = sample.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_rows(path: Path, name: str, progress: Progress, log: ProblemLog, limits: ImportLimits,
              encoding: str = "utf-8") -> Iterator[RawRow]:
    """Rows of any supported data file, chosen by its suffix (a .json holding JSON Lines is read as JSONL)."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES or (suffix in JSON_SUFFIXES and _looks_like_jsonl(path)):
        return read_jsonl(path, name, progress, log, encoding)
    if suffix in JSON_SUFFIXES:
        return read_json(path, name, progress, log, limits, encoding)
    if suffix in CSV_SUFFIXES:
        return read_csv(path, name, progress, log, encoding)
    if suffix in PARQUET_SUFFIXES:
        return read_parquet(path, name, progress)
    if suffix in ARROW_SUFFIXES:
        return read_arrow(path, name, progress)
    raise ProblemsError([Problem(f"unsupported file type {suffix or '(none)'!r}; expected one of "
                                 f"{', '.join(DATA_SUFFIXES)} or a zip", file=name)])


def _looks_like_jsonl(path: Path) -> bool:
    """A .json file whose first line is a complete object and whose next line starts another one."""
    with path.open("rb") as f:
        first = f.readline(CHUNK).lstrip(UTF8_BOM).strip()
        second = f.readline(CHUNK).strip()
    if not (first.startswith(b"{") and second.startswith(b"{")):
        return False
    try:
        json.loads(first)
    except ValueError:
        return False
    return True
