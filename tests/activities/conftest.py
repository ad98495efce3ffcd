"""Activity tests record LLM calls into a migrated store: SQLite, and PostgreSQL when configured."""

from tests.support.database import db_engine, db_url, migrated_engine, sessions

__all__ = ["db_engine", "db_url", "migrated_engine", "sessions"]
