"""The disassembler: golden listings in testdata/dis (regenerate with WHENTHEN_UPDATE_GOLDENS=1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from _paths import compare_golden
from _vm_support import compile_text
from whenthen.compiler.dis import disasm_paths, disassemble
from whenthen.diagnostics import CompileError, WhenthenError

GOLDENS = Path(__file__).parent.parent / "testdata" / "dis"
CASES = sorted(GOLDENS.glob("*.rules"))


@pytest.mark.parametrize("rules", CASES, ids=[p.stem for p in CASES])
def test_listing_matches_golden(rules: Path) -> None:
    listing = disasm_paths([rules])
    golden = rules.with_suffix(".dis")
    compare_golden(golden, listing)


def test_listing_shows_source_lines_jump_targets_and_meanings() -> None:
    listing = disasm_paths([GOLDENS / "vip.rules"], rule="VIP welcome")
    assert "    12 | where category = 'VIP' and first_name = 'John'" in listing
    assert "CALL_ACTION" in listing and "(send_email(to, subject, body))" in listing
    assert ">>" in listing
    assert "CONST" in listing and "(2026-12-01T09:00:00Z)" in listing


def test_listing_is_stable_across_compilations() -> None:
    text = (GOLDENS / "waits.rules").read_text()
    first = [disassemble(code) for code in compile_text(text).values()]
    assert first == [disassemble(code) for code in compile_text(text).values()]


def test_disasm_paths_errors() -> None:
    with pytest.raises(CompileError):
        disasm_paths(["rule \"x\" when nope.never then\nend\n"])
    with pytest.raises(WhenthenError, match="unknown rule .Nope. in the program"):
        disasm_paths([GOLDENS / "vip.rules"], rule="Nope")
