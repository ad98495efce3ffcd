"""The web app: contributor pages and the Data Explorer, served beside the API."""

from __future__ import annotations

from fastapi import FastAPI


def mount(app: FastAPI) -> None:
    """Add the web app's pages and static files to ``app``."""
