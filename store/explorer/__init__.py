"""The Data Explorer's queries: header counts, filtered and sorted pages, task data, task detail.

Pure functions over a caller's :class:`~sqlalchemy.orm.Session` (they never commit), returning
frozen pydantic models; the CLI (``conveyor/cli/explorer.py``), bulk actions
(``conveyor/bulk/``) and the HTTP API share them.

Pages use **keyset pagination**, never ``OFFSET``: a page is "the next ``limit`` rows after the
last row of the previous one" in ``(sort value, workflow_id)`` order, so page 20,000 costs what
page 1 does (an index range scan), and a row is never shown twice or skipped because rows before
it were inserted or deleted meanwhile. The cursor that marks "after" is opaque to callers.

Speed on a million tasks comes from indexes that lead with ``pipeline_name`` and end with the
sort column and ``workflow_id`` (see ``store/models.py``). Filters on nodes, assignees and tags
are ``EXISTS`` sub-queries over indexed columns. The text filter is a case-insensitive substring
match over ``tasks.search_text``: it scans the pipeline's rows that pass the other filters (a
page stops as soon as it has ``limit`` matches), so it is fast for common words and slower for
rare ones on very large pipelines.

The package is this public face over its modules, each one concern: ``base`` (page sizes, the
frozen base model, :class:`InvalidCursor` and :class:`TaskNotFound`), ``filters``
(:class:`TaskFilter`, :class:`Sort`, the WHERE clauses, :func:`count_tasks`), ``cursors``
(opaque cursors, the index ranges after one, :func:`page_ids`), ``versions`` (stored pipeline
versions, parsed once per process), ``lists`` (header counts, the Task Data columns,
:func:`page`) and ``detail`` (:func:`task_detail`: the Nodes and Timeline views). Import from
``store.explorer``, not from the modules.
"""

from store.explorer.base import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, InvalidCursor, TaskNotFound
from store.explorer.cursors import decode_cursor, encode_cursor, page_ids
from store.explorer.detail import (
    BULK_SOURCE,
    ConsensusDetail,
    EvaluationEntry,
    LlmCallEntry,
    NodeDetail,
    ReviewEntry,
    SubmissionEntry,
    TaskDetail,
    TimelineEntry,
    bulk_evaluation_entry,
    task_detail,
)
from store.explorer.filters import (
    Sort,
    SortField,
    TaskFilter,
    count_tasks,
    filter_clauses,
    like_pattern,
)
from store.explorer.lists import (
    DataColumns,
    FieldColumn,
    HeaderCounts,
    Page,
    TaskSummary,
    data_columns,
    header_counts,
    page,
)
from store.explorer.versions import parsed_version, pipeline_versions

__all__ = [
    "BULK_SOURCE",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "ConsensusDetail",
    "DataColumns",
    "EvaluationEntry",
    "FieldColumn",
    "HeaderCounts",
    "InvalidCursor",
    "LlmCallEntry",
    "NodeDetail",
    "Page",
    "ReviewEntry",
    "Sort",
    "SortField",
    "SubmissionEntry",
    "TaskDetail",
    "TaskFilter",
    "TaskNotFound",
    "TaskSummary",
    "TimelineEntry",
    "bulk_evaluation_entry",
    "count_tasks",
    "data_columns",
    "decode_cursor",
    "encode_cursor",
    "filter_clauses",
    "header_counts",
    "like_pattern",
    "page",
    "page_ids",
    "parsed_version",
    "pipeline_versions",
    "task_detail",
]
