"""The rows of an import's file as records: the CSV header checked, reserved columns dropped,
unreadable rows kept with their reason (the file is read by :mod:`activities.rows`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from activities.rows import (
    CsvRows,
    JsonArrayRows,
    JsonLinesRows,
    Position,
    UnreadableFile,
)
from conveyor.creation import (
    PreparedRow,
    SeedRows,
)
from conveyor.importing.report import RESERVED_COLUMNS, HeaderMismatch, ImportFormat, Record

if TYPE_CHECKING:
    from conveyor.importing.checkpoint import ImportState


class _Reader:
    header: list[str] | None = None
    failure: UnreadableFile | None = None
    """Where the file stopped making sense, raised once the rows before it are done."""

    def records(self) -> Iterator[Record]:
        raise NotImplementedError

    def position(self) -> Position:
        raise NotImplementedError


def open_reader(
    kind: ImportFormat, fb: IO[bytes], checker: SeedRows, state: ImportState
) -> _Reader:
    if kind == "csv":
        return _CsvReader(fb, checker, state)
    if kind == "jsonl":
        return _JsonLinesReader(fb, checker, state)
    return _JsonArrayReader(fb, checker, state)


def _ignored(checker: SeedRows) -> set[str]:
    known = set(checker.columns())
    return {c for c in RESERVED_COLUMNS if c not in known}


def read_batch(
    reader: _Reader, checker: SeedRows, size: int
) -> list[tuple[Record, PreparedRow | None]]:
    if reader.failure is not None:
        raise reader.failure
    batch: list[tuple[Record, PreparedRow | None]] = []
    try:
        for record in reader.records():
            prepared = checker.prepare(record.row) if record.row is not None else None
            batch.append((record, prepared))
            if len(batch) >= size:
                break
    except UnreadableFile as err:
        if not batch:
            raise
        reader.failure = err  # the rows before it are imported first
    return batch


class _CsvReader(_Reader):
    def __init__(self, fb: IO[bytes], checker: SeedRows, state: ImportState):
        rows = CsvRows(fb)
        header: list[str] | None = None
        for raw in rows:
            if raw.error is not None:
                raise raw.error
            if raw.value:
                header = raw.value
                break
        if header is None:
            raise UnreadableFile(
                "the file is empty; its first line must be the header: "
                + ",".join(checker.columns())
            )
        self.header = header
        names = [h.strip() for h in header]
        _check_header(names, checker)
        ignored = _ignored(checker)
        self.keep = [(i, name) for i, name in enumerate(names) if name not in ignored]
        if state.rows > 0:  # resume after the last saved batch
            rows = CsvRows(fb, state.offset, state.line)
        self.rows = rows
        self._iter = self._records()

    def records(self) -> Iterator[Record]:
        return self._iter

    def position(self) -> Position:
        return self.rows.position()

    def _records(self) -> Iterator[Record]:
        assert self.header is not None
        width = len(self.header)
        for raw in self.rows:
            cells: list[str] = raw.value
            if raw.error is not None:
                yield Record(raw.line, None, [], ("", f"not valid CSV: {raw.error}"))
                continue
            if not cells:
                continue  # a blank line
            if len(cells) != width:
                problem = f"{len(cells)} cells, but the header has {width} columns"
                yield Record(raw.line, None, cells, ("", problem))
                continue
            row = {name: cells[i] for i, name in self.keep}
            yield Record(raw.line, row, cells)


def _required(checker: SeedRows) -> list[str]:
    missing = [name for name, spec in checker.fields.items() if spec.required]
    if checker.key_column is not None and not checker.key_is_field:
        missing.insert(0, checker.key_column)
    return missing


def _check_header(names: list[str], checker: SeedRows) -> None:
    known = checker.columns()
    ignored = _ignored(checker)
    present = set(names)
    missing = [name for name in _required(checker) if name not in present]
    if checker.key_column is not None and checker.key_column not in present:
        missing = list(dict.fromkeys([checker.key_column, *missing]))
    unknown = [n for n in dict.fromkeys(names) if n not in known and n not in ignored]
    duplicated = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if missing or unknown or duplicated:
        raise HeaderMismatch(missing, unknown, known, duplicated)


class _JsonLinesReader(_Reader):
    def __init__(self, fb: IO[bytes], checker: SeedRows, state: ImportState):
        self.rows = JsonLinesRows(fb, state.offset, state.line)
        self.ignored = _ignored(checker)
        self._iter = self._records()

    def records(self) -> Iterator[Record]:
        return self._iter

    def position(self) -> Position:
        return self.rows.position()

    def _records(self) -> Iterator[Record]:
        for raw in self.rows:
            err = raw.error
            if isinstance(err, json.JSONDecodeError):
                problem = f"not valid JSON ({err.msg} at column {err.colno})"
                yield Record(raw.line, None, {"_raw": raw.value}, ("", problem))
                continue
            yield _json_record(raw.line, raw.value, self.ignored)


def _json_record(line: int, value: Any, ignored: set[str]) -> Record:
    if not isinstance(value, dict):
        problem = f'a JSON {type(value).__name__}, not an object like {{"column": value}}'
        return Record(line, None, {"_raw": value}, ("", problem))
    row = {k: v for k, v in value.items() if k not in ignored}
    return Record(line, row, row)


class _JsonArrayReader(_Reader):
    """Elements of a JSON array, decoded one at a time (:class:`~activities.rows.JsonArrayRows`)."""

    def __init__(self, fb: IO[bytes], checker: SeedRows, state: ImportState):
        self.rows = JsonArrayRows(fb, skip=state.rows)
        ignored = _ignored(checker)
        self._iter = (_json_record(raw.line, raw.value, ignored) for raw in self.rows)

    def records(self) -> Iterator[Record]:
        return self._iter

    def position(self) -> Position:
        return self.rows.position()
