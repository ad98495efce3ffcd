"""Conveyor's HTTP API (FastAPI).

``create_api(deps)`` builds it; :func:`conveyor.server.create_app` serves it together with the
web app (``python starter.py api``). Every route goes through the same client library and store
queries the CLI uses.
"""

from conveyor.api.app import create_api
from conveyor.http_common import ApiDeps

__all__ = ["ApiDeps", "create_api"]
