"""A CSV template of a pipeline's dataset fields, with an example row."""

from __future__ import annotations

import csv
import io
import math

from conveyor.creation import SeedRows
from workflows.forms import DEFAULT_RATING_MAX, DEFAULT_RATING_MIN
from workflows.graph import FieldSpec, FieldType, Pipeline


def csv_template(pipeline: Pipeline, key_column: str | None = None) -> str:
    """A CSV with the import header and one example row built from the fields' types.

    The example row is valid: importing the template creates one task.
    """
    checker = SeedRows(pipeline, key_column)
    columns = checker.columns()
    example = {name: _example(spec) for name, spec in checker.fields.items()}
    if key_column is not None and not checker.key_is_field:
        example[key_column] = "row-1"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerow([example[name] for name in columns])
    return out.getvalue()


def _example(spec: FieldSpec) -> str:
    options = spec.options or []
    match spec.type:
        case FieldType.SHORT_TEXT | FieldType.LONG_TEXT | FieldType.CODE:
            sample = {
                FieldType.SHORT_TEXT: "example",
                FieldType.LONG_TEXT: "Some text to work on.",
                FieldType.CODE: "print('hello')",
            }[spec.type]
            if spec.min_length is not None and len(sample) < spec.min_length:
                sample = (sample + " ") * math.ceil(spec.min_length / (len(sample) + 1))
            return sample[: spec.max_length] if spec.max_length else sample
        case FieldType.URL:
            return "https://example.com/item/1"
        case FieldType.BOOLEAN:
            return "true"
        case FieldType.NUMBER:
            number = min(max(1.5, spec.min if spec.min is not None else -math.inf), spec.max or 1.5)
            return _number_text(number)
        case FieldType.INTEGER:
            low = math.ceil(spec.min) if spec.min is not None else None
            high = math.floor(spec.max) if spec.max is not None else None
            whole = 3 if low is None else max(3, low)
            return str(whole if high is None else min(whole, high))
        case FieldType.RATING:
            low = DEFAULT_RATING_MIN if spec.min is None else math.ceil(spec.min)
            high = DEFAULT_RATING_MAX if spec.max is None else math.floor(spec.max)
            return str((low + high + 1) // 2)
        case FieldType.DATETIME:
            return "2024-05-01T09:30:00+00:00"
        case FieldType.SELECT | FieldType.PAIRWISE:
            return options[0] if options else ""
        case FieldType.MULTI_SELECT:
            count = max(1, math.ceil(spec.min or 1))
            if spec.max is not None:
                count = min(count, math.floor(spec.max))
            return "|".join(options[:count])
        case FieldType.RANKING:
            return "|".join(options)
    return ""  # pragma: no cover - every FieldType is matched above


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
