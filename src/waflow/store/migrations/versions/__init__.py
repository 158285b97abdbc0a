"""Alembic revisions, linear: each revision's `down_revision` is the one before it."""
