"""Dawid-Skene re-aggregation of a consensus node's answers on one categorical field.

Majority vote trusts every annotator alike. Dawid and Skene's model (1979) estimates, by
expectation-maximisation over every item at once, each annotator's confusion matrix (how
likely they give each answer when the true one is X) and each item's posterior over the
answers. An annotator who is often wrong then counts for less, and one who systematically
swaps two answers is read through. This is crowd-kit's ``DawidSkene``
(``crowdkit.aggregation``), in the optional ``quality`` extra (``pip install
'conveyor[quality]'``): it brings pandas, pyarrow and transformers.

:func:`dawid_skene` is a read-only bulk job. It reports, beside each item's majority and its
recorded final answer, the model's estimate and its probability. It never rewrites a task's
recorded values.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

from sqlalchemy.orm import Session

from store.consensus_analytics.fields import CountedField, counted_fields
from store.consensus_analytics.models import FrozenModel
from store.consensus_analytics.rows import consensus_nodes, current_answers, is_final, node_rows
from store.explorer import TaskFilter
from workflows.errors import Invalid, Unavailable
from workflows.graph import FieldType

CATEGORICAL_TYPES = frozenset(
    {
        FieldType.SELECT,
        FieldType.BOOLEAN,
        FieldType.PAIRWISE,
        FieldType.RATING,
        FieldType.INTEGER,
    }
)
"""Field types whose answers are one of a few values each: Dawid-Skene takes each distinct
answer as a class (a rating of 4 is no closer to 5 than to 1)."""

DEFAULT_ITERATIONS = 100


class NotCategorical(Invalid, ValueError):
    """The field asked for cannot be re-aggregated: not a categorical field of the node, or
    the node or field must be named."""

    code = "not_categorical"


class QualityExtraMissing(Unavailable):
    """crowd-kit (the ``quality`` extra) is not installed where the store is read."""

    code = "quality_extra_missing"


class DawidSkeneItem(FrozenModel):
    """One item: its majority, its recorded final answer, and the model's estimate."""

    workflow_id: str
    answers: int
    """Answers giving the field in the item's current round."""
    estimate: Any
    """The answer the model finds most probable."""
    probability: float
    """The model's posterior probability of ``estimate``."""
    majority: Any
    """The most common answer; None on a tie."""
    majority_share: float
    final: Any = None
    """The recorded final answer (merged or adjudicated); None while not settled."""
    differs: bool
    """The estimate is not the majority (False on a tie)."""


class ContributorConfusion(FrozenModel):
    """One contributor's estimated confusion matrix."""

    contributor: str
    answers: int
    accuracy: float
    """The model's chance that their answer is the true one: the sum over true answers X of
    ``prior(X) * P(they answer X | X)``."""
    confusion: dict[str, dict[str, float]]
    """True answer -> the answer they give -> probability, over the answers they gave (an
    answer they never gave has probability ~0)."""


class DawidSkeneReport(FrozenModel):
    """Dawid-Skene over one consensus node's field."""

    pipeline: str
    node: str
    field: str
    labels: list[str]
    """Every answer given, as text (strings as they are, other values as JSON)."""
    priors: dict[str, float]
    """The estimated share of each true answer over the items."""
    items: int
    differing: int
    """Items whose estimate is not their majority."""
    iterations: int
    """EM iterations run (at most the ``iterations`` asked for; fewer once it converged)."""
    by_item: list[DawidSkeneItem]
    """Sorted by workflow id (only the differing ones when asked)."""
    contributors: list[ContributorConfusion]


