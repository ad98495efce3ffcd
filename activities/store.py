"""Store activities: the workflow's projection into SQL."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from store.db import transaction
from store.projection import apply_batch
from workflows.messages import ProjectionBatch


class StoreActivities:
    """Activities that write the store. The session factory is injected by the worker."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.sessions = sessions

    @activity.defn(name="project_task")
    async def project_task(self, batch: ProjectionBatch) -> int:
        """Apply one projection batch; returns the snapshot's seq. Safe to repeat."""
        await asyncio.to_thread(self._apply, batch)
        return batch.view.seq

    def _apply(self, batch: ProjectionBatch) -> None:
        with transaction(self.sessions) as session:
            apply_batch(session, batch)
