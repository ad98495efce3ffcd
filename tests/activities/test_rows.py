"""The one reader of seed files: line numbers, resuming, JSON arrays element by element."""

from __future__ import annotations

import io
import json

import pytest

from activities.rows import (
    CsvRows,
    JsonArrayError,
    JsonArrayRows,
    JsonLinesRows,
    UnreadableFile,
)


def test_csv_records_start_at_their_first_line_and_resume_from_a_position() -> None:
    data = '\ufefftext,n\n"two\nlines",1\n\nx,2\n'.encode()
    rows = CsvRows(io.BytesIO(data))
    got = [(r.line, r.value) for r in rows]
    assert got == [(1, ["text", "n"]), (2, ["two\nlines", "1"]), (4, []), (5, ["x", "2"])]

    fb = io.BytesIO(data)
    rows = CsvRows(fb)
    read = iter(rows)
    next(read), next(read)
    again = CsvRows(fb, rows.position().offset, rows.position().line)
    assert [(r.line, r.value) for r in again] == [(4, []), (5, ["x", "2"])]


def test_json_lines_skip_blank_lines_and_keep_bad_lines_as_rows() -> None:
    rows = list(JsonLinesRows(io.BytesIO(b'{"a": 1}\n\n  \nnope\r\n[2]\n')))
    assert [(r.line, r.value) for r in rows] == [(1, {"a": 1}), (4, "nope"), (5, [2])]
    assert isinstance(rows[1].error, json.JSONDecodeError)


def test_text_that_is_not_utf8_stops_the_reading() -> None:
    with pytest.raises(UnreadableFile, match="line 2 is not UTF-8 text"):
        list(CsvRows(io.BytesIO(b"a,b\n\xff,1\n")))


def test_a_json_array_is_read_element_by_element() -> None:
    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            self.largest = max(getattr(self, "largest", 0), len(chunk))
            return chunk

    item = {"text": "x" * 1000}
    fb = Counting(json.dumps([item] * 2000, indent=1).encode())
    reader = JsonArrayRows(fb)
    rows = iter(reader)
    first = next(rows)
    assert (first.line, first.value) == (2, item)
    assert reader.position().bytes_read < 200_000  # not the whole 2 MB file
    assert sum(1 for _ in rows) == 1999
    assert fb.largest <= 128 * 1024

    skipped = list(JsonArrayRows(io.BytesIO(b"[1,\n 2,\n 3]"), skip=2))
    assert [(r.line, r.value) for r in skipped] == [(3, 3)]


@pytest.mark.parametrize(
    ("text", "line", "detail"),
    [
        ('{"a": 1}', 1, None),
        ("", 1, "Expecting value"),
        ('[{"a": 1}\n {"b": 2}]', 2, "Expecting ',' delimiter"),
        ("[1] x", 1, "Extra data"),
        ('[1,\n{"b": }]', 2, "Expecting value"),
    ],
)
def test_a_json_file_that_is_not_one_array(text: str, line: int, detail: str | None) -> None:
    with pytest.raises(JsonArrayError) as caught:
        list(JsonArrayRows(io.BytesIO(text.encode())))
    assert (caught.value.line, caught.value.detail) == (line, detail)
