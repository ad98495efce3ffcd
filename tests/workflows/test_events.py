"""Typed timeline events: every kind has a data model, and the models read back exactly what
recorded histories hold."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflows.events import EVENT_DATA, EventData, event_data
from workflows.messages import EventKind, TimelineEvent

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
EVENT_KEYS = {"seq", "at", "kind", "actor", "message", "data"}


def test_every_kind_has_a_data_model() -> None:
    assert set(EVENT_DATA) == set(EventKind)
    assert all(kind == model.KIND for kind, model in EVENT_DATA.items())


def _json_payloads(node: Any) -> Iterator[Any]:
    """Every JSON payload in a history: inputs and results of activities, signals, updates."""
    if isinstance(node, dict):
        if node.get("metadata", {}).get("encoding") == base64.b64encode(b"json/plain").decode():
            yield json.loads(base64.b64decode(node["data"]))
        for value in node.values():
            yield from _json_payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _json_payloads(value)


def _timeline_events(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.keys() >= EVENT_KEYS:
            yield node
        for value in node.values():
            yield from _timeline_events(value)
    elif isinstance(node, list):
        for value in node:
            yield from _timeline_events(value)


def _recorded_events() -> list[TimelineEvent]:
    found: dict[tuple[str, int, str], TimelineEvent] = {}
    for path in sorted(HISTORIES.glob("*.json")):
        for payload in _json_payloads(json.loads(path.read_text())):
            for raw in _timeline_events(payload):
                event = TimelineEvent.model_validate(raw)
                found[(path.name, event.seq, event.kind)] = event
    return list(found.values())


RECORDED = _recorded_events()


def test_the_recorded_histories_hold_many_kinds() -> None:
    kinds = {e.kind for e in RECORDED}
    assert len(kinds) >= 12, kinds


@pytest.mark.parametrize("event", RECORDED, ids=lambda e: f"{e.kind}-{e.seq}")
def test_recorded_event_reads_and_writes_back_the_same_data(event: TimelineEvent) -> None:
    data = event_data(event)
    assert isinstance(data, EventData)
    assert event.kind == data.KIND
    assert data.to_data() == event.data


def test_an_unknown_key_is_ignored_and_a_missing_one_defaults() -> None:
    event = TimelineEvent.model_validate(
        {
            "seq": 1,
            "at": "2026-01-01T00:00:00Z",
            "kind": "reviewed",
            "actor": "ana",
            "message": "ana passed label",
            "data": {"verdict": "pass", "later": 1},
        }
    )
    review = event_data(event)
    assert review.model_dump() == {"verdict": "pass", "reason": None, "values": {}}