def label_text(value: Any) -> str:
    """An answer as a label: a string as it is, any other value as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def dawid_skene(
    session: Session,
    pipeline: str,
    *,
    node: str | None = None,
    field: str | None = None,
    criteria: TaskFilter | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    only_differing: bool = False,
) -> DawidSkeneReport:
    """Re-aggregate ``node``'s ``field`` with Dawid-Skene.

    Args:
        node: the consensus node (may be left out when the pipeline has one).
        field: a counted select, boolean, pairwise, rating or integer field (may be left out
            when the node has one).
        criteria: count only the tasks this Data Explorer filter selects.
        iterations: at most this many EM iterations.
        only_differing: list only the items whose estimate is not their majority.

    Raises:
        UnknownPipeline: no pipeline of that name was applied.
        NotConsensus: the pipeline has no consensus node, or ``node`` is not one.
        NotCategorical: ``node`` or ``field`` must be named, or ``field`` is not categorical.
        QualityExtraMissing: crowd-kit is not installed.
        ValueError: ``iterations`` is below 1.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")
    versions, names = consensus_nodes(session, pipeline, node)
    if len(names) > 1:
        raise NotCategorical(
            f"pipeline {pipeline!r} has several consensus nodes ({', '.join(names)}): name one"
        )
    name = names[0]
    chosen = _field(counted_fields(versions, name), name, field)
    answers: list[tuple[str, str, str]] = []
    values: dict[str, Any] = {}
    finals: dict[str, Any] = {}
    for _, workflow_id, consensus, recorded in node_rows(session, pipeline, [name], criteria):
        latest = current_answers(consensus)
        for who, given in latest.items():
            value = given.get(chosen)
            if value is None or isinstance(value, list | dict):
                continue
            text = label_text(value)
            values.setdefault(text, value)
            answers.append((workflow_id, who, text))
        if is_final(consensus, len(latest)) and recorded.get(chosen) is not None:
            finals[workflow_id] = recorded[chosen]
    answers.sort()
    return _report(
        pipeline, name, chosen, answers, values, finals, iterations, only_differing=only_differing
    )


def _field(fields: list[CountedField], node: str, field: str | None) -> str:
    eligible = [f.spec.name for f in fields if f.spec.type in CATEGORICAL_TYPES]
    kinds = ", ".join(sorted(t.value for t in CATEGORICAL_TYPES))
    if field is None:
        if len(eligible) == 1:
            return eligible[0]
        choices = f"one of {', '.join(eligible)}" if eligible else f"it has none ({kinds})"
        raise NotCategorical(f"name the field of {node!r} to re-aggregate: {choices}")
    if field not in eligible:
        found = next((f for f in fields if f.spec.name == field), None)
        what = f"a {found.spec.type.value} field" if found else "not a counted field"
        choices = ", ".join(eligible) or "none"
        raise NotCategorical(
            f"{field!r} is {what} of {node!r}; Dawid-Skene takes a counted field of type "
            f"{kinds}: {choices}"
        )
    return field


