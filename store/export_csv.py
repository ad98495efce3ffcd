"""A CSV export formatted by PostgreSQL and streamed with ``COPY`` (the ops side is
``conveyor.bulk.exporting``): byte-identical to the export's Python path.

Per-row Python work was the export's bottleneck (building models, records and cells; about
170 us a row with the page queries), and so were the per-page queries (each task's node rows
looked up by index, page after page). On PostgreSQL the whole selection is one
``COPY (SELECT ...) TO STDOUT (FORMAT binary)``: the planner joins the node rows in bulk (hash
joins) or by index for small selections, each row's CSV line (``csv_cell`` rules, ``csv.writer``
QUOTE_MINIMAL quoting, CRLF) is built by the query, and Python only joins the lines. Where SQL
could render a value differently from Python by a byte (numbers other than plain integers,
nested values, JSON lists whose text needs escaping, evaluation scores), the row is flagged for
the caller to format in Python. A consensus node's item (its answers and merged result) is
handed over as its JSON text, for the caller to format as the last columns of the line.

The stream is cut into pages of ``page_size`` rows, each handed to the caller (which writes and
checkpoints it), so an interrupted export resumes after its last saved page (the query then
starts after that row). The ``COPY`` runs in the caller's transaction for the whole export: one
consistent snapshot, held for as long as the export takes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    DateTime,
    Select,
    Text,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    not_,
    or_,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from store.explorer import (
    DataColumns,
    Sort,
    SortField,
    TaskFilter,
    decode_cursor,
    encode_cursor,
    filter_clauses,
)
from store.models import EvaluationResultRow, NodeRow, TaskRow
from workflows.graph import FieldSource

EXPORT_SORT = Sort(field=SortField.CREATED_AT)
"""An export's order. Creation order never changes: a task cannot move between pages while an
export runs."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters a spreadsheet would run as a formula: a CSV cell starting with one gets a
``'`` in front (both here and in ``conveyor.bulk.records.neutralise_formula``)."""

_QUOTED = ('"', ",", "\r", "\n")
"""What makes ``csv.writer`` (QUOTE_MINIMAL, CRLF) quote a field: a comma, a quote, CR, LF."""
_FORMULA_CODES = tuple(ord(p) for p in FORMULA_PREFIXES)
"""``ascii()`` of the first characters ``neutralise_formula`` prefixes."""
_SIMPLE_LIST = r'^\[("[^"\\]*"(, "[^"\\]*")*)?\]$'
"""A jsonb list of strings without escapes, as PostgreSQL prints it: ``["a", "b"]``."""
_PLAIN_INT = "^(0|-?[1-9][0-9]*)$"
_LISTS = ("current_nodes", "assignees", "tags")


def copy_supported(session: Session) -> bool:
    """Whether the session's database formats CSV with :class:`CsvCopy` (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


@dataclass(frozen=True)
class CsvPage:
    """One page of the ``COPY``: each row's CSV line, and what the export's state needs."""

    lines: list[bytes]
    flagged: list[tuple[int, str]]
    """(index, workflow id) of the rows SQL may render differently: format them in Python."""
    hashes: list[str]
    """Each row's pipeline version, in order."""
    next_cursor: str | None
    """The keyset cursor after this page (:data:`EXPORT_SORT`); None for the last page."""
    consensus: list[tuple[str | None, ...]]
    """Each row's consensus items as JSON text (None: no item), one per node the ``COPY`` was
    asked for, in that order."""


