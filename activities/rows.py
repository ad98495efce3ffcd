"""Rows of a CSV, JSON Lines or JSON file, streamed: the one reader of seed data.

Used by the file importer (``conveyor.importing``) and the seeder's file source
(``activities.seeding``); each gives the rows its own meaning (header checks, rejects, error
texts). Pure: no Temporal, no store.

* **CSV** (:class:`CsvRows`): every record, blank lines as ``[]``, each with the line it starts
  on as a text editor shows it (a record with a quoted line break is at its first line); a cell
  may be up to :data:`CSV_FIELD_LIMIT` characters.
* **JSON Lines** (:class:`JsonLinesRows`): one value per line; blank lines are not rows; a line
  that is not JSON is a row with its error.
* **JSON** (:class:`JsonArrayRows`): the elements of one array, decoded one at a time from a
  buffer refilled as needed, so memory stays constant whatever the file's size; one element may
  be at most :data:`MAX_JSON_ITEM_CHARS` characters. A syntax error stops the reading
  (:class:`JsonArrayError`): the rest of the array cannot be found reliably.

Files are UTF-8, with or without a BOM; text that is not stops the reading
(:class:`UnreadableFile`). CSV and JSON Lines can be read on from a byte offset and line (see
``position()``); JSON from an element count.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from workflows.errors import Invalid

MAX_JSON_ITEM_CHARS = 16 * 1024 * 1024
CSV_FIELD_LIMIT = 16 * 1024 * 1024
"""The largest CSV cell read (Python's csv module stops at 128 KiB by default)."""

_CHUNK = 64 * 1024
_BOM = codecs.BOM_UTF8


class UnreadableFile(Invalid, ValueError):
    """The file cannot be read on (not UTF-8, not a JSON array, a JSON syntax error)."""


class JsonArrayError(UnreadableFile):
    """A JSON file that is not one array of values, or a syntax error inside the array."""

    def __init__(self, message: str, line: int, detail: str | None):
        super().__init__(message)
        self.line = line
        """The line of the error."""
        self.detail = detail
        """What :func:`json.loads` would say (e.g. ``Expecting ',' delimiter``); None when the
        file holds something other than an array."""


@dataclass(frozen=True)
class Position:
    line: int
    """Lines read so far."""
    offset: int
    """Bytes of whole rows read so far (CSV, JSON Lines); elements for JSON."""
    bytes_read: int
    """Bytes read from the file, for progress."""


@dataclass(frozen=True)
class RawRow:
    """One row as read, before any caller's meaning is given to it."""

    line: int
    """The line the row starts on."""
    value: Any
    """CSV: the cells (``[]`` for a blank line; ``[]`` too when the record is not valid CSV);
    JSON Lines: the value, or the line's text without its line break when it is not JSON;
    JSON: the element."""
    error: csv.Error | json.JSONDecodeError | None = None
    """Why the row could not be parsed (CSV, JSON Lines)."""


class Lines:
    """A binary file's lines, decoded, counting lines and bytes (``tell`` does not work in a
    text file that is being iterated)."""

    def __init__(self, fb: IO[bytes], offset: int = 0, line: int = 0):
        fb.seek(offset)
        self.fb = fb
        self.offset = offset
        self.line = line

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> str:
        raw = self.fb.readline()
        if not raw:
            raise StopIteration
        at_start = self.offset == 0
        self.line += 1
        self.offset += len(raw)
        if at_start and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UnreadableFile(
                f"line {self.line} is not UTF-8 text (byte {raw[err.start]:#04x} at position "
                f"{err.start + 1}); save the file as UTF-8 (in Excel: CSV UTF-8)"
            ) from None


class CsvRows:
    """Every CSV record from ``offset`` (at ``line``), blank lines included as ``[]``
    (iterate once)."""

    def __init__(self, fb: IO[bytes], offset: int = 0, line: int = 0):
        if csv.field_size_limit() < CSV_FIELD_LIMIT:
            csv.field_size_limit(CSV_FIELD_LIMIT)
        self.lines = Lines(fb, offset, line)
        self.reader = csv.reader(self.lines)
        self._iter = self._rows()

    def __iter__(self) -> Iterator[RawRow]:
        return self._iter

    def _rows(self) -> Iterator[RawRow]:
        while True:
            first = self.lines.line + 1
            try:
                cells = next(self.reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield RawRow(first, [], err)
                continue
            yield RawRow(first, cells)

    def position(self) -> Position:
        return Position(self.lines.line, self.lines.offset, self.lines.offset)


class JsonLinesRows:
    """One JSON value per non-blank line from ``offset`` (at ``line``) (iterate once)."""

    def __init__(self, fb: IO[bytes], offset: int = 0, line: int = 0):
        self.lines = Lines(fb, offset, line)
        self._iter = self._rows()

    def __iter__(self) -> Iterator[RawRow]:
        return self._iter

    def _rows(self) -> Iterator[RawRow]:
        for text in self.lines:
            if not text.strip():
                continue
            line = self.lines.line
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                yield RawRow(line, text.rstrip("\r\n"), err)
                continue
            yield RawRow(line, value)

    def position(self) -> Position:
        return Position(self.lines.line, self.lines.offset, self.lines.offset)


class JsonArrayRows:
    """The elements of a JSON array after the first ``skip``, decoded one at a time from a
    buffer refilled as needed (iterate once).

    Raises (while iterating):
        JsonArrayError: the file is not one array, or the array has a syntax error (the
            elements before it have been yielded).
        UnreadableFile: the file is not UTF-8 text.
    """

    def __init__(self, fb: IO[bytes], skip: int = 0):
        self.fb = fb
        self.skip = skip
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.json = json.JSONDecoder()
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False
        self.bytes_read = 0
        self.elements = 0
        self._iter = self._rows()

    def __iter__(self) -> Iterator[RawRow]:
        return self._iter

    def position(self) -> Position:
        return Position(self.line, self.elements, self.bytes_read)

    def _fill(self) -> bool:
        if self.eof:
            return False
        # Read as much again as is buffered: an element cut by the buffer's end is parsed
        # again after each read, so growing geometrically keeps a large element linear.
        raw = self.fb.read(max(_CHUNK, len(self.buf) - self.pos))
        self.bytes_read += len(raw)
        try:
            text = self.decoder.decode(raw, final=not raw)
        except UnicodeDecodeError:
            raise UnreadableFile(
                f"near line {self.line}: not UTF-8 text; save the file as UTF-8"
            ) from None
        if not raw:
            self.eof = True
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return bool(raw) or bool(text)

    def _advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def _next_char(self) -> str:
        """Skip whitespace; the next character ('' at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                if self.buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def _value(self) -> Any:
        while True:
            try:
                value, end = self.json.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as err:
                if len(self.buf) - self.pos < MAX_JSON_ITEM_CHARS and self._fill():
                    continue
                line = self.line + self.buf.count("\n", self.pos, err.pos)
                raise JsonArrayError(
                    f"line {line}: not valid JSON ({err.msg}); the array cannot be read on "
                    "from here (rows before it were imported). JSON Lines (.jsonl) lets one "
                    "bad line be a reject instead",
                    line,
                    err.msg,
                ) from None
            if end == len(self.buf) and not self.eof and self._fill():
                continue  # a number at the end of the buffer may go on
            self._advance(end)
            return value

    def _expected(self, what: str, detail: str | None) -> JsonArrayError:
        found = self._next_char()
        shown = repr(found) if found else "the end of the file"
        if detail is None and not found:
            detail = "Expecting value"  # an empty file
        return JsonArrayError(
            f"line {self.line}: expected {what}, found {shown}; "
            "a .json import is one array of objects: [{...}, {...}] (or use .jsonl, one "
            "object per line)",
            self.line,
            detail,
        )

    def _not_an_array(self) -> JsonArrayError:
        error = self._expected("'[' at the start", None)
        if error.detail is None:
            try:  # a value other than an array, or not JSON at all (as json.loads tells)
                self._value()
            except JsonArrayError as err:
                error.line, error.detail = err.line, err.detail
        return error

    def _rows(self) -> Iterator[RawRow]:
        if self._next_char() != "[":
            raise self._not_an_array()
        self.pos += 1
        first = True
        while True:
            char = self._next_char()
            if char == "]":
                self.pos += 1
                if self._next_char() != "":
                    raise self._expected("nothing after the closing ']'", "Extra data")
                return
            if not first:
                if char != ",":
                    raise self._expected("',' or ']'", "Expecting ',' delimiter")
                self.pos += 1
                if self._next_char() == "":
                    raise self._expected("a value", "Expecting value")
            first = False
            line = self.line
            value = self._value()
            self.elements += 1
            if self.elements <= self.skip:
                continue
            yield RawRow(line, value)
