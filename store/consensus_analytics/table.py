"""Consensus Analytics as one CSV table, for spreadsheets: a row per figure set, ``table`` says
which (``node``, ``field``, ``contributor`` or ``pair``); a column a row has no figure for is
empty, as is a figure that is undefined."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, TextIO

from store.consensus_analytics.models import ConsensusAgreement

CSV_COLUMNS = (
    "table",
    "node",
    "field",
    "level",
    "unit",
    "contributor",
    "other",
    "items",
    "answers",
    "final",
    "adjudicated",
    "contributors",
    "alpha",
    "percent_agreement",
    "kappa",
    "compared",
    "agreed",
    "share",
    "note",
)
"""The CSV's columns. ``node`` rows: items, answers, final, adjudicated, contributors.
``field`` rows: level, unit, items, answers, alpha, percent_agreement, note. ``contributor``
rows (one per counted field): answers (all of theirs on the node), compared, agreed, share
(with the final answer). ``pair`` rows: contributor and other, then per field items,
percent_agreement and kappa; the pair's own row (empty field) has its shared items."""


def csv_rows(report: ConsensusAgreement) -> Iterator[dict[str, Any]]:
    """The report's rows, each a dict over (some of) :data:`CSV_COLUMNS`."""
    for node in report.nodes:
        yield {
            "table": "node",
            "node": node.node,
            "items": node.items,
            "answers": node.answers,
            "final": node.final,
            "adjudicated": node.adjudicated,
            "contributors": node.contributors,
        }
        for f in node.fields:
            yield {
                "table": "field",
                "node": node.node,
                "field": f.field,
                "level": f.level.value if f.level else None,
                "unit": f.unit,
                "items": f.items,
                "answers": f.answers,
                "alpha": f.alpha,
                "percent_agreement": f.percent_agreement,
                "note": f.note,
            }
        for person in node.by_contributor:
            for share in person.fields:
                yield {
                    "table": "contributor",
                    "node": node.node,
                    "field": share.field,
                    "contributor": person.contributor,
                    "answers": person.answers,
                    "compared": share.compared,
                    "agreed": share.agreed,
                    "share": share.share,
                }
        for pair in node.pairs:
            who = {"table": "pair", "node": node.node, "contributor": pair.a, "other": pair.b}
            yield {**who, "items": pair.shared}
            for pf in pair.fields:
                yield {
                    **who,
                    "field": pf.field,
                    "items": pf.items,
                    "percent_agreement": pf.percent_agreement,
                    "kappa": pf.kappa,
                }


def write_csv(report: ConsensusAgreement, out: TextIO) -> None:
    """Write the report as CSV (a header, then :func:`csv_rows`) to ``out``."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