class CsvCopy:
    """The ``COPY`` query of a pipeline's filtered tasks, one CSV line per task, with the
    ``consensus`` column of each node named in ``consensus``."""

    def __init__(
        self,
        pipeline: str,
        criteria: TaskFilter,
        columns: DataColumns,
        consensus: Sequence[str] = (),
    ):
        self.pipeline = pipeline
        self.columns = columns
        self.consensus = list(consensus)
        # One join per node: the planner hashes node_instances for a big selection and looks
        # nodes up by index for a small one.
        names = dict.fromkeys([*columns.nodes, *(f.node for f in columns.fields), *self.consensus])
        nodes = {name: aliased(NodeRow, name=f"n{i}") for i, name in enumerate(names)}

        # The page: raw values, each computed once (the outer query formats them).
        raw: list[Any] = [
            type_coerce(TaskRow.created_at, DateTime(timezone=True)).label("created_at"),
            TaskRow.workflow_id.label("workflow_id"),
            TaskRow.pipeline_hash.label("pipeline_hash"),
            TaskRow.task_key.label("task_key"),
            TaskRow.status.label("status"),
            TaskRow.hold_reason.label("hold_reason"),
            _utc_text(TaskRow.created_at).label("created_text"),
            _utc_text(TaskRow.updated_at).label("updated_text"),
            _utc_text(TaskRow.finished_at).label("finished_text"),
            cast(TaskRow.current_nodes, Text).label("current_nodes"),
            cast(TaskRow.assignees, Text).label("assignees"),
            cast(TaskRow.tags, Text).label("tags"),
        ]
        raw += [nodes[n].status.label(f"s{i}") for i, n in enumerate(columns.nodes)]
        raw += [cast(nodes[n].consensus, Text).label(f"c{i}") for i, n in enumerate(self.consensus)]
        sources: dict[str, Any] = {}
        for i, spec in enumerate(columns.fields):
            source: Any
            if spec.source == FieldSource.PREDEFINED:
                source = TaskRow.data
            else:
                source = nodes[spec.node].values
            sources.setdefault(str(source), source)
            raw += [
                func.jsonb_typeof(func.jsonb_extract_path(source, spec.field)).label(f"k{i}"),
                func.jsonb_extract_path_text(source, spec.field).label(f"v{i}"),
            ]
        odd = [func.jsonb_typeof(s) != "object" for s in sources.values()]
        if columns.evaluations:
            # Evaluation scores are floats: rows with results take the Python path.
            odd.append(
                select(EvaluationResultRow.id)
                .where(
                    EvaluationResultRow.workflow_id == TaskRow.workflow_id,
                    EvaluationResultRow.pipeline_name == pipeline,
                )
                .exists()
            )
        raw.append(or_(false(), *odd).label("odd"))
        inner = select(*raw).select_from(TaskRow)
        for name, node in nodes.items():
            inner = inner.outerjoin(
                node, and_(node.workflow_id == TaskRow.workflow_id, node.node == name)
            )
        inner = inner.where(*filter_clauses(pipeline, criteria))
        order = (TaskRow.created_at, TaskRow.workflow_id)  # EXPORT_SORT, workflow_id last
        after = tuple_(*order) > tuple_(
            bindparam("after_at", type_=TaskRow.created_at.type),
            bindparam("after_id", type_=TaskRow.workflow_id.type),
        )
        # OFFSET 0 keeps the page a subquery of its own: flattened into the outer query, each
        # raw value would be computed again for every use the formatting makes of it.
        self.first = self._format(inner.order_by(*order).offset(0).subquery("page"))
        self.next = self._format(inner.where(after).order_by(*order).offset(0).subquery("page"))

    def _format(self, page: Any) -> Select[Any]:
        c = page.c
        cells: list[Any] = [
            _sql_text(c.workflow_id),
            _sql_text(c.task_key),
            _sql_text(c.pipeline_hash),
            func.coalesce(c.status, ""),  # a TaskStatus value: never quoted or prefixed
            _sql_text(c.hold_reason),
            _sql_list(c.current_nodes),
            _sql_list(c.assignees),
            _sql_iso(c.created_text),
            _sql_iso(c.updated_text),
            _sql_iso(c.finished_text),
        ]
        cells += [func.coalesce(c[f"s{i}"], "") for i in range(len(self.columns.nodes))]
        unsafe = [c.odd]
        for i in range(len(self.columns.fields)):
            kind, value = c[f"k{i}"], c[f"v{i}"]
            cells.append(
                case(
                    (kind == "string", _sql_text(value)),
                    (kind.in_(("boolean", "number")), value),
                    else_="",
                )
            )
            unsafe.append(
                or_(
                    kind.in_(("array", "object")),
                    and_(kind == "number", not_(value.regexp_match(_PLAIN_INT))),
                )
            )
        cells += ["" for _ in self.columns.evaluations]
        cells.append(_sql_list(c.tags))
        unsafe += [
            not_(or_(func.coalesce(c[n], "[]") == "[]", c[n].regexp_match(_SIMPLE_LIST)))
            for n in _LISTS
        ]
        line = func.concat(
            func.array_to_string(postgresql.array([cast(x, Text) for x in cells]), ","), "\r\n"
        )
        flagged = func.coalesce(or_(*unsafe), false())
        items = [c[f"c{i}"] for i in range(len(self.consensus))]
        return select(line, flagged, c.created_at, c.workflow_id, c.pipeline_hash, *items).order_by(
            c.created_at, c.workflow_id
        )

    def stream(
        self,
        session: Session,
        after: str | None,
        page_size: int,
        on_page: Callable[[CsvPage], None],
    ) -> CsvPage:
        """Stream the rows after the cursor ``after``, handing each full page to ``on_page``
        while the ``COPY`` runs; returns the last page (call it after the transaction ends).
        """
        if after is None:
            statement, params = self.first, {}
        else:
            at, workflow_id = decode_cursor(after, EXPORT_SORT)
            statement, params = self.next, {"after_at": at, "after_id": workflow_id}
        # The timestamps' text form (see _utc_text) depends on DateStyle: pin it.
        session.execute(text("SET LOCAL datestyle = 'ISO, MDY'"))
        # COPY takes no bound parameters: psycopg merges them into the statement.
        compiled = statement.compile(dialect=session.get_bind().dialect)
        expanded = compiled.construct_expanded_state(params)
        driver = session.connection().connection.driver_connection
        assert driver is not None
        pending: list[Any] = []
        with (
            driver.cursor() as cursor,
            cursor.copy(
                f"COPY ({expanded.statement}) TO STDOUT (FORMAT binary)", expanded.parameters
            ) as copy,
        ):
            # The line as bytea: its UTF-8 bytes as they come (no decoding, no encoding).
            copy.set_types(
                ["bytea", "bool", "timestamptz", "text", "text", *(["text"] * len(self.consensus))]
            )
            for row in copy.rows():
                pending.append(row)
                if len(pending) > page_size:  # one more row: there is a next page
                    on_page(_page(pending[:page_size], more=True))
                    del pending[:page_size]
        return _page(pending, more=False)


