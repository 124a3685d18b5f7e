"""Hints where newcomers stumble (#16): `else if`, `wait 1 day`, `x = 6`, a declaration in a file
that was not given, and every bad field of an event with a suggestion for enumeration values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import whenthen
from whenthen.diagnostics import EventError
from whenthen.runtime.events import validate_event

SCHEMA = """
trigger guest.added { id: str, email: str, category: 'VIP' | 'Visitor', age: int? }
action set_status(guest_id: str, status: str)
"""


def messages(rules: str) -> list[str]:
    return [f"{d.code} {d.message}" for d in whenthen.check(SCHEMA + rules)]


@pytest.mark.parametrize(("rules", "hint"), [
    ("when guest.added then wait 1 day", "durations are written without a space, with a unit letter: 1d"),
    ("when guest.added then wait 3 hours", "with a unit letter: 3h"),
    ("when guest.added then wait 10 minutes", "with a unit letter: 10m"),
    ("when guest.added then wait 2 weeks", "with a unit letter: 2w"),
    ("when guest.added then x = 6", "to bind a value, write let x = …"),
    ("when guest.added then\n  log(message: 'a')\n  total == 6", "to bind a value, write let total = …"),
    ("when guest.added then\n  if age < 18 then log(message: 'a')\n  else if age < 65 then log(message: 'b')\n  end",
     "'else if' opens a new 'if' that needs its own 'end': write elif"),
])
def test_a_syntax_error_carries_the_hint(rules: str, hint: str) -> None:
    found = messages(rules)
    assert len(found) == 1 and found[0].startswith("E001 "), found
    assert found[0].endswith(hint), found


@pytest.mark.parametrize("rules", [
    "when guest.added where age = 6 then log(message: 'a')",  # `=` in a condition is a comparison
    "when guest.added then\n  if age < 18 then log(message: 'a')\n  else\n    if age < 65 then log(message: 'b') end\n  end",
    "when guest.added then wait 1d",
])
def test_correct_rules_get_no_hint(rules: str) -> None:
    assert messages(rules) == []


def test_else_if_of_an_earlier_rule_does_not_hint_a_later_one() -> None:
    rules = ("when guest.added then\n  if age < 1 then log(message: 'a')\n  else if age < 2 then log(message: 'b') end\n"
             "  end\n\nwhen guest.added then\n  if age < 3 then log(message: 'c')\n")
    found = messages(rules)
    assert len(found) == 1 and "else if" not in found[0], found


def test_a_trigger_or_action_declared_in_a_file_not_given_is_named(tmp_path: Path) -> None:
    (tmp_path / "schema.rules").write_text(SCHEMA)
    (tmp_path / "vip.rules").write_text("when guest.added then set_status(guest_id: id, status: 'x')\n")
    result = subprocess.run([sys.executable, "-m", "whenthen", "check", "vip.rules"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert ("vip.rules:1:6: error[E101]: unknown trigger 'guest.added'; it is declared in schema.rules, "
            "which was not given (check the folder: whenthen check .)") in result.stderr
    assert "error[E104]: unknown action or function 'set_status'; it is declared in schema.rules" in result.stderr
    # given the folder, it checks clean; an unknown trigger declared nowhere gets no such hint
    assert subprocess.run([sys.executable, "-m", "whenthen", "check", "."], cwd=tmp_path).returncode == 0
    (tmp_path / "other.rules").write_text("when guest.gone then log(message: 'x')\n")
    found = whenthen.check([str(tmp_path / "other.rules")])
    assert [d.message for d in found] == ["unknown trigger 'guest.gone'"]


def test_an_event_reports_every_bad_field_with_suggestions() -> None:
    schema = whenthen.compile(SCHEMA).schema.triggers["guest.added"]
    with pytest.raises(EventError) as caught:
        validate_event(schema, {"id": 5, "email": "a@b.c", "category": "vip", "colour": "red", "age": "x"})
    assert str(caught.value) == (
        "guest.added: field 'colour': unknown field; field 'id': expected str, got number 5; "
        "field 'category': 'vip' is not one of 'VIP', 'Visitor'; did you mean 'VIP'?; "
        "field 'age': expected int, got string \"x\"")
    assert [field for field, _ in caught.value.errors] == ["colour", "id", "category", "age"]
    with pytest.raises(EventError, match="did you mean 'Visitor'"):
        validate_event(schema, {"id": "g", "email": "a@b.c", "category": "Vistor"})


def test_the_cli_prints_every_bad_field(tmp_path: Path) -> None:
    (tmp_path / "schema.rules").write_text(SCHEMA)
    run = [sys.executable, "-m", "whenthen", "--db", str(tmp_path / "w.db")]
    subprocess.run([*run, "publish", str(tmp_path)], check=True, capture_output=True)
    result = subprocess.run([*run, "emit", "guest.added", '{"id": 1, "email": "e", "category": "vp"}'],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "field 'id': expected str" in result.stderr and "did you mean 'VIP'?" in result.stderr
