"""Consensus Analytics: how far the annotators of a pipeline's consensus nodes agree.

A consensus node's items each get several blind answers (``node_instances.consensus``); the
engine merges each item's answers on its own (``workflows/consensus.py``). This package reports
the dataset figures over every item of a node, per counted field (:func:`consensus_agreement`):

* **Krippendorff's alpha** (:func:`store.reliability.alpha`) at the level that fits the field
  (:data:`LEVELS`): 1 is perfect agreement, 0 agreement at chance, below 0 systematic
  disagreement. ``multi_select`` fields count each option as its own unit, chosen or not
  (nominal); ``ranking`` fields count each ranked item as a unit whose value is the place it
  was given (ordinal). Free text is not compared.
* **Percent agreement**: per item, the share of pairs of answers that agree, averaged over the
  items (each item weighs the same, however many answers it took). Two answers agree when they
  are equal (sets for ``multi_select``, the whole order for ``ranking``), numbers when they are
  within the field's consensus ``tolerance`` (0 unless set; seconds for date-times).
* **Per contributor**: their answers, and per field the share of them that agree (as above)
  with the item's final answer (``node_instances.values``: the merge, or the adjudicator's
  answer), over items that have one: merged and agreed, or adjudicated.
* **Per pair of contributors** sharing at least ``min_shared`` items: per field, their percent
  agreement and Cohen's kappa (:func:`store.reliability.kappa`: plain for nominal fields,
  quadratic-weighted for ordinal ones, none for interval ones).

Only each item's current round counts (answers before a failed review opened a new round are
left out). Field types and tolerances come from the pipeline's stored versions, the current one
first. Rows are read once, streamed; the figures write nothing.

:func:`dawid_skene` re-aggregates one categorical field with Dawid-Skene (crowd-kit, the
optional ``quality`` extra), beside each item's majority and final answer;
:func:`run_dawid_skene` runs it and stores the run with its items (:func:`save_dawid_skene`;
the only write here: a new run, never a task's values), :func:`dawid_skene_runs` lists the
stored runs and :func:`stored_dawid_skene` reads one back.

The package is this public face over its modules: ``models`` (the report models and
:class:`NotConsensus`), ``rows`` (which nodes, their rows, an item's current answers),
``fields`` (levels, units and when two answers agree), ``tally`` (counting a node item by
item), ``report`` (:func:`consensus_agreement`), ``table`` (the CSV), ``dawid_skene`` and
``stored`` (stored runs).
Import from ``store.consensus_analytics``.
"""

from store.consensus_analytics.dawid_skene import (
    CATEGORICAL_TYPES,
    DAWID_SKENE_COLUMNS,
    DEFAULT_ITERATIONS,
    ContributorConfusion,
    DawidSkeneItem,
    DawidSkeneReport,
    NotCategorical,
    QualityExtraMissing,
    dawid_skene,
    dawid_skene_csv_rows,
    label_text,
    write_dawid_skene_csv,
)
from store.consensus_analytics.fields import LEVELS, CountedField, counted_fields
from store.consensus_analytics.models import (
    DEFAULT_MIN_SHARED,
    ConsensusAgreement,
    ContributorAgreement,
    FieldAgreement,
    FinalAgreement,
    NodeAgreement,
    NotConsensus,
    PairAgreement,
    PairField,
)
from store.consensus_analytics.report import consensus_agreement
from store.consensus_analytics.stored import (
    DawidSkeneRun,
    NoAnswers,
    StoredDawidSkene,
    UnknownRun,
    dawid_skene_runs,
    run_dawid_skene,
    save_dawid_skene,
    stored_dawid_skene,
)
from store.consensus_analytics.table import CSV_COLUMNS, csv_rows, write_csv

__all__ = [
    "CATEGORICAL_TYPES",
    "CSV_COLUMNS",
    "DAWID_SKENE_COLUMNS",
    "DEFAULT_ITERATIONS",
    "DEFAULT_MIN_SHARED",
    "LEVELS",
    "ConsensusAgreement",
    "ContributorAgreement",
    "ContributorConfusion",
    "CountedField",
    "DawidSkeneItem",
    "DawidSkeneReport",
    "DawidSkeneRun",
    "FieldAgreement",
    "FinalAgreement",
    "NoAnswers",
    "NodeAgreement",
    "NotCategorical",
    "NotConsensus",
    "PairAgreement",
    "PairField",
    "QualityExtraMissing",
    "StoredDawidSkene",
    "UnknownRun",
    "consensus_agreement",
    "counted_fields",
    "csv_rows",
    "dawid_skene",
    "dawid_skene_csv_rows",
    "dawid_skene_runs",
    "label_text",
    "run_dawid_skene",
    "save_dawid_skene",
    "stored_dawid_skene",
    "write_csv",
    "write_dawid_skene_csv",
]
