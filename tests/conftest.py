"""Shared test settings."""

import pytest


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch):
    """pytest-xdist's workers set COLUMNS=80, which the command line honours when its output is
    not a terminal (tables would be cut); the tests see the default, wide output."""
    monkeypatch.delenv("COLUMNS", raising=False)
