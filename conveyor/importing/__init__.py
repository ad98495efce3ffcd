"""Importing seed data from a CSV, JSON or JSON Lines file: one task per row.

:func:`import_file` streams the file (memory stays constant whatever its size), validates every
row, reports each bad row with its line number, column and reason (and writes it to a rejects
file), and creates the good rows' tasks in batches through :func:`conveyor.creation.create_tasks`'s
machinery. Keys and value conversion are those of :mod:`conveyor.creation`: a key column, or a
hash of the row's data, so importing the same file again creates nothing new.

The parts: :mod:`~conveyor.importing.importer` (the import), :mod:`~conveyor.importing.reading`
(the file's rows as records, over :mod:`activities.rows`), :mod:`~conveyor.importing.checkpoint`
(the rejects and state files), :mod:`~conveyor.importing.report` (the report and errors),
:mod:`~conveyor.importing.template` (``task template``).

**CSV.** The first line is the header: the pipeline's dataset fields (its ``predefined``
fields), plus the key column when one is named. A header that does not fit (a required field or
the key column missing, a column the pipeline does not know, a repeated column) is reported
once, before any row, with both lists (:class:`HeaderMismatch`). Optional fields may be left out.
Lines are numbered as a text editor shows them (the header is line 1; a record with a quoted
line break is reported at the line it starts on). Files are UTF-8, with or without a BOM.

**JSON Lines** (``.jsonl``): one object per line, the keys being the columns; blank lines are
skipped. **JSON** (``.json``): one array of objects, read incrementally, so its size is not
limited by memory; one element may be at most :data:`activities.rows.MAX_JSON_ITEM_CHARS`
characters. A syntax error inside the array stops the import there (:class:`UnreadableFile`),
since the rest of the array cannot be found reliably; JSON Lines has no such problem: a bad line
is one reject. The file is read by :mod:`activities.rows`, the reader the seeder's file source
shares.

**Rejects.** Each bad row goes to the rejects file with ``_line``, ``_column`` and ``_reason``
first, then the row as it was: a CSV for CSV input, JSON Lines (the object plus those three
keys; ``_raw`` for a line that is not an object) for JSON and JSON Lines input. Rows that
failed to start (Temporal refused or was unreachable) go there too, with an empty ``_column``.
Those three columns are ignored when a file is imported, so a corrected rejects file can be
imported as it is. Duplicate keys are compared within a batch only (see
:mod:`conveyor.creation`); a later batch's row with a key seen before reads as ``exists``.

**Resuming.** With a state file, progress is saved after each batch: the file's identity (path,
size and a hash of its first 64 KiB), the pipeline's name and version, the options, the rows
done and the byte offset (the element count for JSON), the counts so far and the rejects file's
length. The state is written to a temporary file and renamed over the old one, after the
batch's rejects are on disk. Run the same import again after an interruption and it continues
after the last saved batch, cutting the rejects file back to its recorded length; a state file
that describes another file, pipeline version or options is ignored and replaced. Creation is
idempotent, so a batch done twice creates nothing twice: the state file only saves time. It is
removed when the import completes without errors; after a row failed to start it stays at the
last batch before the failure, so the next run retries from there.
"""

from activities.rows import UnreadableFile
from conveyor.importing.importer import DEFAULT_BATCH_SIZE, Progress, detect_format, import_file
from conveyor.importing.report import (
    IMPORT_FORMATS,
    RESERVED_COLUMNS,
    CreationFailed,
    HeaderMismatch,
    ImportFormat,
    ImportReport,
    Reject,
)
from conveyor.importing.template import csv_template

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "IMPORT_FORMATS",
    "RESERVED_COLUMNS",
    "CreationFailed",
    "HeaderMismatch",
    "ImportFormat",
    "ImportReport",
    "Progress",
    "Reject",
    "UnreadableFile",
    "csv_template",
    "detect_format",
    "import_file",
]
