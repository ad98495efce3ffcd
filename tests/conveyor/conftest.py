"""Work-queue and reconcile tests run against the dev server and each store dialect."""

from tests.support.database import db_engine, db_url, migrated_engine, sessions

__all__ = ["db_engine", "db_url", "migrated_engine", "sessions"]
