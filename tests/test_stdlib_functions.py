"""The text, number, time and formatting functions (SPEC 2.4) and the file `locale`: values, null,
diagnostics, and the same results in `where`, templates, simulate, the REPL and the durable engine."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _vm_support import RecordingHost, actions, compile_text, run_all
from whenthen.compiler.checker import check_program
from whenthen.diagnostics import CompileError
from whenthen.runtime.evaluate import evaluate_expression
from whenthen.runtime.fast import compile_filter, filter_source
from whenthen.runtime.vm import Failed, eval_filter
from whenthen.source import Source
from whenthen.stdlib import default_schema

UTC = dt.UTC
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # a Tuesday; 09:00 in Paris

SCHEMA = ("trigger o.placed { id: str, name: str?, total: float, n: int, starts_at: datetime, d: date, "
          "tags: list[str], nums: list[int], span: duration, cur: str, loc: str }\n")
EVENT = {"id": "ab-cd-ef", "name": None, "total": 1234.56, "n": -7, "starts_at": NOW,
         "d": dt.date(2026, 12, 1), "tags": ["x", "y"], "nums": [3, 1, 2], "span": dt.timedelta(minutes=90),
         "cur": "EUR", "loc": "nl_NL"}


def value(expression: str, timezone: str = "UTC", locale: str = "en") -> object:
    schema = default_schema()
    schema.triggers.update(check_program([Source("s.rules", SCHEMA)]).schema.triggers)
    return evaluate_expression(expression, "o.placed", dict(EVENT), schema, now=NOW, timezone=timezone,
                               locale=locale)


@pytest.mark.parametrize("expression, expected", [
    ("replace(id, '-', ' ')", "ab cd ef"),
    ("replace(id, 'zz', 'y')", "ab-cd-ef"),
    ("split(id, '-')", ["ab", "cd", "ef"]),
    ("split('', ',')", [""]),
    ("join(tags, ', ')", "x, y"),
    ("join(nums, '+')", "3+1+2"),
    ("join(split(id, '-'), '')", "abcdef"),
    ("slice(id, 0, 2)", "ab"),
    ("slice(id, -2)", "ef"),
    ("slice(id, 3, null)", "cd-ef"),
    ("slice(id, 10)", ""),
    ("round(total)", 1235),
    ("round(2.5)", 2),
    ("round(3.5)", 4),
    ("round(total, 1)", 1234.6),
    ("round(1234, -2)", 1200),
    ("round(n)", -7),
    ("abs(n)", 7),
    ("abs(-2.5)", 2.5),
    ("min(n, 3, 10)", -7),
    ("max(n, 3.5)", 3.5),
    ("min('b', 'a')", "a"),
    ("max(starts_at, starts_at + 1d)", NOW + dt.timedelta(days=1)),
    ("min(d, 2026-01-01)", dt.date(2026, 1, 1)),
    ("max(span, 1h)", dt.timedelta(minutes=90)),
    ("hour(starts_at)", 8),
    ("minute(starts_at + 5m)", 5),
    ("weekday(starts_at)", "tuesday"),
    ("weekday(d + 5d)", "sunday"),
    ("days(36h)", 1.5),
    ("hours(span)", 1.5),
    ("minutes(90s)", 1.5),
    ("len(split(id, '-')) = 3 and weekday(d) = 'tuesday'", True),
])
def test_values(expression: str, expected: object) -> None:
    got = value(expression)
    assert got == expected and type(got) is type(expected), (expression, got)


def test_time_functions_use_the_file_time_zone() -> None:
    assert value("hour(starts_at)", timezone="Europe/Paris") == 9
    assert value("weekday(starts_at - 9h)", timezone="Europe/Paris") == "tuesday"
    assert value("weekday(starts_at - 9h)") == "monday"
    assert value("hour(starts_at)", timezone="Asia/Tokyo") == 17


@pytest.mark.parametrize("expression", [
    "replace(name, 'a', 'b')", "split(name, ',')", "join(null, ',')", "slice(name, 0)", "slice(id, null)",
    "round(null)", "abs(null)", "min(n, null)", "max(null, 1)", "hour(null)", "weekday(null)", "days(null)",
    "format_date(null)", "format_datetime(null)", "format_number(null)", "format_currency(null, 'EUR')",
])
def test_a_null_argument_gives_null(expression: str) -> None:
    assert value(expression) is None


@pytest.mark.parametrize("expression, fragment", [
    ("round(total * 100000000000000000000000.0)", "outside the 64-bit integer range"),
    ("abs(n - 9223372036854775801)", "outside the 64-bit integer range"),
    ("split(id, '')", "the separator is empty"),
    ("format_currency(total, lower(cur))", "unknown currency 'eur'"),
    ("format_number(total, replace(id, '-', ''))", "unknown locale 'abcdef'"),
])
def test_run_time_errors_name_the_function(expression: str, fragment: str) -> None:
    code = compile_text(SCHEMA + f'rule "r" when o.placed then\n  log(message: "{{{expression}}}")\nend\n')["r"]
    result, _ = run_all(code, dict(EVENT), RecordingHost())
    assert isinstance(result, Failed) and fragment in result.error, result


def diagnostics(body: str, head: str = "") -> list[tuple[int, int, str, str]]:
    text = head + SCHEMA + 'rule "r" when o.placed then\n' + body + "\nend\n"
    program = check_program([Source("t.rules", text)])
    return [(d.span.line, d.span.column, d.code, d.message) for d in program.diagnostics]


@pytest.mark.parametrize("expr, code, fragment", [
    ("replace(id, 'a')", "E106", "missing required argument 'new'"),
    ("replace(id, 'a', 'b', 'c')", "E105", "it takes 3"),
    ("split(n, ',')", "E103", "argument 's' of split()"),
    ("join(id, ',')", "E103", "join() needs a list for items, got str"),
    ("slice(id)", "E106", "'start'"),
    ("slice(id, 'a')", "E103", "argument 'start' of slice()"),
    ("round(id)", "E103", "argument 'x' of round()"),
    ("round(total, digits: 1.5)", "E103", "argument 'digits' of round()"),
    ("abs(d)", "E103", "argument 'x' of abs()"),
    ("min(n, id)", "E103", "min() arguments must be comparable with each other: int and str"),
    ("max(tags, tags)", "E103", "max() compares numbers, texts, dates, datetimes or durations"),
    ("min()", "E106", "min()"),
    ("hour(d)", "E103", "argument 'dt' of hour() must be datetime?, got date"),
    ("weekday(n)", "E103", "weekday() needs a datetime or a date for dt, got int"),
    ("days(n)", "E103", "argument 'd' of days()"),
    ("weekday(d) = 'mondy'", "E107", "did you mean 'monday'?"),
    ("format_date(n)", "E103", "format_date() needs a date or a datetime for d, got int"),
    ("format_datetime(d)", "E103", "argument 'dt' of format_datetime()"),
    ("format_datetime(starts_at, 'qqqqqqq')", "E103", "invalid date pattern 'qqqqqqq'"),
    ("format_date(d, 'HH:mm')", "E103", "the pattern 'HH:mm' has time fields"),
    ("format_number(total, 'xx_YY')", "E103", "format_number(): unknown locale 'xx_YY'"),
    ("format_number(total, locale: 'fr_FR', x: 1)", "E105", "given twice"),
    ("format_currency(total, 'eur')", "E103", "unknown currency 'eur'"),
    ("format_currency(total)", "E106", "'currency'"),
    ("format_number(id)", "E103", "argument 'x' of format_number()"),
    ("formatnumber(total)", "E104", "did you mean 'format_number'?"),
])
def test_diagnostics_for_wrong_types_and_arity(expr: str, code: str, fragment: str) -> None:
    found = diagnostics(f'  log(message: "{{{expr}}}")')
    assert [(c, m) for _, _, c, m in found if c == code and fragment in m], found
    line, column = found[0][:2]
    assert line == 3 and column > 17  # at the call or its argument, inside the template


def test_a_literal_is_checked_at_its_own_position() -> None:
    found = diagnostics("  let t = format_datetime(starts_at, 'EEEE', 'zz_ZZ')")
    assert found == [(3, 46, "E103", "format_datetime(): unknown locale 'zz_ZZ' (a CLDR locale such as "
                                    "'fr_FR', 'nl_NL', 'ru_RU', 'en')")]
    # a pattern or locale computed at run time is checked when the run formats it
    assert diagnostics("  let t = format_datetime(starts_at, id, loc)") == []


def test_functions_as_statements_are_e104() -> None:
    assert [c for _, _, c, _ in diagnostics("  format_number(total)")] == ["E104"]


# ----------------------------------------------------------------------------- formatting and locale

FRENCH = 'timezone "Europe/Paris"\nlocale "fr_FR"\n'


def messages_of(text: str, event: dict | None = None) -> list[str]:
    code = next(iter(compile_text(text).values()))
    host = RecordingHost(now=NOW)
    run_all(code, dict(event or EVENT), host)
    return [args["message"] for name, args, *_ in actions(host) if name == "log"]


def test_the_issue_example_reads_in_french() -> None:
    text = FRENCH + SCHEMA + ('rule "r" when o.placed then\n'
                              '  log(message: "Rendez-vous le {format_datetime(starts_at, \'EEEE d MMMM à HH:mm\')}")\n'
                              '  log(message: "{format_currency(total, \'EUR\')} · {format_number(total)}")\nend\n')
    assert messages_of(text) == ["Rendez-vous le mardi 1 décembre à 09:00", "1\u202f234,56\xa0€ · 1\u202f234,56"]


@pytest.mark.parametrize("head, expression, expected", [
    ("", "format_datetime(starts_at)", "Dec 1, 2026, 8:00:00\u202fAM"),
    ("", "format_date(d)", "Dec 1, 2026"),
    ("", "format_date(d, 'full')", "Tuesday, December 1, 2026"),
    ("", "format_number(total)", "1,234.56"),
    ("", "format_currency(total, 'USD')", "$1,234.56"),
    (FRENCH, "format_date(starts_at, 'long')", "1 décembre 2026"),
    (FRENCH, "format_datetime(starts_at, 'short')", "01/12/2026 09:00"),
    ('locale "nl_NL"\n', "format_date(d, 'EEEE d MMMM y')", "dinsdag 1 december 2026"),
    ('locale "nl_NL"\n', "format_currency(total, cur)", "€\xa01.234,56"),
    ('locale "ru_RU"\n', "format_date(d, 'd MMMM y')", "1 декабря 2026"),
    ('locale "ru_RU"\n', "format_currency(total, 'RUB')", "1\xa0234,56\xa0₽"),
    ('locale "fr-FR"\n', "format_number(total)", "1\u202f234,56"),
    (FRENCH, "format_number(total, 'en')", "1,234.56"),
    (FRENCH, "format_number(total, loc)", "1.234,56"),
    (FRENCH, "format_date(d, 'full', locale: 'de_DE')", "Dienstag, 1. Dezember 2026"),
])
def test_formatting_in_the_file_locale(head: str, expression: str, expected: str) -> None:
    text = head + SCHEMA + f'rule "r" when o.placed then\n  log(message: "{{{expression}}}")\nend\n'
    assert messages_of(text) == [expected]


def test_the_file_locale_is_bytecode_not_a_setting() -> None:
    from whenthen.compiler.dis import disassemble

    code = compile_text(FRENCH + SCHEMA + 'rule "r" when o.placed then\n  log(message: "{format_number(total)}")\nend\n')
    assert "('fr_FR')" in disassemble(code["r"])


def test_locale_declaration_errors() -> None:
    found = diagnostics("  stop", head='locale "xx_YY"\n')
    assert found == [(1, 1, "E112", "unknown locale 'xx_YY' (a CLDR locale such as 'fr_FR', 'nl_NL', 'ru_RU', 'en')")]
    late = check_program([Source("t.rules", SCHEMA + 'locale "fr_FR"\n')]).diagnostics
    assert [(d.span.line, d.code, d.message) for d in late] == [
        (2, "E001", "'locale' must come before anything else in the file")]
    twice = check_program([Source("t.rules", 'locale "fr_FR"\ntimezone "UTC"\nlocale "nl_NL"\n')]).diagnostics
    assert [(d.span.line, d.code, d.message) for d in twice] == [(3, "E001", "only one 'locale' per file")]
    # timezone and locale in either order
    assert check_program([Source("t.rules", 'locale "fr_FR"\ntimezone "Europe/Paris"\n' + SCHEMA)]).ok


def test_locale_is_a_keyword_only_in_its_declaration() -> None:
    text = ('locale "nl_NL"\ntrigger a.b { locale: str, x: float }\nrule "r" when a.b where locale != \'\' then\n'
            '  let locale2 = locale\n  log(message: "{format_number(x, locale)} {format_number(x)} {locale2}")\nend\n')
    assert messages_of(text, {"locale": "fr_FR", "x": 1234.5}) == ["1\u202f234,5 1.234,5 fr_FR"]


def test_a_locale_after_a_rule_without_end_is_reported_not_swallowed() -> None:
    text = SCHEMA + 'when o.placed then log(message: id)\nlocale "fr_FR"\n'
    found = check_program([Source("t.rules", text)]).diagnostics
    assert [(d.span.line, d.code) for d in found] == [(3, "E001")]


def test_fmt_keeps_the_locale() -> None:
    from whenthen.tools.fmt import format_source

    text = 'timezone "Europe/Paris"\nlocale   "fr_FR"\n' + SCHEMA
    once = format_source(text, "t.rules")
    assert once.startswith('timezone "Europe/Paris"\nlocale "fr_FR"\n') and format_source(once, "t.rules") == once


# ----------------------------------------------------------------------------- where: fast path and VM agree

WHERE = [
    "replace(id, '-', '') = 'abcdef'", "len(split(id, '-')) = 3", "join(tags, '') = 'xy'",
    "slice(id, 0, 2) = 'ab'", "round(total) > 1000", "abs(n) = 7", "min(n, 0) < 0", "max(total, n) > 1000",
    "hour(starts_at) = 8", "weekday(d) = 'tuesday'", "days(span) < 1", "format_number(total, 'fr_FR') = '1\u202f234,56'",
    "format_date(d, 'EEEE', 'fr_FR') = 'mardi'", "format_currency(total, cur, loc) starts with '€'",
]


@pytest.mark.parametrize("condition", WHERE)
def test_functions_in_where_agree_on_the_fast_path(condition: str) -> None:
    code = compile_text(SCHEMA + f'rule "r" when o.placed where {condition} then\nend\n')["r"]
    assert filter_source(code)[0].startswith("def _filter(")
    fast = compile_filter(code)
    for event in (dict(EVENT), {**EVENT, "id": "zz", "n": 3, "total": 1.5, "d": dt.date(2026, 12, 2),
                                "starts_at": NOW + dt.timedelta(hours=3), "tags": [], "span": dt.timedelta(days=2),
                                "cur": "USD", "loc": "en"}):
        assert fast(event, NOW) is eval_filter(code, event, NOW)
    assert fast(dict(EVENT), NOW) is True


def test_evaluate_refuses_bad_literals_like_check() -> None:
    with pytest.raises(CompileError) as caught:
        value("format_date(d, 'HH')")
    assert "E103" in str(caught.value.diagnostics[0].code)


# ----------------------------------------------------------------------------- the CLI and the durable engine

RULES = FRENCH + """\
trigger booking.made { id: str, email: str, starts_at: datetime, price: float }
rule "Reminder" when booking.made then
  send_email(to: email, subject: "Votre rendez-vous", body: "Le {format_datetime(starts_at, 'EEEE d MMMM à HH:mm')}")
  wait 1d
  send_email(to: email, subject: "Rappel", body: "Total : {format_currency(price, 'EUR')}")
