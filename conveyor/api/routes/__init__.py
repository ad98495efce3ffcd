"""The API's routes, one module per area; :func:`routers` lists them for ``create_api``."""

from __future__ import annotations

from fastapi import APIRouter, Depends


def routers() -> list[APIRouter]:
    """Every area's router, each refusing NUL characters (see ``common.reject_nul``)."""
    from conveyor.api.routes import (
        analytics,
        bulk,
        consensus,
        me,
        pipelines,
        queue,
        tasks,
        users,
    )
    from conveyor.api.routes.common import reject_nul

    found = []
    for module in (me, pipelines, tasks, queue, bulk, analytics, consensus, users):
        wrapper = APIRouter(dependencies=[Depends(reject_nul)])
        wrapper.include_router(module.router)
        found.append(wrapper)
    return found
