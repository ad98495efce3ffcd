"""Form fields in HTML: one widget per field type, and the submitted form read back as values.

Inputs are named ``f.<field>``. What the browser sends is only turned into the JSON types the
field expects (numbers, booleans, lists); whether a value is *valid* is the workflow's answer
(``workflows/forms.py`` through the submit update), shown next to the field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from workflows.forms import (
    DEFAULT_RATING_MAX,
    DEFAULT_RATING_MIN,
    DEFAULT_SHORT_TEXT_MAX_LENGTH,
    EDITABLE_SOURCES,
    TIE,
)
from workflows.graph import FieldSource, FieldSpec, FieldType, NodeKind, NodeSpec, Pipeline

PREFIX = "f."

_WIDGETS = {
    FieldType.SHORT_TEXT: "text",
    FieldType.URL: "url",
    FieldType.LONG_TEXT: "textarea",
    FieldType.CODE: "code",
    FieldType.BOOLEAN: "boolean",
    FieldType.NUMBER: "number",
    FieldType.INTEGER: "number",
    FieldType.DATETIME: "datetime",
    FieldType.SELECT: "select",
    FieldType.MULTI_SELECT: "checkboxes",
    FieldType.RATING: "rating",
    FieldType.RANKING: "ranking",
    FieldType.PAIRWISE: "pairwise",
}


@dataclass
class FieldView:
    """What a template needs to draw one field."""

    spec: FieldSpec
    value: Any = None
    error: str | None = None
    readonly: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def input_name(self) -> str:
        return PREFIX + self.spec.name

    @property
    def widget(self) -> str:
        return _WIDGETS.get(self.spec.type, "text")

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def options(self) -> list[str]:
        if self.spec.type == FieldType.PAIRWISE:
            return [*(self.spec.options or []), *([TIE] if self.spec.allow_tie else [])]
        return list(self.spec.options or [])

    @property
    def ranking(self) -> list[str]:
        """The items in the current order (the given value if it is an ordering of them)."""
        items = list(self.spec.options or [])
        value = self.value
        if isinstance(value, list) and sorted(map(str, value)) == sorted(items):
            return [str(v) for v in value]
        return items

    @property
    def chosen(self) -> list[str]:
        value = self.value
        if isinstance(value, list):
            return [str(v) for v in value]
        return [] if value is None else [str(value)]

    @property
    def rating_range(self) -> list[int]:
        low = DEFAULT_RATING_MIN if self.spec.min is None else math.ceil(self.spec.min)
        high = DEFAULT_RATING_MAX if self.spec.max is None else math.floor(self.spec.max)
        return list(range(low, high + 1))

    @property
    def text(self) -> str:
        """The value as an input's text."""
        value = self.value
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if self.spec.type == FieldType.DATETIME and isinstance(value, str):
            return value[:16]  # datetime-local shows minutes: 2024-05-01T09:30
        return str(value)

    @property
    def step(self) -> str:
        return "1" if self.spec.type == FieldType.INTEGER else "any"

    @property
    def max_length(self) -> int | None:
        if self.spec.max_length is not None:
            return self.spec.max_length
        return DEFAULT_SHORT_TEXT_MAX_LENGTH if self.spec.type == FieldType.SHORT_TEXT else None

    @property
    def hint(self) -> str:
        """The field's constraints in words: ``required · 10-600 characters``."""
        spec = self.spec
        parts = ["required" if spec.required else "optional"]
        if spec.type in (FieldType.SHORT_TEXT, FieldType.LONG_TEXT, FieldType.CODE):
            low, high = spec.min_length, self.max_length
            if low is not None and high is not None:
                parts.append(f"{low}\u2013{high} characters")
            elif low is not None:
                parts.append(f"at least {low} characters")
            elif high is not None:
                parts.append(f"at most {high} characters")
        if spec.type in (FieldType.NUMBER, FieldType.INTEGER):
            parts.append("whole number" if spec.type == FieldType.INTEGER else "number")
            if spec.min is not None:
                parts.append(f"min {_num(spec.min)}")
            if spec.max is not None:
                parts.append(f"max {_num(spec.max)}")
        if spec.type == FieldType.MULTI_SELECT:
            if spec.min is not None:
                parts.append(f"choose at least {_num(spec.min)}")
            if spec.max is not None:
                parts.append(f"choose at most {_num(spec.max)}")
        if spec.type == FieldType.RATING:
            r = self.rating_range
            parts.append(f"{r[0]}\u2013{r[-1]}")
        if spec.type == FieldType.RANKING:
            parts.append("order every item, best first")
        if spec.type == FieldType.DATETIME:
            parts.append("date and time")
        if spec.type == FieldType.URL:
            parts.append("http:// or https:// address")
        if spec.type == FieldType.CODE and spec.language:
            parts.append(spec.language)
        if spec.source == FieldSource.LLM:
            parts.append("suggested by a model: edit freely")
        return " · ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def editable(specs: Iterable[FieldSpec]) -> list[FieldSpec]:
    return [f for f in specs if f.source in EDITABLE_SOURCES]


