"""Shared fixtures of the test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from _paths import conformance_dir


# -- the shared conformance cases (tests/_paths.py finds them; missing ones fail loudly) ----------
@pytest.fixture(scope="session")
def conformance() -> Path:
    return conformance_dir()
