"""One formatter per kind of value, and no compiler/stdlib/grammar module importing the runtime."""

from __future__ import annotations

import ast
import datetime as dt
import json
import pathlib

import pytest

from whenthen import calendar, values
from whenthen.runtime import vm

UTC = dt.UTC
SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "whenthen"


@pytest.mark.parametrize(
    ("value", "timezone", "text"),
    [
        (dt.datetime(2026, 11, 22, 10, 0, tzinfo=UTC), None, "2026-11-22T10:00:00Z"),
        (dt.datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC), None, "2026-11-22T10:00:00.5Z"),
        (dt.datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC), "UTC", "2026-11-22T10:00:00.123456Z"),
        (dt.datetime(2026, 11, 22, 10, 0), None, "2026-11-22T10:00:00Z"),  # naive is UTC
        (dt.datetime(2026, 3, 1, 9, 0, 0, 250000, tzinfo=UTC), "Europe/Paris", "2026-03-01T10:00:00.25+01:00"),
        (dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "America/New_York", "2026-07-01T08:00:00-04:00"),
        (dt.datetime(2026, 1, 1, 7, 0, tzinfo=UTC), "Europe/London", "2026-01-01T07:00:00+00:00"),
        (dt.datetime(2026, 1, 1, 7, 0, tzinfo=UTC), "Asia/Kolkata", "2026-01-01T12:30:00+05:30"),
    ],
)
def test_format_datetime(value, timezone, text) -> None:
    assert values.format_datetime(value, timezone) == text


def test_every_path_prints_a_datetime_the_same_way() -> None:
    # Templates, trace JSON, schedule descriptions and the trace `at` all go through one function:
    # the two forms that used to disagree (`…00.5Z` and `…00.500000Z`) cannot both appear.
    at = dt.datetime(2026, 11, 22, 10, 0, 0, 500000, tzinfo=UTC)
    expected = "2026-11-22T10:00:00.5Z"
    assert values.render(at) == expected
    assert values.to_json({"at": at}) == {"at": expected}
    assert json.loads(json.dumps(vm.to_json(at))) == expected
    assert calendar.describe({"kind": "at", "when": at}, "UTC") == f"at {expected}"
    # A cached UTC instant is not handed back for an equal instant asked for in another zone.
    assert values.format_datetime(at, "Europe/Paris") == "2026-11-22T11:00:00.5+01:00"
    assert values.format_datetime(at) == expected
    # What parse_datetime reads back is the same instant.
    assert calendar.parse_datetime(expected) == at


def test_format_date_and_duration() -> None:
    assert values.format_date(dt.date(2026, 12, 1)) == "2026-12-01"
    assert values.render(dt.date(2026, 12, 1)) == "2026-12-01"
    assert values.format_duration(dt.timedelta(hours=1, minutes=30)) == "1h30m"


def _runtime_imports(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):  # walks function bodies too: lazy imports count
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                package = path.relative_to(SRC.parent).parent.parts[: len(path.relative_to(SRC.parent).parent.parts)
                                                                     - (node.level - 1)]
                base = ".".join(package)
                names = [f"{base}.{node.module}" if node.module else base]
            else:
                names = [node.module or ""]
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [f"{path.relative_to(SRC)}:{node.lineno}: {name}" for name in names
                  if name == "whenthen.runtime" or name.startswith("whenthen.runtime.")]
    return found


@pytest.mark.parametrize("stage", ["compiler", "stdlib", "grammar"])
def test_stages_below_the_runtime_never_import_it(stage: str) -> None:
    modules = sorted((SRC / stage).rglob("*.py"))
    assert modules, f"no modules under {SRC / stage}"
    offending = [line for module in modules for line in _runtime_imports(module)]
    assert offending == [], "modules below the runtime import it:\n" + "\n".join(offending)


def test_the_import_walker_sees_imports() -> None:
    # The check above is only worth something if the walker finds what it looks for.
    found = _runtime_imports(SRC / "cli.py")
    assert any("whenthen.runtime" in line for line in found)
