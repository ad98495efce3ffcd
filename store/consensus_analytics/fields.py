"""A consensus node's counted fields: how an answer becomes alpha's values, when two answers
agree, and which fields count over a pipeline's versions."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.reliability import Level
from workflows.graph import FieldSpec, FieldType, Pipeline

LEVELS: dict[FieldType, Level] = {
    FieldType.SELECT: Level.NOMINAL,
    FieldType.BOOLEAN: Level.NOMINAL,
    FieldType.PAIRWISE: Level.NOMINAL,
    FieldType.MULTI_SELECT: Level.NOMINAL,
    FieldType.RATING: Level.ORDINAL,
    FieldType.INTEGER: Level.ORDINAL,
    FieldType.RANKING: Level.ORDINAL,
    FieldType.NUMBER: Level.INTERVAL,
    FieldType.DATETIME: Level.INTERVAL,
}
"""The level of measurement of each field type that is compared (free text is not)."""


def _key(value: Any) -> str:
    """A value as a comparable key (lists and objects by content), as the engine compares."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _chosen(value: Any) -> set[str]:
    """A multi_select answer's options (left empty: none)."""
    if value is None:
        return set()
    return {_key(v) for v in value} if isinstance(value, list) else {_key(value)}


def _number(kind: FieldType, value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if kind == FieldType.DATETIME:
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class CountedField:
    """A counted field: how its answers become alpha's values, and when two answers agree."""

    spec: FieldSpec
    tolerance: float

    @property
    def level(self) -> Level | None:
        return LEVELS.get(self.spec.type)

    @property
    def unit(self) -> str:
        kind = self.spec.type
        if kind == FieldType.MULTI_SELECT:
            return "item x option"
        return "item x ranked item" if kind == FieldType.RANKING else "item"

    def parts(self, values: dict[str, Any]) -> dict[str, Any] | None:
        """One answer's values for alpha, by unit within the item ("" for the item itself);
        None when the answer does not give this field."""
        kind, value = self.spec.type, values.get(self.spec.name)
        if self.level is None or self.spec.name not in values:
            return None
        if kind == FieldType.MULTI_SELECT:
            chosen = _chosen(value)
            options = {_key(o) for o in self.spec.options or []} | chosen
            return {o: int(o in chosen) for o in options}
        if kind == FieldType.RANKING:
            if not isinstance(value, list) or not value:
                return None
            return {_key(v): float(place) for place, v in enumerate(value, 1)}
        if self.level == Level.NOMINAL:
            return None if value is None else {"": _key(value)}
        number = _number(kind, value)
        return None if number is None else {"": number}

    def same(self, a: Any, b: Any) -> bool:
        """Whether two given answers agree (numbers within the tolerance)."""
        kind = self.spec.type
        if kind == FieldType.MULTI_SELECT:
            return _chosen(a) == _chosen(b)
        if self.level in (Level.ORDINAL, Level.INTERVAL) and kind != FieldType.RANKING:
            x, y = _number(kind, a), _number(kind, b)
            return x is not None and y is not None and abs(x - y) <= self.tolerance + 1e-9
        return _key(a) == _key(b)


def aligned(fld: CountedField, a: dict[str, Any], b: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """Two answers' values unit by unit, for units both gave (an option one of them did not
    list in a multi_select counts as not chosen)."""
    fill = 0 if fld.spec.type == FieldType.MULTI_SELECT else None
    for unit in sorted(a.keys() | b.keys()):
        x, y = a.get(unit, fill), b.get(unit, fill)
        if x is not None and y is not None:
            yield x, y


def counted_fields(versions: Sequence[Pipeline], node: str) -> list[CountedField]:
    """The node's counted fields over every version (the current one first decides a field's
    type and tolerance)."""
    found: dict[str, CountedField] = {}
    for pipeline in versions:
        spec = next((n for n in pipeline.nodes if n.name == node), None)
        if spec is None or spec.consensus is None:
            continue
        for fld in spec.consensus.voting(spec.input_fields()):
            rule = spec.consensus.rules.get(fld.name)
            tolerance = rule.tolerance if rule and rule.tolerance is not None else 0.0
            found.setdefault(fld.name, CountedField(fld, tolerance))
    return list(found.values())
