"""Batch creation: validation and value conversion per row, keys, duplicates, the 5,000 limit."""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import pytest
from temporalio.client import Client

from conveyor.client import ConveyorClient
from conveyor.creation import (
    KEY_ERROR,
    MAX_KEY_LENGTH,
    MAX_ROWS_PER_CALL,
    RowOutcome,
    SeedRows,
    content_key,
    create_tasks,
)
from workflows.graph import Pipeline
from workflows.graph_checks import validate_pipeline
from workflows.messages import TaskStatus


def seeded(name: str = "seeded") -> Pipeline:
    """start -> work (one predefined field of most types, one input) -> end."""
    optional: dict[str, Any] = {"source": "predefined", "required": False}
    return validate_pipeline(
        {
            "name": name,
            "nodes": [
                {"name": "start", "kind": "start", "next": ["work"]},
                {
                    "name": "work",
                    "kind": "subtask",
                    "fields": [
                        {"name": "text", "type": "long_text", "source": "predefined"},
                        {"name": "count", "type": "integer", "min": 0, **optional},
                        {"name": "score", "type": "number", "max": 10, **optional},
                        {"name": "urgent", "type": "boolean", **optional},
                        {"name": "due", "type": "datetime", **optional},
                        {
                            "name": "topics",
                            "type": "multi_select",
                            "options": ["billing", "bug", "ux"],
                            **optional,
                        },
                        {
                            "name": "order",
                            "type": "ranking",
                            "options": ["a", "b", "c"],
                            **optional,
                        },
                        {"name": "stars", "type": "rating", **optional},
                        {"name": "answer", "type": "short_text"},
                    ],
                    "next": ["end"],
                },
                {"name": "end", "kind": "end"},
            ],
        }
    )


def unique(prefix: str) -> Pipeline:
    return seeded(f"{prefix}-{uuid.uuid4().hex[:8]}")


def idle_conveyor(client: Client) -> ConveyorClient:
    """A client whose task queue no worker polls: the server accepts starts all the same.

    For tests of thousands of starts: on a 2-core machine a worker in the test process, running
    thousands of new tasks at once, roughly halves the start rate. They count starts; the tests
    on the ``conveyor`` fixture show what the tasks then hold.
    """
    return ConveyorClient(client, f"idle-{uuid.uuid4().hex[:8]}")


# --------------------------------------------------------------------------- validation


def test_strings_are_read_as_csv_cells_of_each_type() -> None:
    rows = SeedRows(seeded())
    prepared = rows.prepare(
        {
            "text": "hello",
            "count": " 7 ",
            "score": "2.5",
            "urgent": "Yes",
            "due": "2024-05-01T09:30:00Z",
            "topics": "bug|ux",
            "order": '["c", "a", "b"]',
            "stars": "4",
        }
    )
    assert prepared.ok, prepared.errors
    assert prepared.data == {
        "text": "hello",
        "count": 7,
        "score": 2.5,
        "urgent": True,
        "due": "2024-05-01T09:30:00+00:00",
        "topics": ["bug", "ux"],
        "order": ["c", "a", "b"],
        "stars": 4,
    }
    for word, value in [("true", True), ("NO", False), ("1", True), ("0", False)]:
        assert rows.prepare({"text": "x", "urgent": word}).data["urgent"] is value
    # Empty cells are missing values: fine for optional fields, an error for required ones.
    assert rows.prepare({"text": "x", "count": "", "topics": ""}).data == {"text": "x"}
    assert rows.prepare({"text": ""}).errors == {"text": "text: required; enter text"}


def test_every_bad_column_is_reported_with_its_reason() -> None:
    prepared = SeedRows(seeded()).prepare(
        {
            "text": "x",
            "count": "-1",
            "score": "lots",
            "urgent": "maybe",
            "due": "next tuesday",
            "topics": "bug|spam",
            "order": '["a", "b"',
            "colour": "red",
        }
    )
    assert not prepared.ok and prepared.key is None
    errors = prepared.errors
    assert set(errors) == {"count", "score", "urgent", "due", "topics", "order", "colour"}
    assert "below the minimum" in errors["count"]
    assert "not a number" in errors["score"]
    assert "write true or false (yes/no, 1/0 work too)" in errors["urgent"]
    assert "ISO 8601" in errors["due"]
    assert "'spam' not among the choices" in errors["topics"]
    assert "not a JSON list" in errors["order"]
    assert "unknown seed field 'colour'" in errors["colour"]


