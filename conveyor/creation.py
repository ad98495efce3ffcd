"""Creating many tasks at once: seed rows in, one result per row out.

:func:`create_tasks` takes up to :data:`MAX_ROWS_PER_CALL` rows of seed data (the pipeline's
predefined fields, plus optionally a key column), validates every row before starting anything,
then creates the valid ones: lazily where it can (``task_start: lazy`` and a client with a
store: their rows are written in bulk and their workflows start on first use, see
:mod:`store.lazy`), else through :meth:`ConveyorClient.create_task` with bounded concurrency.
Each row gets a :class:`RowResult`, in input order: ``created``, ``exists`` (the same pipeline
and key was there already), ``invalid`` (with one message per column) or ``error`` (Temporal
refused or could not be reached; the row can be sent again).

**Keys.** With ``key_column`` the row's value in that column is the task key (trimmed; it must
be non-empty and at most :data:`MAX_KEY_LENGTH` characters). Without it the key is a hash of the
row's normalised seed data (``h-`` and 24 hex digits), so sending the same row again creates
nothing new, whatever its column order or value spelling (``"3"`` and ``3`` for an integer field
give the same key).

**Values.** Strings are read as a CSV cell would be: an empty string is a missing value; numbers,
integers and ratings from their text; booleans from ``true/false``, ``yes/no`` or ``1/0`` (any
case); multi_select and ranking from a JSON list (``["a", "b"]``) or ``a|b|c``; date-times from
ISO 8601. Values of other types are taken as they are. Every value is then checked as the
task's own validation does (:func:`workflows.engine.check_seed_data`) and stored normalised.

**Duplicate keys in one call.** The first row with a key is the one started. A later row with
the same key and the same data is reported ``exists`` (it names the first row); with other data
it is ``invalid``, because one of the two would be silently dropped. Across calls there is no
such comparison: a row whose key already has a task is ``exists`` without its data being looked
at.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from conveyor.errors import InvalidSeedData
from workflows import engine
from workflows.forms import validate_value
from workflows.graph import FieldSpec, FieldType, Pipeline
from workflows.options import task_workflow_id

__all__ = [
    "DEFAULT_CONCURRENCY",
    "KEY_ERROR",
    "MAX_KEY_LENGTH",
    "MAX_ROWS_PER_CALL",
    "Created",
    "PreparedRow",
    "RowOutcome",
    "RowResult",
    "SeedRows",
    "TaskStarter",
    "coerce_value",
    "collection_paused",
    "content_key",
    "create_tasks",
    "plan",
    "start_prepared",
]


@dataclass(frozen=True)
class Created:
    """The answer to creating one task (:meth:`conveyor.client.ConveyorClient.create_task`)."""

    workflow_id: str
    created: bool
    """False when the task already existed (the same pipeline and key)."""


class TaskStarter(Protocol):
    """What creating tasks needs of the client: :class:`conveyor.client.ConveyorClient`."""

    async def create_task(
        self,
        pipeline: Pipeline,
        key: str,
        data: Mapping[str, Any] | None = None,
        *,
        start_paused: bool = False,
    ) -> Created: ...

    async def create_untouched(
        self,
        pipeline: Pipeline,
        rows: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        start_paused: bool = False,
    ) -> list[Created | None]:
        """Create tasks lazily (their rows now, their workflows on first use); None for each
        row to start with :meth:`create_task` instead."""
        ...


MAX_ROWS_PER_CALL = 5000
"""The most rows one :func:`create_tasks` call takes."""

MAX_KEY_LENGTH = 300
"""The longest task key a key column may give."""

DEFAULT_CONCURRENCY = 50

KEY_ERROR = "_key"
"""The ``errors`` entry for a key problem when there is no key column (a duplicate hash)."""

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_LIST_TYPES = frozenset({FieldType.MULTI_SELECT, FieldType.RANKING})


class RowOutcome(StrEnum):
    CREATED = "created"
    EXISTS = "exists"
    """A task with the same pipeline and key was already there; nothing was created."""
    INVALID = "invalid"
    """The row does not fit the pipeline (see ``errors``); nothing was started."""
    ERROR = "error"
    """Starting failed (see ``message``); sending the row again is safe."""


@dataclass(frozen=True)
class RowResult:
    """What became of one row of a :func:`create_tasks` call."""

    index: int
    """The row's position in the call's ``rows``."""
    key: str | None
    """The task key (None when the row has no usable key)."""
    workflow_id: str | None
    """The task's workflow id (None for an invalid row)."""
    outcome: RowOutcome
    errors: dict[str, str] = field(default_factory=dict)
    """For an invalid row: one message per column (``_key`` for a key clash without a key
    column)."""
    message: str = ""