def _report(
    pipeline: str,
    node: str,
    field: str,
    answers: list[tuple[str, str, str]],
    values: dict[str, Any],
    finals: dict[str, Any],
    iterations: int,
    *,
    only_differing: bool,
) -> DawidSkeneReport:
    try:
        import pandas as pd
        from crowdkit.aggregation import DawidSkene
    except ImportError:
        raise QualityExtraMissing(
            "Dawid-Skene needs crowd-kit, which is not installed: install Conveyor with its "
            "quality extra (pip install 'conveyor[quality]')"
        ) from None
    empty = DawidSkeneReport(
        pipeline=pipeline,
        node=node,
        field=field,
        labels=[],
        priors={},
        items=0,
        differing=0,
        iterations=0,
        by_item=[],
        contributors=[],
    )
    if not answers:
        return empty
    data = pd.DataFrame(answers, columns=["task", "worker", "label"])
    with warnings.catch_warnings():
        # crowd-kit's own pandas calls (deprecated keywords): nothing a reader can act on.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="crowdkit")
        model = DawidSkene(n_iter=iterations).fit(data)
    fitted, probas, errors = model.priors_, model.probas_, model.errors_
    assert fitted is not None and probas is not None and errors is not None
    assert model.labels_ is not None
    # Answers in label order throughout (crowd-kit's own order is not stable across runs, and
    # a stored run read back from PostgreSQL's JSONB would come back in another).
    priors = {str(k): float(v) for k, v in sorted(fitted.items(), key=lambda kv: str(kv[0]))}

    given: dict[str, list[str]] = {}
    for workflow_id, _, text in answers:
        given.setdefault(workflow_id, []).append(text)
    items = []
    for workflow_id, texts in sorted(given.items()):
        estimate = str(model.labels_[workflow_id])
        top = Counter(texts).most_common()
        tie = len(top) > 1 and top[0][1] == top[1][1]
        majority = None if tie else top[0][0]
        items.append(
            DawidSkeneItem(
                workflow_id=workflow_id,
                answers=len(texts),
                estimate=values[estimate],
                probability=float(probas.loc[workflow_id, estimate]),
                majority=None if majority is None else values[majority],
                majority_share=top[0][1] / len(texts),
                final=finals.get(workflow_id),
                differs=majority is not None and majority != estimate,
            )
        )
    counts = Counter(who for _, who, _ in answers)
    people = []
    for who in sorted(counts):
        rows = errors.loc[who]
        confusion = {
            str(true): {str(g): float(rows.loc[g, true]) for g in sorted(rows.index, key=str)}
            for true in priors
        }
        accuracy = sum(p * confusion[t].get(t, 0.0) for t, p in priors.items())
        people.append(
            ContributorConfusion(
                contributor=who, answers=counts[who], accuracy=accuracy, confusion=confusion
            )
        )
    return empty.model_copy(
        update={
            "labels": sorted(values),
            "priors": priors,
            "items": len(items),
            "differing": sum(i.differs for i in items),
            "iterations": len(model.loss_history_),
            "by_item": [i for i in items if i.differs] if only_differing else items,
            "contributors": people,
        }
    )


DAWID_SKENE_COLUMNS = (
    "table",
    "workflow_id",
    "contributor",
    "answers",
    "estimate",
    "probability",
    "majority",
    "majority_share",
    "final",
    "differs",
    "accuracy",
    "true",
    "given",
)
"""The CSV's columns. ``item`` rows: workflow_id, answers, estimate, probability, majority
(empty on a tie), majority_share, final, differs. ``contributor`` rows: answers, accuracy.
``confusion`` rows: contributor, true, given, probability. ``prior`` rows: true,
probability. Answers are written as labels (:func:`label_text`)."""


def dawid_skene_csv_rows(report: DawidSkeneReport) -> Iterator[dict[str, Any]]:
    """The report's rows, each a dict over (some of) :data:`DAWID_SKENE_COLUMNS`."""

    def text(value: Any) -> str | None:
        return None if value is None else label_text(value)

    for true, prior in report.priors.items():
        yield {"table": "prior", "true": true, "probability": prior}
    for item in report.by_item:
        yield {
            "table": "item",
            "workflow_id": item.workflow_id,
            "answers": item.answers,
            "estimate": text(item.estimate),
            "probability": item.probability,
            "majority": text(item.majority),
            "majority_share": item.majority_share,
            "final": text(item.final),
            "differs": str(item.differs).lower(),
        }
    for person in report.contributors:
        yield {
            "table": "contributor",
            "contributor": person.contributor,
            "answers": person.answers,
            "accuracy": person.accuracy,
        }
        for true, row in person.confusion.items():
            for given, probability in row.items():
                yield {
                    "table": "confusion",
                    "contributor": person.contributor,
                    "true": true,
                    "given": given,
                    "probability": probability,
                }


def write_dawid_skene_csv(report: DawidSkeneReport, out: TextIO) -> None:
    """Write the report as CSV (a header, then :func:`dawid_skene_csv_rows`) to ``out``."""
    writer = csv.DictWriter(out, fieldnames=DAWID_SKENE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in dawid_skene_csv_rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
