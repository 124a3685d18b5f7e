"""Where tests find shared data: the repository, the shared conformance cases, golden updates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTDATA = REPO / "testdata"
# ../shared/conformance from the repo root; /work/shared/conformance where the checkout lives elsewhere
_CANDIDATES = (REPO.parent / "shared" / "conformance", Path("/work/shared/conformance"))
CONFORMANCE = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
# One switch for every golden test: WHENTHEN_UPDATE_GOLDENS=1 rewrites the files instead of comparing.
UPDATE_GOLDENS = os.environ.get("WHENTHEN_UPDATE_GOLDENS") == "1"


def conformance_dir() -> Path:
    """The shared conformance folder. A missing one skips the tests that play it, saying so (never
    a silent pass over zero cases); set WHENTHEN_REQUIRE_CONFORMANCE=1 to make it a failure."""
    if not (CONFORMANCE / "run").exists() and not any(CONFORMANCE.glob("*/*.rules")):
        message = (f"the shared conformance cases are missing: expected them at {CONFORMANCE} "
                   "(../shared/conformance relative to the repository root)")
        if os.environ.get("WHENTHEN_REQUIRE_CONFORMANCE") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return CONFORMANCE


def conformance_files(pattern: str) -> list[Path]:
    """Files of the conformance cases matching `pattern` (a glob); never an empty list."""
    found = sorted(conformance_dir().glob(pattern))
    if not found:
        pytest.fail(f"no conformance file matches {pattern!r} under {CONFORMANCE}", pytrace=False)
    return found


def compare_golden(path: Path, actual: str) -> None:
    """Assert `actual` equals the golden file, or rewrite it under WHENTHEN_UPDATE_GOLDENS=1."""
    if UPDATE_GOLDENS:
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"missing golden {path.name}: run with WHENTHEN_UPDATE_GOLDENS=1 and review the diff"
    assert actual == path.read_text(encoding="utf-8"), \
        f"{path.name} changed (WHENTHEN_UPDATE_GOLDENS=1 to accept, then review the diff)"
