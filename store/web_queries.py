"""Queries of the web app's pages that the other readers of the store do not share.

The contributor's work queue (``conveyor.web.contributor``) pages through the Available tab with
a keyset: the position after the last item shown, ``(available_since, workflow_id, node)``, the
order :func:`store.workqueue.claimable_query` sorts by. The caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import tuple_
from sqlalchemy.orm import Session

from store.models import NodeRow
from store.workqueue import WorkItem, claimable_query

QueuePosition = tuple[datetime, str, str]
"""Where a page of the work queue ends: ``(available_since, workflow_id, node)`` of its last
item."""


def claimable_page(
    session: Session,
    contributor: str,
    roles: list[str],
    *,
    pipeline: str | None = None,
    after: QueuePosition | None = None,
    limit: int,
) -> list[WorkItem]:
    """Up to ``limit`` nodes ``contributor`` may claim now, oldest first (as
    :func:`store.workqueue.claimable`), starting after ``after`` when given."""
    query = claimable_query(session, contributor, roles, pipeline=pipeline)
    if after is not None:
        query = query.where(
            tuple_(NodeRow.available_since, NodeRow.workflow_id, NodeRow.node) > after
        )
    rows = session.execute(query.limit(limit))
    return [WorkItem(w, n, p, s, a, r) for w, n, p, s, a, r in rows]
