"""Alembic migrations for the Conveyor store (run them with ``store.db.migrate``)."""
