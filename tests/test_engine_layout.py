"""The engine's layout (docs/architecture.md): a small facade over parts with one job each."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "whenthen"
RUNTIME = SRC / "runtime"
# The parts, lowest first: each may import only the parts before it (engine.py wires them all).
STAGES = ["context", "catalog", "actions", "activation", "dispatch", "intake", "scheduler", "worker", "history",
          "explain", "engine"]
FACADE_MAX_LINES = 420
SQL = re.compile(r"\b(SELECT\b.+\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)|"
                 r"ALTER\s+TABLE|FOR\s+UPDATE\s+SKIP)\b", re.IGNORECASE | re.DOTALL)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imported(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (TYPE_CHECKING blocks and functions included)."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _outside_store() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if (RUNTIME / "store") not in p.parents]


def test_the_facade_stays_small() -> None:
    lines = len((RUNTIME / "engine.py").read_text(encoding="utf-8").splitlines())
    assert lines <= FACADE_MAX_LINES, f"engine.py has {lines} lines: move the work into a part"
    classes = [n.name for n in _tree(RUNTIME / "engine.py").body if isinstance(n, ast.ClassDef)]
    assert classes == ["Engine"], classes


@pytest.mark.parametrize("stage", STAGES)
def test_parts_import_only_earlier_stages(stage: str) -> None:
    earlier = set(STAGES[:STAGES.index(stage)])
    for name in _imported(RUNTIME / f"{stage}.py"):
        part = name.removeprefix("whenthen.runtime.").split(".")[0] if name.startswith("whenthen.runtime.") else None
        if part in STAGES:
            assert part in earlier, f"runtime/{stage}.py imports {name}: a later stage (order: {STAGES})"


@pytest.mark.parametrize("stage", STAGES)
def test_parts_reach_storage_only_through_the_protocol(stage: str) -> None:
    for name in _imported(RUNTIME / f"{stage}.py"):
        assert not name.startswith(("whenthen.runtime.store.sqlite", "whenthen.runtime.store.postgres",
                                    "sqlite3", "psycopg")), f"runtime/{stage}.py imports {name}"


@pytest.mark.parametrize("stage", STAGES)
def test_each_part_says_its_job_in_one_line(stage: str) -> None:
    doc = ast.get_docstring(_tree(RUNTIME / f"{stage}.py"))
    assert doc, f"runtime/{stage}.py has no module docstring"
    if stage != "engine":
        assert "\n" not in doc.strip(), f"runtime/{stage}.py: the module docstring is one line"


def test_public_functions_of_the_parts_are_typed() -> None:
    for stage in STAGES:
        for node in ast.walk(_tree(RUNTIME / f"{stage}.py")):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
                args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
                missing = [a.arg for a in args if a.annotation is None]
                assert not missing and node.returns is not None, \
                    f"runtime/{stage}.py:{node.lineno} {node.name}: type hints on public functions"


def test_no_database_driver_outside_the_store() -> None:
    for path in _outside_store():
        drivers = {n for n in _imported(path) if n.split(".")[0] in ("sqlite3", "psycopg", "psycopg_pool")}
        assert not drivers, f"{path.relative_to(SRC)} imports {sorted(drivers)}: only runtime/store/ may"


def test_no_sql_outside_the_store() -> None:
    for path in _outside_store():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                if _is_docstring_like(node.value):
                    continue
                raise AssertionError(f"{path.relative_to(SRC)}:{node.lineno}: SQL outside runtime/store/: "
                                     f"{node.value[:60]!r}")


def _is_docstring_like(text: str) -> bool:
    """Prose mentioning a statement (a docstring about `FOR UPDATE SKIP LOCKED`) is not a query."""
    return bool(re.search(r"\b(the|a|an|with|is|are)\b", text)) and not re.search(r"\?|%s|\$\d", text)


@pytest.mark.parametrize("package", ["compiler", "stdlib", "grammar"])
def test_the_front_end_never_imports_the_runtime(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        bad = sorted(n for n in _imported(path) if n == "whenthen.runtime" or n.startswith("whenthen.runtime."))
        assert not bad, f"{path.relative_to(SRC)} imports {bad}"


def test_the_sql_check_finds_the_stores_queries() -> None:
    """The check above is not vacuous: it finds the queries of store/sqlite.py."""
    found = [n for n in ast.walk(_tree(RUNTIME / "store" / "sqlite.py"))
             if isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.search(n.value)]
    assert len(found) > 10