@dataclass(frozen=True)
class PreparedRow:
    """One row after validation: its key and normalised data, or why it cannot be created."""

    key: str | None
    data: dict[str, Any]
    errors: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.errors


class SeedRows:
    """Validates and normalises seed rows for one pipeline (built once, used per row)."""

    def __init__(self, pipeline: Pipeline, key_column: str | None = None):
        if key_column is not None and not key_column.strip():
            raise ValueError("key_column must be a column name, not an empty string")
        self.pipeline = pipeline
        self.key_column = key_column
        self.fields: dict[str, FieldSpec] = {f.name: f for f in pipeline.dataset_fields()}

    @property
    def key_is_field(self) -> bool:
        """The key column is also a dataset field (its value is both key and seed data)."""
        return self.key_column is not None and self.key_column in self.fields

    def columns(self) -> list[str]:
        """The columns a row may have: the key column (if any) first, then the dataset fields."""
        names = list(self.fields)
        if self.key_column is not None and not self.key_is_field:
            names.insert(0, self.key_column)
        return names

    def prepare(self, row: Mapping[str, Any]) -> PreparedRow:
        """Validate one row: its key, its data normalised, or one error per bad column."""
        errors: dict[str, str] = {}
        data: dict[str, Any] = {}
        key_value: Any = None
        for name, value in row.items():
            if name == self.key_column:
                key_value = value
                if not self.key_is_field:
                    continue
            spec = self.fields.get(name)
            if spec is None:
                data[name] = value  # check_seed_data names it as unknown
                continue
            try:
                coerced = coerce_value(spec, value)
            except ValueError as err:
                errors[name] = str(err)
                continue
            if coerced is not None:
                data[name] = coerced
        for name, message in engine.check_seed_data(self.pipeline, data).items():
            errors.setdefault(name, message)
        key: str | None = None
        if self.key_column is not None:
            try:
                key = _key_from(self.key_column, key_value)
            except ValueError as err:
                errors.setdefault(self.key_column, str(err))
        if errors:
            # In the row's column order, which is how a person reads the row.
            order = {name: i for i, name in enumerate(row)}
            errors = dict(sorted(errors.items(), key=lambda e: order.get(e[0], len(order))))
            return PreparedRow(key, {}, errors)
        normal = {name: validate_value(self.fields[name], value) for name, value in data.items()}
        return PreparedRow(key if key is not None else content_key(normal), normal, {})


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: building and writing thousands of rows allocates
    hundreds of thousands of small objects (no cycles), and the collections those allocations
    set off, each walking every live object, took most of the time (measured: 6x)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def coerce_value(spec: FieldSpec, value: Any) -> Any:
    """A string cell read as the field's type (see the module docstring); None when empty.

    Raises:
        ValueError: a boolean or list cell that cannot be read; the message says what works.
    """
    if not isinstance(value, str):
        return None if value is None or value == [] else value
    if value == "":
        return None
    text = value.strip()
    if spec.type == FieldType.BOOLEAN:
        word = text.casefold()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(
            f"{spec.name}: {value!r} is not a boolean; write true or false (yes/no, 1/0 work too)"
        )
    if spec.type in _LIST_TYPES:
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{spec.name}: {value!r} is not a JSON list ({err.msg}); "
                    'write ["a", "b"] or a|b'
                ) from None
            return items
        return [item.strip() for item in text.split("|") if item.strip()] or None
    return value


