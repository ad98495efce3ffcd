"""Store tests run on SQLite and PostgreSQL (see tests/support/database.py)."""

from tests.support.database import db_engine, db_url, migrated_engine, sessions

__all__ = ["db_engine", "db_url", "migrated_engine", "sessions"]
