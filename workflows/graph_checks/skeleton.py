"""The lenient skeleton of a pipeline definition, read straight from the raw nodes so that a
structural mistake in one node never hides a topology mistake elsewhere, and the report the
checks add their problems to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from workflows.graph import EvaluatorSpec, FieldSpec, NodeKind, NodeSpec, Problem

PIPELINE = "pipeline"

_HUMAN_KINDS = frozenset({NodeKind.SUBTASK, NodeKind.REVIEW})


@dataclass
class _Field:
    """A field as written, with its validated spec when the field on its own is valid."""

    index: int
    name: str | None
    spec: FieldSpec | None


@dataclass
class _Evaluator:
    """An evaluator as written, with its validated spec when it is valid on its own."""

    index: int
    name: str | None
    spec: EvaluatorSpec | None


@dataclass
class _Node:
    """The lenient skeleton of one node: enough to check the graph even if the node is invalid."""

    index: int
    raw: Mapping[str, Any]
    name: str | None
    kind: NodeKind | None
    next: list[str]
    branches: list[tuple[str | None, str | None]]
    """(when, to) per branch, as written."""
    default: str | None
    fields: list[_Field]
    spec: NodeSpec | None
    evaluators: list[_Evaluator] = field(default_factory=list)

    def successors(self) -> list[str]:
        gate_targets = [to for _, to in self.branches if to is not None]
        if self.default is not None:
            gate_targets.append(self.default)
        if self.kind == NodeKind.GATE:
            targets = gate_targets
        elif self.kind is None:
            # Unknown kind: follow every edge written so reachability stays meaningful.
            targets = self.next + gate_targets
        else:
            targets = self.next
        return list(dict.fromkeys(targets))


@dataclass
class _Report:
    """Problems in document order: pipeline first, then each node, its fields after it."""

    entries: list[tuple[tuple[int, int], int, Problem]] = field(default_factory=list)

    def add(self, where: str, message: str, node: int = -1, fld: int = -1) -> None:
        key = (node + 1, fld + 1)
        self.entries.append((key, len(self.entries), Problem(where=where, message=message)))

    def problems(self) -> list[Problem]:
        return [problem for _, _, problem in sorted(self.entries, key=lambda e: (e[0], e[1]))]


def _skeleton(index: int, raw: Any) -> _Node:
    """Read what the graph checks need from a raw node, ignoring whatever is malformed."""
    if not isinstance(raw, Mapping):
        return _Node(index, {}, None, None, [], [], None, [], None)
    name = raw.get("name") if isinstance(raw.get("name"), str) and raw.get("name") else None
    raw_kind = raw.get("kind")
    kinds = {k.value: k for k in NodeKind}
    kind = kinds.get(raw_kind) if isinstance(raw_kind, str) else None
    nxt = raw.get("next")
    next_names = [nxt] if isinstance(nxt, str) else _strings(nxt)
    branches: list[tuple[str | None, str | None]] = []
    if isinstance(raw.get("branches"), list):
        for branch in raw["branches"]:
            if isinstance(branch, Mapping):
                when, to = branch.get("when"), branch.get("to")
                branches.append(
                    (when if isinstance(when, str) else None, to if isinstance(to, str) else None)
                )
            else:
                branches.append((None, None))
    default = raw.get("default") if isinstance(raw.get("default"), str) else None
    fields: list[_Field] = []
    if isinstance(raw.get("fields"), list):
        for j, raw_field in enumerate(raw["fields"]):
            fname = raw_field.get("name") if isinstance(raw_field, Mapping) else None
            fields.append(
                _Field(
                    j, fname if isinstance(fname, str) and fname else None, _valid_field(raw_field)
                )
            )
    evaluators: list[_Evaluator] = []
    if isinstance(raw.get("evaluators"), list):
        for j, raw_evaluator in enumerate(raw["evaluators"]):
            ename = raw_evaluator.get("name") if isinstance(raw_evaluator, Mapping) else None
            evaluators.append(
                _Evaluator(
                    j,
                    ename if isinstance(ename, str) and ename else None,
                    _valid_evaluator(raw_evaluator),
                )
            )
    spec: NodeSpec | None
    try:
        spec = NodeSpec.model_validate(raw)
    except ValidationError:
        spec = None
    return _Node(index, raw, name, kind, next_names, branches, default, fields, spec, evaluators)


def _valid_field(raw: Any) -> FieldSpec | None:
    try:
        return FieldSpec.model_validate(raw)
    except ValidationError:
        return None


def _valid_evaluator(raw: Any) -> EvaluatorSpec | None:
    try:
        return EvaluatorSpec.model_validate(raw)
    except ValidationError:
        return None


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
