"""Counting one consensus node item by item, then its report (:class:`NodeTally`)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from store.consensus_analytics.fields import CountedField, aligned
from store.consensus_analytics.models import (
    ContributorAgreement,
    FieldAgreement,
    FinalAgreement,
    NodeAgreement,
    PairAgreement,
    PairField,
)
from store.consensus_analytics.rows import current_answers, is_final
from store.reliability import alpha, kappa, pair_agreement
from workflows.graph import FieldType


@dataclass
class _PairTally:
    shared: int = 0
    same: dict[str, list[bool]] = field(default_factory=dict)
    values: dict[str, tuple[list[Any], list[Any]]] = field(default_factory=dict)


@dataclass
class NodeTally:
    """One node's counts, filled item by item."""

    fields: list[CountedField]
    items: int = 0
    final: int = 0
    adjudicated: int = 0
    answers: int = 0
    units: dict[str, list[list[Any]]] = field(default_factory=dict)
    shares: dict[str, list[float]] = field(default_factory=dict)
    given: dict[str, int] = field(default_factory=dict)
    compared: dict[str, int] = field(default_factory=dict)
    by: dict[str, int] = field(default_factory=dict)
    with_final: dict[tuple[str, str], list[bool]] = field(default_factory=dict)
    pairs: dict[tuple[str, str], _PairTally] = field(default_factory=dict)

    def add(self, consensus: dict[str, Any], values: dict[str, Any]) -> None:
        latest = current_answers(consensus)
        if not latest:
            return
        self.items += 1
        self.answers += len(latest)
        for person in latest:
            self.by[person] = self.by.get(person, 0) + 1
        final = is_final(consensus, len(latest))
        if final:
            self.final += 1
            self.adjudicated += bool((consensus.get("result") or {}).get("adjudicated_by"))
        for fld in self.fields:
            self._add_field(fld, latest, values if final else None)
        for a, b in itertools.combinations(sorted(latest), 2):
            pair = self.pairs.setdefault((a, b), _PairTally())
            pair.shared += 1
            for fld in self.fields:
                self._add_pair(pair, fld, latest[a], latest[b])

    def _add_field(
        self, fld: CountedField, latest: dict[str, dict[str, Any]], final: dict[str, Any] | None
    ) -> None:
        name = fld.spec.name
        parts = {p: got for p, v in latest.items() if (got := fld.parts(v)) is not None}
        if len(parts) >= 2:
            self.compared[name] = self.compared.get(name, 0) + 1
            self.given[name] = self.given.get(name, 0) + len(parts)
            units = self.units.setdefault(name, [])
            fill = 0 if fld.spec.type == FieldType.MULTI_SELECT else None
            for unit in sorted(set().union(*(p.keys() for p in parts.values()))):
                units.append([v for p in parts.values() if (v := p.get(unit, fill)) is not None])
            share = pair_agreement([latest[p][name] for p in parts], fld.same)
            if share is not None:
                self.shares.setdefault(name, []).append(share)
        if final is not None and fld.parts(final) is not None:
            for person in parts:
                self.with_final.setdefault((person, name), []).append(
                    fld.same(latest[person][name], final[name])
                )

    def _add_pair(
        self, pair: _PairTally, fld: CountedField, a: dict[str, Any], b: dict[str, Any]
    ) -> None:
        name = fld.spec.name
        pa, pb = fld.parts(a), fld.parts(b)
        if pa is None or pb is None:
            return
        pair.same.setdefault(name, []).append(fld.same(a[name], b[name]))
        xs, ys = pair.values.setdefault(name, ([], []))
        for x, y in aligned(fld, pa, pb):
            xs.append(x)
            ys.append(y)

    def report(self, node: str, min_shared: int) -> NodeAgreement:
        fields = [self._field_report(fld) for fld in self.fields]
        people = [
            ContributorAgreement(
                contributor=person,
                answers=count,
                fields=[
                    _final_agreement(fld.spec.name, self.with_final.get((person, fld.spec.name)))
                    for fld in self.fields
                    if fld.level is not None
                ],
            )
            for person, count in sorted(self.by.items())
        ]
        pairs = [
            PairAgreement(
                a=a,
                b=b,
                shared=tally.shared,
                fields=[
                    self._pair_field(fld, tally) for fld in self.fields if fld.level is not None
                ],
            )
            for (a, b), tally in sorted(self.pairs.items())
            if tally.shared >= min_shared
        ]
        return NodeAgreement(
            node=node,
            items=self.items,
            final=self.final,
            adjudicated=self.adjudicated,
            answers=self.answers,
            contributors=len(self.by),
            fields=fields,
            by_contributor=people,
            pairs=pairs,
        )

    def _field_report(self, fld: CountedField) -> FieldAgreement:
        name, level = fld.spec.name, fld.level
        items = self.compared.get(name, 0)
        value = alpha(self.units.get(name, []), level) if level is not None else None
        shares = self.shares.get(name, [])
        note = None
        if level is None:
            note = "free text is not compared"
        elif not items:
            note = "no item has two answers giving this field yet"
        elif value is None:
            note = "every answer gives the same value: alpha is undefined without variation"
        return FieldAgreement(
            field=name,
            type=fld.spec.type,
            level=level,
            unit=fld.unit,
            items=items,
            answers=self.given.get(name, 0),
            alpha=value,
            percent_agreement=sum(shares) / len(shares) if shares else None,
            note=note,
        )

    @staticmethod
    def _pair_field(fld: CountedField, tally: _PairTally) -> PairField:
        assert fld.level is not None
        name = fld.spec.name
        same = tally.same.get(name, [])
        xs, ys = tally.values.get(name, ([], []))
        return PairField(
            field=name,
            items=len(same),
            percent_agreement=sum(same) / len(same) if same else None,
            kappa=kappa(xs, ys, fld.level),
        )


def _final_agreement(name: str, agreed: list[bool] | None) -> FinalAgreement:
    agreed = agreed or []
    return FinalAgreement(
        field=name,
        compared=len(agreed),
        agreed=sum(agreed),
        share=sum(agreed) / len(agreed) if agreed else None,
    )
