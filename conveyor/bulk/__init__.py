"""Bulk actions on a selection of tasks: export and delete.

The parts: :mod:`~conveyor.bulk.selection` (what a bulk action applies to),
:mod:`~conveyor.bulk.records` (an exported task's columns, record and cells, per format),
:mod:`~conveyor.bulk.consensus` (consensus answers in an export: the wide and the long shape),
:mod:`~conveyor.bulk.exporting` (the export), :mod:`~conveyor.bulk.export_state` (a resumable
export's part and state files, its lock, the ZIP), :mod:`~conveyor.bulk.deleting` (the delete).
Their SQL is in :mod:`store.explorer`, :mod:`store.export_csv`, :mod:`store.export_consensus`
and :mod:`store.deletion`.

A selection is explicit workflow ids, a :class:`~store.explorer.TaskFilter`, or a whole
pipeline (an empty filter). Both actions walk the selection in keyset pages
(``store.explorer``), each page in its own short transaction, so memory stays constant and no
long transaction holds the store. The exception is a CSV export on PostgreSQL: one ``COPY``
streams the whole selection, formatted by the database, in one transaction (see
:mod:`store.export_csv`); it is still written and checkpointed page by page.

**Export** writes CSV, JSON (one array), JSON Lines or a ZIP (``tasks.csv`` + ``tasks.jsonl`` +
``manifest.json``), streamed row by row. Its shape is ``wide`` (one row per task; a pipeline's
consensus nodes add their figures and each annotator's answer as the last columns) or ``long``
(one row per answer of a consensus node; a ZIP's members are then ``answers.csv`` and
``answers.jsonl``), see docs/consensus-exports.md. A long export pages through the tasks like a
wide one and writes each page's answers. Rows are read in ``created_at`` order, which never
changes, so every selected task appears exactly once even while tasks change during the export
(tasks created meanwhile may or may not be included).

An export to a path ``out`` is chunked and resumable. Rows go to ``out.part`` (a ZIP's to
``out.part.csv`` and ``out.part.jsonl``); after each page the part files are synced to disk and
``out.part.state`` records the rows written, the keyset cursor, each part's length, the columns
and the pipeline versions seen. Run the same export again after a crash or an interruption and
it continues after the last saved page: each part is cut back to its recorded length, so a
half-written page is written again, never twice, and the columns (and CSV header) stay those
the export started with. When every page is written the file is finished (JSON's closing
bracket; the ZIP is assembled from its parts) and renamed to ``out``, so ``out`` never holds a
half file. A state file left by other options (format, pipeline, filter) is refused, and
nothing is overwritten; ``restart=True`` (``--restart``) discards it. An export to a stream is
written in one go and cannot be resumed.

CSV cells are made safe for spreadsheets: a text cell that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (which Excel, LibreOffice and Google Sheets would run as a
formula) is prefixed with a single quote ``'``. Numbers are written as numbers (a leading ``-``
is a sign, not a formula). JSON and JSONL exports are for programs and are written unchanged.

**Delete** removes each task's Temporal execution (every run of it) and then its store rows, in
chunks with bounded concurrency, and reports each task's outcome. It refuses to run without
``confirm=True`` (``--yes`` on the command line). With a state file it is resumable: finished
chunks are appended to the file, and a rerun with the same file and selection skips them.
"""

from conveyor.bulk.consensus import EXPORT_SHAPES, ExportShape
from conveyor.bulk.deleting import (
    DELETE_CHUNK_SIZE,
    DELETE_CONCURRENCY,
    ConfirmationRequired,
    DeleteOutcome,
    DeleteReport,
    DeleteResult,
    DeleteState,
    StateFileMismatch,
    delete_store_rows,
    delete_tasks,
    delete_workflow,
)
from conveyor.bulk.export_state import ExportBusy, ExportReport, ExportStateMismatch
from conveyor.bulk.exporting import EXPORT_PAGE_SIZE, NoConsensusNodes, check_shape, export
from conveyor.bulk.records import (
    EXPORT_FORMATS,
    METADATA_COLUMNS,
    ExportFormat,
    csv_cell,
    export_columns,
    export_record,
    neutralise_formula,
)
from conveyor.bulk.selection import Progress, Selection
from conveyor.progress import ProgressBar

__all__ = [
    "DELETE_CHUNK_SIZE",
    "DELETE_CONCURRENCY",
    "EXPORT_FORMATS",
    "EXPORT_PAGE_SIZE",
    "EXPORT_SHAPES",
    "METADATA_COLUMNS",
    "ConfirmationRequired",
    "DeleteOutcome",
    "DeleteReport",
    "DeleteResult",
    "DeleteState",
    "ExportBusy",
    "ExportFormat",
    "ExportReport",
    "ExportShape",
    "ExportStateMismatch",
    "NoConsensusNodes",
    "Progress",
    "ProgressBar",
    "Selection",
    "StateFileMismatch",
    "check_shape",
    "csv_cell",
    "delete_store_rows",
    "delete_tasks",
    "delete_workflow",
    "export",
    "export_columns",
    "export_record",
    "neutralise_formula",
]
