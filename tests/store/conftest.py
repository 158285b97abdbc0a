"""Fixtures of the store tests: the big seeded stores of the query-plan tests (`plans.py`), defined here once so
that every plan-test module shares one seeded store per dialect and session."""

from __future__ import annotations

from .plans import big_postgres, big_sqlite, big_store

__all__ = ["big_postgres", "big_sqlite", "big_store"]
