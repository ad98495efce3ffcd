"""An exported task: its columns, its flat record and how each format writes it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from store.explorer import DataColumns, TaskSummary
from store.export_csv import FORMULA_PREFIXES

ExportFormat = Literal["csv", "json", "jsonl", "zip"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "jsonl", "zip")

METADATA_COLUMNS = (
    "workflow_id",
    "task_key",
    "pipeline_hash",
    "status",
    "hold_reason",
    "current_nodes",
    "assignees",
    "created_at",
    "updated_at",
    "finished_at",
)


def export_columns(columns: DataColumns) -> list[str]:
    """Every column of an export, in order: metadata, node statuses, fields, evals, tags."""
    return [
        *METADATA_COLUMNS,
        *(f"node_status.{n}" for n in columns.nodes),
        *columns.field_names,
        *columns.evaluations,
        "tags",
    ]


def export_record(row: TaskSummary, columns: DataColumns) -> dict[str, Any]:
    """One task as a flat, JSON-ready record keyed by :func:`export_columns`.

    Missing values are None; timestamps are ISO 8601 in UTC; lists and dicts stay nested.
    """
    values = row.values or {}
    record: dict[str, Any] = {
        "workflow_id": row.workflow_id,
        "task_key": row.task_key,
        "pipeline_hash": row.pipeline_hash,
        "status": row.status.value,
        "hold_reason": row.hold_reason,
        "current_nodes": row.current_nodes,
        "assignees": row.assignees,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "finished_at": iso(row.finished_at),
    }
    for node in columns.nodes:
        status = row.node_statuses.get(node)
        record[f"node_status.{node}"] = status.value if status is not None else None
    for name in (*columns.field_names, *columns.evaluations):
        record[name] = values.get(name)
    record["tags"] = row.tags
    return record


def csv_cell(value: Any) -> str:
    """A value as CSV text: nested values as compact JSON (sorted keys), formulas neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, datetime):
        return iso(value) or ""
    text = compact_json(value) if isinstance(value, list | dict) else str(value)
    return neutralise_formula(text)


def neutralise_formula(text: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula (CSV injection)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


@dataclass(frozen=True)
class Part:
    """One data file of an export: its header, each row's bytes (given the row's index), end."""

    suffix: str
    header: bytes
    row: Callable[[dict[str, Any], int], bytes]
    footer: bytes = b""


def parts_of(fmt: ExportFormat, names: list[str]) -> list[Part]:
    def csv_row(record: dict[str, Any], _: int) -> bytes:
        return csv_line([csv_cell(record[name]) for name in names])

    def jsonl_row(record: dict[str, Any], _: int) -> bytes:
        return (json_line(record) + "\n").encode()

    def json_row(record: dict[str, Any], index: int) -> bytes:
        # The separator goes before a record, so a file cut back to a checkpoint stays valid.
        return (("\n" if index == 0 else ",\n") + json_line(record)).encode()

    if fmt == "csv":
        return [Part("", csv_line(names), csv_row)]
    if fmt == "jsonl":
        return [Part("", b"", jsonl_row)]
    if fmt == "json":
        return [Part("", b"[", json_row, b"\n]\n")]
    # A ZIP is written one member at a time: its data parts are separate files until the end.
    return [Part(".csv", csv_line(names), csv_row), Part(".jsonl", b"", jsonl_row)]


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def compact_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


def csv_line(cells: list[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(cells)
    return text.getvalue().encode()