def content_key(data: Mapping[str, Any]) -> str:
    """The key of a row without a key column: a hash of its normalised data."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _key_from(column: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        if value is None:
            raise ValueError(f"{column}: the key column is empty; give every row a key")
        raise ValueError(f"{column}: {value!r} is not a key; use text or a whole number")
    key = str(value).strip()
    if not key:
        raise ValueError(f"{column}: the key column is empty; give every row a key")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"{column}: the key has {len(key)} characters; keys may have at most {MAX_KEY_LENGTH}"
        )
    return key


async def create_tasks(
    conveyor: TaskStarter,
    pipeline: Pipeline,
    rows: Sequence[Mapping[str, Any]],
    *,
    key_column: str | None = None,
    start_paused: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[RowResult]:
    """Create one task per row; every row is validated before any task is started.

    Creating is idempotent: a row whose key already has a task in ``pipeline`` is reported
    ``exists`` and changes nothing, so a failed or interrupted call can simply be repeated.

    Args:
        conveyor: The client to start the tasks with.
        pipeline: The pipeline (version) the tasks run.
        rows: 1 to :data:`MAX_ROWS_PER_CALL` rows of seed data: the pipeline's dataset fields
            (``pipeline.dataset_fields()``), plus ``key_column`` when given.
        key_column: The column holding each task's key; without it the key is a hash of the
            row's data (see the module docstring).
        start_paused: Start the tasks Paused.
        concurrency: How many starts are in flight at once.

    Returns:
        One result per row, in the order of ``rows``.

    Raises:
        ValueError: no rows, more than :data:`MAX_ROWS_PER_CALL`, or a concurrency below 1.
    """
    if not rows:
        raise ValueError("no rows given; pass 1 to 5,000 rows of seed data")
    if len(rows) > MAX_ROWS_PER_CALL:
        raise ValueError(
            f"{len(rows):,} rows given; create_tasks takes at most {MAX_ROWS_PER_CALL:,} "
            "rows per call: split them into batches (or use conveyor.importing.import_file)"
        )
    checker = SeedRows(pipeline, key_column)
    with collection_paused():
        prepared = [checker.prepare(row) for row in rows]
    return await start_prepared(
        conveyor,
        pipeline,
        prepared,
        key_column=key_column,
        start_paused=start_paused,
        concurrency=concurrency,
    )


def plan(
    prepared: Sequence[PreparedRow], key_column: str | None
) -> tuple[list[RowResult | None], dict[int, int]]:
    """Results known without Temporal (invalid rows, clashing keys), and repeats to mirror.

    Returns:
        Per row a result, or None for a row to start; and for each repeated row (same key,
        same data) the index of the first row with its key, whose outcome it shares.
    """
    results: list[RowResult | None] = []
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for index, row in enumerate(prepared):
        if not row.ok or row.key is None:
            results.append(RowResult(index, row.key, None, RowOutcome.INVALID, dict(row.errors)))
            continue
        earlier = first.setdefault(row.key, index)
        if earlier == index:
            results.append(None)
        elif prepared[earlier].data == row.data:
            repeats[index] = earlier
            results.append(None)
        else:
            column = key_column or KEY_ERROR
            problem = (
                f"{column}: key {row.key!r} is also the key of row {earlier} of this batch, "
                "with other data; give each row its own key (or remove one of the two)"
            )
            results.append(RowResult(index, row.key, None, RowOutcome.INVALID, {column: problem}))
    return results, repeats


async def start_prepared(
    conveyor: TaskStarter,
    pipeline: Pipeline,
    prepared: Sequence[PreparedRow],
    *,
    key_column: str | None = None,
    start_paused: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> list[RowResult]:
    """Start already validated rows (see :func:`create_tasks`, which validates first)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, not {concurrency}")
    planned, repeats = plan(prepared, key_column)
    gate = asyncio.Semaphore(concurrency)

    async def start(index: int, row: PreparedRow) -> RowResult:
        assert row.key is not None
        workflow_id = task_workflow_id(pipeline.name, row.key)
        async with gate:
            try:
                created = await conveyor.create_task(
                    pipeline, row.key, row.data, start_paused=start_paused
                )
            except InvalidSeedData as err:
                return RowResult(index, row.key, None, RowOutcome.INVALID, err.errors)
            except Exception as err:  # reported per row; the row can be sent again
                message = f"not created: {type(err).__name__}: {err}"
                return RowResult(index, row.key, workflow_id, RowOutcome.ERROR, message=message)
        outcome = RowOutcome.CREATED if created.created else RowOutcome.EXISTS
        return RowResult(index, row.key, created.workflow_id, outcome)

    todo = [(i, row) for i, row in enumerate(prepared) if planned[i] is None and i not in repeats]
    if todo:
        lazily = await conveyor.create_untouched(
            pipeline, [(row.key or "", row.data) for _, row in todo], start_paused=start_paused
        )
        eager: list[tuple[int, PreparedRow]] = []
        for (index, row), created in zip(todo, lazily, strict=True):
            if created is None:
                eager.append((index, row))
            else:
                outcome = RowOutcome.CREATED if created.created else RowOutcome.EXISTS
                planned[index] = RowResult(index, row.key, created.workflow_id, outcome)
        todo = eager
    for result in await asyncio.gather(*(start(i, row) for i, row in todo)):
        planned[result.index] = result
    for index, earlier in repeats.items():
        original = planned[earlier]
        assert original is not None
        if original.outcome in (RowOutcome.CREATED, RowOutcome.EXISTS):
            planned[index] = RowResult(
                index,
                original.key,
                original.workflow_id,
                RowOutcome.EXISTS,
                message=f"same key and data as row {earlier} of this batch; created once",
            )
        else:
            planned[index] = RowResult(
                index,
                original.key,
                original.workflow_id,
                original.outcome,
                dict(original.errors),
                original.message,
            )
    done = [r for r in planned if r is not None]
    assert len(done) == len(prepared)
    return done