def _page(rows: list[Any], more: bool) -> CsvPage:
    next_cursor = None
    if more:
        next_cursor = encode_cursor(EXPORT_SORT, rows[-1][2], rows[-1][3])
    return CsvPage(
        lines=[r[0] for r in rows],
        flagged=[(i, r[3]) for i, r in enumerate(rows) if r[1]],
        hashes=[r[4] for r in rows],
        next_cursor=next_cursor,
        consensus=[tuple(r[5:]) for r in rows],
    )


def _sql_text(text: Any) -> Any:
    """``csv_cell`` of a text (NULL: empty) as one CSV field: formulas neutralised, quoted
    when it holds a comma, a quote, CR or LF. (``strpos`` and ``ascii`` rather than regular
    expressions: PostgreSQL converts a whole text to wide characters for every match.)"""
    prefix = case((func.ascii(text).in_(_FORMULA_CODES), "'"))
    return case(
        (
            or_(*(func.strpos(text, char) > 0 for char in _QUOTED)),
            func.concat('"', prefix, func.replace(text, '"', '""'), '"'),
        ),
        else_=func.concat(prefix, text),
    )


def _sql_list(text: Any) -> Any:
    """A JSON list of strings (jsonb text; NULL: ``[]``) as compact JSON in one CSV field
    (rows where it is not :data:`_SIMPLE_LIST` are flagged)."""
    compact = func.replace(func.replace(text, '", "', '","'), '"', '""')
    return case(
        (func.coalesce(text, "[]") == "[]", "[]"),
        else_=func.concat('"', compact, '"'),
    )


def _utc_text(stamp: Any) -> Any:
    """A timestamp as PostgreSQL prints it in UTC (DateStyle ISO): ``2026-01-02 03:04:05.5``."""
    return cast(func.timezone("UTC", stamp), Text)


def _sql_iso(text: Any) -> Any:
    """``_iso`` from :func:`_utc_text`: ``T`` between date and time, the fraction padded to
    microseconds (PostgreSQL trims its trailing zeros; none at all when it is zero), ``+00:00``.
    (``to_char`` would cost about as much as the rest of the row.)"""
    padded = case((func.length(text) == 19, text), else_=func.rpad(text, 26, "0"))
    return case(
        (text.is_not(None), func.concat(func.replace(padded, " ", "T"), "+00:00")),
        else_="",
    )
