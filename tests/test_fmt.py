"""Formatter tests: idempotent, AST-preserving, comments kept; `whenthen fmt` on real files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from _paths import conformance_files
from whenthen.grammar import ast
from whenthen.grammar.parser import parse
from whenthen.source import Source
from whenthen.tools.fmt import FormatError, format_source

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "examples").glob("*.rules")) + conformance_files("*/*.rules")


def parsed(text: str) -> ast.File:
    file, diagnostics = parse(Source("t.rules", text))
    assert not diagnostics, [d.render(text) for d in diagnostics]
    return file


def comments_of(text: str) -> list[str]:
    return re.findall(r"#\s*c\d+", text)


def assert_good_format(text: str) -> str:
    """fmt(x) parses to the same AST as x, fmt is a fixed point, and no comment is lost."""
    once = format_source(text, "t.rules")
    assert parsed(once) == parsed(text)
    assert format_source(once, "t.rules") == once
    assert sorted(comments_of(once)) == sorted(comments_of(text))
    return once


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_files_format_stably(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    once = format_source(text, path.name)
    assert parsed(once) == parsed(text)
    assert format_source(once, path.name) == once
    kept = [line.split("#", 1)[1].strip() for line in text.splitlines() if line.lstrip().startswith("#")]
    for comment in kept:
        assert comment in once


@st.composite
def with_comments(draw: st.DrawFn, text: str) -> str:
    """`text` with comments after lines, comment lines and blank lines sprinkled in."""
    out = []
    for number, line in enumerate(text.splitlines()):
        if draw(st.booleans()):
            out.append(f"# c{number}a")
        if draw(st.integers(0, 4)) == 0:
            out.append("")
        out.append(line + (f"  # c{number}b" if draw(st.booleans()) else ""))
    return "\n".join(out) + "\n"


strategies = pytest.importorskip("strategies")  # tests/strategies.py: generated ASTs, printed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_programs_with_comments(data: st.DataObject) -> None:
    text, _ = data.draw(strategies.programs())
    noisy = data.draw(with_comments(text))
    file, diagnostics = parse(Source("t.rules", noisy))
    assume(not diagnostics and file == parsed(text))  # a comment line may not split a `{}` type
    assert_good_format(noisy)


def test_layout_of_a_one_line_rule() -> None:
    text = "when a.b where x = 1 then f(); wait 24h; g()  # done\n"
    assert format_source(text) == (
        "when a.b\nwhere x = 1\nthen\n  f()\n  wait 24h\n  g()  # done\nend\n"
    )


def test_comments_inside_statements_and_blocks() -> None:
    text = (
        "# about R\n"
        'rule "R"  # c1\n'
        "when a.b\n"
        "then\n"
        "  f(a: 1,  # c2\n"
        "    b: 2)  # c3\n"
        "  if x then\n"
        "    g()\n"
        "    # c4\n"
        "  else  # c5\n"
        "    h()\n"
        "  end\n"
        "end\n"
        "\n"
        "# c6\n"
    )
    assert assert_good_format(text) == (
        "# about R\n"
        'rule "R"  # c1\n'
        "when a.b\n"
        "then\n"
        "  f(a: 1, b: 2)  # c2 # c3\n"
        "  if x then\n"
        "    g()\n"
        "  # c4\n"
        "  else  # c5\n"
        "    h()\n"
        "  end\n"
        "end\n"
        "\n"
        "# c6\n"
    )


def test_trigger_declarations_short_on_one_line_long_or_commented_on_several() -> None:
    text = "trigger a.b {\n  x: str\n}\ntrigger c.d { x: str, # c1\n y: int }\n"
    assert format_source(text) == (
        "trigger a.b { x: str }\n\ntrigger c.d {\n  x: str  # c1\n  y: int\n}\n"
    )


def test_blank_lines_collapse_and_never_open_a_block() -> None:
    text = "when a.b then\n\n  f()\n\n\n  g()\nend\n\n\n\naction h()\naction k()\n"
    assert format_source(text) == "when a.b\nthen\n  f()\n\n  g()\nend\n\naction h()\naction k()\n"


def test_durations_keep_their_spelling() -> None:
    assert format_source("when a.b then wait 24h + 90s\n") == "when a.b\nthen\n  wait 24h + 90s\nend\n"


def test_syntax_error_raises_format_error_with_e001() -> None:
    with pytest.raises(FormatError) as info:
        format_source("when a.b then f(\n")
    assert info.value.diagnostics[0].code == "E001"


# ----------------------------------------------------------------------------- the command


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "whenthen", *args], capture_output=True, text=True,
                          input=stdin, timeout=60)


def test_cli_check_lists_files_then_fmt_rewrites_them(tmp_path: Path) -> None:
    messy = tmp_path / "a.rules"
    messy.write_text("when a.b then f()   # hi\n", encoding="utf-8")
    clean = tmp_path / "b.rules"
    clean.write_text("action f()\n", encoding="utf-8")
    checked = run_cli("fmt", "--check", str(tmp_path))
    assert checked.returncode == 1
    assert checked.stdout.strip() == f"would reformat {messy}"
    assert messy.read_text(encoding="utf-8") == "when a.b then f()   # hi\n"
    done = run_cli("fmt", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert messy.read_text(encoding="utf-8") == "when a.b\nthen\n  f()  # hi\nend\n"
    assert run_cli("fmt", "--check", str(tmp_path)).returncode == 0


def test_cli_leaves_files_with_syntax_errors_alone(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text("when a.b then f(\n", encoding="utf-8")
    result = run_cli("fmt", str(bad))
    assert result.returncode == 1
    assert "error[E001]" in result.stderr and "Traceback" not in result.stderr
    assert bad.read_text(encoding="utf-8") == "when a.b then f(\n"


def test_cli_missing_path_is_a_usage_error_and_stdin_formats_to_stdout() -> None:
    missing = run_cli("fmt", "/nonexistent/x.rules")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    piped = run_cli("fmt", "-", stdin="action f( x: str )\n")
    assert piped.returncode == 0 and piped.stdout == "action f(x: str)\n"


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_damaged_files_are_formatted_or_refused_never_crash(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(CORPUS)).read_text(encoding="utf-8")
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    damaged = text[:start] + data.draw(st.sampled_from(["", "(", "end\n", "'", "# x\n", "\n\n"])) + text[end:]
    try:
        once = format_source(damaged, "t.rules")
    except FormatError as exc:
        assert exc.diagnostics and all(d.code in ("E001", "E000") for d in exc.diagnostics)
        assert all(d.code == "E001" for d in exc.diagnostics), "the formatter's safety net fired"
        return
    assert format_source(once, "t.rules") == once


def test_a_one_line_rule_after_a_blank_line_gets_no_blank_lines_between_its_statements() -> None:
    source = 'trigger a.b { x: str }\n\nwhen a.b then log(message: "1"); wait 2d; log(message: "2")\n'
    formatted = format_source(source, "t.rules")
    assert formatted == ('trigger a.b { x: str }\n\nwhen a.b\nthen\n  log(message: "1")\n  wait 2d\n'
                         '  log(message: "2")\nend\n')
    assert format_source(formatted, "t.rules") == formatted  # stable
    # a blank line the author wrote between statements of a block is kept
    spaced = 'trigger a.b { x: str }\n\nwhen a.b then\n  log(message: "1")\n\n  wait 2d\nend\n'
    assert format_source(spaced, "t.rules") == 'trigger a.b { x: str }\n\nwhen a.b\nthen\n  log(message: "1")\n\n  wait 2d\nend\n'


def test_the_examples_are_fmt_clean() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    for path in sorted(examples.glob("*.rules")):
        text = path.read_text(encoding="utf-8")
        assert format_source(text, str(path)) == text, f"{path.name} is not fmt-clean: run whenthen fmt examples"


def test_fmt_diff_prints_a_unified_diff_and_changes_nothing(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    original = "trigger a.b { x: str }\nwhen a.b where x = 'y' then log(message: x)\n"
    rules.write_text(original)
    done = subprocess.run([sys.executable, "-m", "whenthen", "fmt", "--diff", str(rules)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stdout.startswith(f"--- {rules}\n+++ {rules} (formatted)\n@@")
    assert "-when a.b where x = 'y' then log(message: x)\n+\n+when a.b\n+where x = 'y'\n" in done.stdout
    assert rules.read_text() == original
    subprocess.run([sys.executable, "-m", "whenthen", "fmt", str(rules)], check=True, capture_output=True)
    clean = subprocess.run([sys.executable, "-m", "whenthen", "fmt", "--diff", str(rules)], capture_output=True, text=True)
    assert clean.returncode == 0 and clean.stdout == ""