end
"""
BOOKING = {"id": "b1", "email": "ana@example.org", "starts_at": "2026-12-01T08:00:00Z", "price": 1234.5}


def wt(tmp_path: Path, *args: str, now: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WHENTHEN_DB", "WHENTHEN_NOW")}
    argv = [sys.executable, "-m", "whenthen", "--db", str(tmp_path / "wt.db"), *(["--now", now] if now else [])]
    return subprocess.run(argv + list(args), capture_output=True, text=True, cwd=tmp_path, env=env, input=stdin,
                          timeout=60)


def test_simulate_formats_in_the_file_locale(tmp_path: Path) -> None:
    (tmp_path / "r.rules").write_text(RULES, encoding="utf-8")
    (tmp_path / "e.jsonl").write_text(json.dumps({"trigger": "booking.made", "at": "2026-11-20T10:00:00Z",
                                                  "data": BOOKING}) + "\n")
    done = wt(tmp_path, "simulate", "r.rules", "--events", "e.jsonl", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    bodies = [json.loads(line).get("args", {}).get("body") for line in done.stdout.splitlines()]
    assert "Le mardi 1 décembre à 09:00" in bodies and "Total : 1\u202f234,50\xa0€" in bodies


def test_the_durable_engine_formats_after_a_restart(tmp_path: Path) -> None:
    """Published bytecode carries the locale: a later worker process resumes the run and formats
    in French with no source file around."""
    (tmp_path / "r.rules").write_text(RULES, encoding="utf-8")
    assert wt(tmp_path, "publish", "r.rules", "--enable").returncode == 0
    (tmp_path / "r.rules").unlink()
    emitted = wt(tmp_path, "emit", "booking.made", json.dumps(BOOKING), now="2026-11-20T10:00:00Z")
    assert emitted.returncode == 0, emitted.stderr
    worked = wt(tmp_path, "worker", "--once", now="2026-11-21T10:00:01Z")
    assert worked.returncode == 0, worked.stderr
    shown = wt(tmp_path, "run", "1", "--format", "json")
    run = json.loads(shown.stdout)
    assert run["status"] == "completed"
    bodies = [s["args"]["body"] for s in run["steps"] if s["kind"] == "action"]
    assert bodies == ["Le mardi 1 décembre à 09:00", "Total : 1\u202f234,50\xa0€"]


def test_check_reports_a_bad_locale_with_its_position(tmp_path: Path) -> None:
    (tmp_path / "r.rules").write_text('locale "fr_XX_bad"\n' + RULES.replace(FRENCH, ""), encoding="utf-8")
    done = wt(tmp_path, "check", "r.rules")
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert "r.rules:1:1: error[E112]: unknown locale 'fr_XX_bad'" in done.stdout + done.stderr


def test_the_repl_formats_in_a_typed_locale(tmp_path: Path) -> None:
    env = {**os.environ, "WHENTHEN_HISTORY": ""}
    done = subprocess.run(
        [sys.executable, "-m", "whenthen", "--now", "2026-12-01T08:00:00Z", "repl"],
        input='locale "fr_FR"\nformat_number(1234.5)\nformat_date(2026-12-01, \'full\')\nweekday(now())\n'
              "round(2.5) + abs(-1)\nformat_number(1, 'xx')\n",
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 1  # the last input is an error; the session went on to the end
    assert "'1\u202f234,5' : str" in done.stdout and "'mardi 1 décembre 2026' : str" in done.stdout
    assert "'tuesday' : 'monday'" in done.stdout and "3 : int" in done.stdout
    assert "E103" in done.stdout + done.stderr


# ----------------------------------------------------------------------------- the caches change nothing

FIELDS = ["G", "y", "yy", "yyyy", "u", "Q", "QQQQ", "q", "M", "MM", "MMM", "MMMM", "MMMMM", "L", "LLLL", "d", "dd",
          "E", "EEEE", "EEEEE", "e", "ee", "eeee", "c", "cccc", "a", "b", "bbbb", "B", "BBBB", "h", "hh", "H", "HH",
          "K", "k", "m", "mm", "s", "ss", "Y", "w", "W", "D", "F", "S", "SSS", "z", "zzzz", "Z", "v", "VV", "x",
          "XXX", "O", "'o''clock'", " à ", ", ", "/"]


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31), timezones=st.just(UTC)),
    fields=st.lists(st.sampled_from(FIELDS), min_size=1, max_size=6),
    locale=st.sampled_from(["en", "fr_FR", "nl_NL", "ru_RU", "de_DE", "ja_JP", "ar_EG", "zh_Hant", "fi_FI"]),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]),
)
def test_format_datetime_is_exactly_babel(moment: dt.datetime, fields: list[str], locale: str, zone: str) -> None:
    """The memoised fields and results give what Babel gives called directly, for any datetime."""
    from zoneinfo import ZoneInfo

    from babel import dates

    from whenthen.stdlib import formatting

    pattern = "|".join(fields)  # adjacent letters would merge into one field
    try:
        expected = dates.format_datetime(moment, pattern, tzinfo=ZoneInfo(zone), locale=locale)
    except ValueError:  # Babel's own gaps ('b' at midnight in fr_FR) fail the same way
        with pytest.raises(ValueError):
            formatting.format_datetime.__wrapped__(moment, pattern, locale, zone)
        return
    assert formatting.format_datetime(moment, pattern, locale, zone) == expected
    assert formatting.format_datetime.__wrapped__(moment, pattern, locale, zone) == expected
