"""Conveyor's HTTP API (FastAPI) and the web app it serves.

``create_app(deps)`` builds the application; ``python starter.py api`` serves it. Every route
goes through the same client library and store queries the CLI uses.
"""

from conveyor.api.app import create_app
from conveyor.http_common import ApiDeps

__all__ = ["ApiDeps", "create_app"]
