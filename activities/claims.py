"""Claim activities: the claim limit, kept inside the claim itself.

A task's claim update runs :meth:`ClaimActivities.reserve_claim` as a local activity before it
claims a node of a pipeline with a claim limit, so the limit holds whoever sends the claim (the
API, the CLI, the stock ``temporal`` CLI, a signal or the SDK). These two activities are the only
writers of ``claim_reservations``.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from store.db import transaction
from store.workqueue import drop_reservation, reserve_claim
from workflows.messages import ClaimGrant, ClaimReservation
from workflows.options import DROP_RESERVATION_ACTIVITY, RESERVE_CLAIM_ACTIVITY


class ClaimActivities:
    """The session factory is injected by the worker."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    @activity.defn(name=RESERVE_CLAIM_ACTIVITY)
    async def reserve_claim(self, request: ClaimReservation) -> ClaimGrant:
        """Reserve the claim if the contributor is below the limit; safe to repeat."""
        return await asyncio.to_thread(self._reserve, request)

    @activity.defn(name=DROP_RESERVATION_ACTIVITY)
    async def drop_reservation(self, request: ClaimReservation) -> None:
        """Drop the reservation of a claim the task refused; safe to repeat."""
        await asyncio.to_thread(self._drop, request)

    def _reserve(self, request: ClaimReservation) -> ClaimGrant:
        with transaction(self.sessions) as session:
            held = reserve_claim(session, request)
        return ClaimGrant(granted=held is None, held=held or 0)

    def _drop(self, request: ClaimReservation) -> None:
        with transaction(self.sessions) as session:
            drop_reservation(session, request)