def field_views(
    specs: Sequence[FieldSpec],
    values: Mapping[str, Any],
    errors: Mapping[str, str] | None = None,
) -> list[FieldView]:
    """The editable fields of a form, with their current values and errors."""
    errors = errors or {}
    return [FieldView(s, values.get(s.name), errors.get(s.name)) for s in editable(specs)]


def read_form(specs: Sequence[FieldSpec], form: FormData, *, draft: bool = False) -> dict[str, Any]:
    """The submitted values of ``specs``' editable fields, as the JSON types they expect.

    An empty input is ``None`` (left out of a draft). Text that does not read as the field's
    type is passed on as text, so the workflow's validation names the problem.
    """
    out: dict[str, Any] = {}
    for spec in editable(specs):
        key = PREFIX + spec.name
        value: Any
        if spec.type in (FieldType.MULTI_SELECT, FieldType.RANKING):
            items = [str(v) for v in form.getlist(key) if str(v) != ""]
            value = items or None
        else:
            raw = form.get(key)
            text = raw if isinstance(raw, str) else None
            value = _convert(spec, text)
        if value is None and draft:
            continue
        out[spec.name] = value
    return out


def _convert(spec: FieldSpec, text: str | None) -> Any:
    if text is None:
        return None
    if spec.type in (FieldType.LONG_TEXT, FieldType.CODE):
        text = text.replace("\r\n", "\n")
        return text if text.strip() else None
    stripped = text.strip()
    if stripped == "":
        return None
    if spec.type == FieldType.BOOLEAN:
        return {"true": True, "false": False}.get(stripped.lower(), stripped)
    if spec.type in (FieldType.NUMBER, FieldType.INTEGER, FieldType.RATING):
        try:
            return int(stripped)
        except ValueError:
            try:
                number = float(stripped)
            except ValueError:
                return stripped
            return number if math.isfinite(number) else stripped
    if spec.type == FieldType.SHORT_TEXT:
        return text
    return stripped


# --------------------------------------------------------------------------- context


@dataclass
class ContextBlock:
    """Read-only values shown with a form: seed data, or one upstream node's submission."""

    title: str
    node: str | None
    items: Sequence[tuple[FieldSpec | None, str, Any]] = field(default_factory=list)
    """``(spec, label, value)``; spec is None for values without a definition."""


def upstream_nodes(pipeline: Pipeline, node: str) -> list[NodeSpec]:
    """Every node ``node`` can be reached from, in the pipeline's order."""
    seen: set[str] = set()
    pending = list(pipeline.predecessors(node))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(pipeline.predecessors(name))
    return [n for n in pipeline.nodes if n.name in seen]


def context_blocks(
    pipeline: Pipeline,
    node: NodeSpec,
    seed: Mapping[str, Any],
    node_values: Mapping[str, Mapping[str, Any]],
    *,
    skip: Iterable[str] = (),
) -> list[ContextBlock]:
    """The read-only context of a form: this node's predefined fields (from the seed data)
    and what every upstream subtask submitted (``skip``: nodes shown elsewhere)."""
    blocks: list[ContextBlock] = []
    predefined = [f for f in node.fields if f.source == FieldSource.PREDEFINED]
    if predefined:
        blocks.append(
            ContextBlock(
                title="Task data",
                node=None,
                items=[(f, f.title, seed.get(f.name)) for f in predefined],
            )
        )
    skipped = set(skip)
    for spec in upstream_nodes(pipeline, node.name):
        if spec.kind != NodeKind.SUBTASK or spec.name in skipped:
            continue
        values = node_values.get(spec.name) or {}
        items = [
            (f, f.title, values[f.name])
            for f in spec.fields
            if f.source != FieldSource.PREDEFINED and f.name in values
        ]
        if items:
            blocks.append(ContextBlock(title=spec.title or spec.name, node=spec.name, items=items))
    return blocks


def static_fields(node: NodeSpec) -> list[FieldSpec]:
    return [f for f in node.fields if f.source == FieldSource.STATIC]
