"""Placeholder: commands registered here by their part."""

from __future__ import annotations

from waflow.cli.app import app  # noqa: F401
