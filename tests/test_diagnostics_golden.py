"""Golden tests: each testdata/diagnostics/*.rules checked alone, rendered with carets (and as JSON
for json.rules), compared with the `.expected` file beside it. Regenerate with WHENTHEN_UPDATE_GOLDENS=1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from _paths import compare_golden
from whenthen.compiler.checker import check_program
from whenthen.diagnostics import render_all
from whenthen.source import Source

GOLDEN = Path(__file__).resolve().parent.parent / "testdata" / "diagnostics"
CASES = sorted(GOLDEN.glob("*.rules"))


def _diagnose(path: Path):
    source = Source(path.name, path.read_text(encoding="utf-8"))  # names without folders: stable
    program = check_program([source])
    return program.diagnostics, {source.name: source.text}


def _compare(expected_path: Path, actual: str) -> None:
    compare_golden(expected_path, actual)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_text_rendering(path: Path) -> None:
    diagnostics, texts = _diagnose(path)
    _compare(path.with_suffix(".expected"), render_all(diagnostics, texts) + "\n")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_reports_the_code_it_is_named_after(path: Path) -> None:
    code = path.stem.split("-")[0]
    diagnostics, _ = _diagnose(path)
    if re.fullmatch(r"[EW]\d{3}", code):
        assert code in {d.code for d in diagnostics}
    assert "E000" not in {d.code for d in diagnostics}


def test_json_rendering() -> None:
    path = GOLDEN / "json.rules"
    diagnostics, _ = _diagnose(path)
    actual = json.dumps([d.to_json() for d in diagnostics], indent=2) + "\n"
    _compare(path.with_suffix(".expected.json"), actual)
    assert {d["severity"] for d in json.loads(actual)} == {"error", "warning"}