def test_keys_from_a_key_column_or_a_hash_of_the_data() -> None:
    pipeline = seeded()
    by_hash = SeedRows(pipeline)
    # The same data however spelled gives the same key; other data another one.
    one = by_hash.prepare({"text": "a", "count": "3", "urgent": "yes"})
    two = by_hash.prepare({"urgent": True, "count": 3, "text": "a", "score": ""})
    assert one.key == two.key == content_key({"text": "a", "count": 3, "urgent": True})
    assert one.key is not None and one.key.startswith("h-") and len(one.key) == 26
    assert by_hash.prepare({"text": "b"}).key != one.key

    keyed = SeedRows(pipeline, key_column="id")
    assert keyed.prepare({"id": " doc-1 ", "text": "a"}).key == "doc-1"
    assert keyed.prepare({"id": 42, "text": "a"}).key == "42"
    assert keyed.prepare({"id": " ", "text": "a"}).errors == {
        "id": "id: the key column is empty; give every row a key"
    }
    assert "key column is empty" in keyed.prepare({"text": "a"}).errors["id"]
    too_long = keyed.prepare({"id": "k" * (MAX_KEY_LENGTH + 1), "text": "a"})
    assert too_long.errors["id"].endswith(f"at most {MAX_KEY_LENGTH}")
    assert "not a key" in keyed.prepare({"id": 1.5, "text": "a"}).errors["id"]
    # The key column is not seed data, unless it is a dataset field itself.
    assert keyed.prepare({"id": "k", "text": "a"}).data == {"text": "a"}
    assert SeedRows(pipeline, key_column="text").prepare({"text": "a"}).data == {"text": "a"}


async def test_row_counts_outside_1_to_5000_are_refused() -> None:
    nobody = cast(ConveyorClient, None)  # refused before the client is used
    too_many = [{"text": str(i)} for i in range(MAX_ROWS_PER_CALL + 1)]
    with pytest.raises(ValueError, match="at most 5,000 rows per call"):
        await create_tasks(nobody, seeded(), too_many)
    with pytest.raises(ValueError, match="no rows given"):
        await create_tasks(nobody, seeded(), [])


# --------------------------------------------------------------------------- creating


async def test_a_batch_reports_each_row_in_order_and_repeats_create_nothing(
    conveyor: ConveyorClient,
) -> None:
    pipeline = unique("batch")
    rows: list[dict[str, Any]] = [
        {"id": "a", "text": "first", "count": "1"},
        {"id": "b", "text": "second", "urgent": "no"},
        {"id": "c", "text": ""},  # required text missing
        {"id": "a", "text": "first", "count": 1},  # the same key and data as row 0
        {"id": "b", "text": "other"},  # the same key, other data
        {"text": "no key"},
    ]
    results = await create_tasks(conveyor, pipeline, rows, key_column="id")
    assert [r.index for r in results] == list(range(len(rows)))
    assert [r.outcome for r in results] == [
        RowOutcome.CREATED,
        RowOutcome.CREATED,
        RowOutcome.INVALID,
        RowOutcome.EXISTS,
        RowOutcome.INVALID,
        RowOutcome.INVALID,
    ]
    assert results[0].workflow_id == f"{pipeline.name}/a"
    assert results[2].errors == {"text": "text: required; enter text"}
    assert results[3].workflow_id == results[0].workflow_id
    assert "same key and data as row 0" in results[3].message
    assert "also the key of row 1 of this batch, with other data" in results[4].errors["id"]
    assert "key column is empty" in results[5].errors["id"]

    # The task got the normalised values.
    view = await conveyor.task(f"{pipeline.name}/b").state()
    assert view.data == {"text": "second", "urgent": False}

    again = await create_tasks(conveyor, pipeline, rows, key_column="id")
    assert [r.outcome for r in again] == [
        RowOutcome.EXISTS,
        RowOutcome.EXISTS,
        RowOutcome.INVALID,
        RowOutcome.EXISTS,
        RowOutcome.INVALID,
        RowOutcome.INVALID,
    ]


async def test_rows_without_a_key_column_are_keyed_by_their_data(conveyor: ConveyorClient) -> None:
    pipeline = unique("hashed")
    rows: list[dict[str, Any]] = [{"text": "x", "count": "2"}, {"count": 2, "text": "x"}]
    first, repeat = await create_tasks(conveyor, pipeline, rows, start_paused=True)
    assert (first.outcome, repeat.outcome) == (RowOutcome.CREATED, RowOutcome.EXISTS)
    assert first.key == repeat.key == content_key({"text": "x", "count": 2})
    assert first.workflow_id is not None
    assert (await conveyor.task(first.workflow_id).state()).status == TaskStatus.PAUSED
    (later,) = await create_tasks(conveyor, pipeline, [{"text": "x", "count": 2.0}])
    assert later.outcome == RowOutcome.EXISTS and later.workflow_id == first.workflow_id
    assert KEY_ERROR == "_key"


@pytest.mark.slow
async def test_5000_rows_in_one_call(client: Client) -> None:
    """The largest batch: every row created once, one result per row, in order."""
    conveyor = idle_conveyor(client)
    pipeline = unique("five-k")
    rows = [{"text": f"row {i}", "count": str(i)} for i in range(MAX_ROWS_PER_CALL)]
    began = time.monotonic()
    results = await create_tasks(conveyor, pipeline, rows, start_paused=True)
    elapsed = time.monotonic() - began
    print(f"\n5,000 task starts took {elapsed:.1f}s ({MAX_ROWS_PER_CALL / elapsed:.0f}/s)")
    assert [r.index for r in results] == list(range(MAX_ROWS_PER_CALL))
    assert all(r.outcome == RowOutcome.CREATED for r in results), {r.outcome for r in results}
    assert len({r.workflow_id for r in results}) == MAX_ROWS_PER_CALL
    assert results[17].key == content_key({"text": "row 17", "count": 17})
