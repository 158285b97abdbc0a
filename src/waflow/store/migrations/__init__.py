"""Alembic migration environment for the waflow store (see `waflow.store.migrate`)."""
