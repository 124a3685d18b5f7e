"""Formatting for people (SPEC 2.4): dates, times, numbers and money in a locale, from Babel's CLDR data.

Babel is imported on first use, so `check` of a program without formatting never loads it. Caches
keep a template with `format_datetime` close to one with a plain `{starts_at}`: parsed locales and
patterns; the formatted text per (value, pattern, locale, zone), since the same few datetimes (an
event's start, a deadline) are rendered into many messages; and, for a datetime not seen yet, each
field's text by what it depends on (`_Fields`).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from whenthen.compiler.decls import DEFAULT_LOCALE

STYLES = ("short", "medium", "long", "full")
# What a pattern is tried on at check time: a date or datetime with every field set.
_SAMPLE_DATE = dt.date(2026, 12, 1)
_SAMPLE_DATETIME = dt.datetime(2026, 12, 1, 9, 5, 7, tzinfo=dt.UTC)
_RESULTS = 8192  # formatted texts kept per function


@lru_cache(maxsize=512)
def locale_named(name: str) -> Any:
    """The Babel `Locale` for `fr_FR` (or `fr-FR`, `fr`); ValueError with a readable reason."""
    from babel import Locale, UnknownLocaleError

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"unknown locale {name!r}")
    try:
        return Locale.parse(name, sep="-" if "-" in name else "_")
    except (UnknownLocaleError, ValueError, TypeError):
        raise ValueError(f"unknown locale {name!r} (a CLDR locale such as 'fr_FR', 'nl_NL', 'ru_RU', 'en')") from None


def locale_problem(name: str) -> str | None:
    """Why Babel rejects the locale `name`, or None when it accepts it."""
    try:
        locale_named(name)
    except ValueError as exc:
        return str(exc)
    return None


def pattern_problem(pattern: str, kind: str) -> str | None:
    """Why Babel rejects a date (`kind` 'date') or datetime pattern, or None when it accepts it."""
    from babel import dates

    try:
        if kind == "date":
            dates.format_date(_SAMPLE_DATE, pattern, locale=DEFAULT_LOCALE)
        else:
            dates.format_datetime(_SAMPLE_DATETIME, pattern, tzinfo=dt.UTC, locale=DEFAULT_LOCALE)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        if kind == "date" and isinstance(exc, AttributeError):
            return f"the pattern {pattern!r} has time fields, and a date has no time: use format_datetime"
        return f"invalid date pattern {pattern!r}: {exc}"
    return None


def currency_problem(code: str) -> str | None:
    """Why `code` is not an ISO 4217 currency Babel knows, or None."""
    from babel import numbers

    if isinstance(code, str) and numbers.is_currency(code):
        return None
    hint = f"; did you mean '{code.upper()}'?" if isinstance(code, str) and numbers.is_currency(code.upper()) else ""
    return f"unknown currency {code!r} (an ISO 4217 code such as 'EUR', 'USD', 'RUB'){hint}"


@lru_cache(maxsize=512)
def _pattern(pattern: str) -> Any:
    from babel import dates

    return dates.parse_pattern(pattern)


def _in_zone(value: dt.datetime, zone: str) -> dt.datetime:
    # a naive datetime is already wall-clock time in the file's zone (as for date())
    tz = ZoneInfo(zone)
    return value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)


@lru_cache(maxsize=_RESULTS, typed=True)
def format_date(value: dt.date, pattern: str, locale: str, zone: str) -> str:
    """A date, or the date of a datetime in `zone`, as text for people."""
    from babel import dates

    if isinstance(value, dt.datetime):
        value = _in_zone(value, zone).date()
    elif not isinstance(value, dt.date):
        raise ValueError(f"needs a date or a datetime, got {type(value).__name__}")
    try:
        return dates.format_date(value, pattern, locale=locale_named(locale))
    except AttributeError:  # a time field (`HH`) asked of a date
        raise ValueError(f"the pattern {pattern!r} has time fields, and a date has no time") from None


@lru_cache(maxsize=_RESULTS, typed=True)
def format_datetime(value: dt.datetime, pattern: str, locale: str, zone: str) -> str:
    """A datetime in `zone` as text for people."""
    from babel import dates

    if not isinstance(value, dt.datetime):
        raise ValueError(f"needs a datetime, got {type(value).__name__}")
    local = _in_zone(value, zone)
    if pattern in STYLES:
        return dates.format_datetime(local, pattern, tzinfo=local.tzinfo, locale=locale_named(locale))
    return _pattern(pattern).format % _Fields(local, locale)


# The part of a local datetime that each CLDR field letter's text depends on (with the locale and
# the letter count), read off Babel's DateTimeFormat: 'EEEE' only on the weekday, 'MMMM' on the
# month, 'HH' on the hour. Fields not listed (week numbers, zones, fractions) are never memoised.
_DEPENDS_ON = {
    **dict.fromkeys("Gyu", lambda v: v.year),
    **dict.fromkeys("QqML", lambda v: v.month),
    "d": lambda v: v.day,
    **dict.fromkeys("Eec", lambda v: v.weekday()),
    **dict.fromkeys("ahHKk", lambda v: v.hour),
    **dict.fromkeys("bB", lambda v: (v.hour, v.minute, v.second)),
    "m": lambda v: v.minute,
    "s": lambda v: v.second,
}
_FIELD_TEXTS: dict[tuple[str, str, Any], str] = {}
_MAX_FIELD_TEXTS = 100_000


class _Fields:
    """The mapping Babel's pattern format string is %-applied to: each field's text from Babel's
    DateTimeFormat, memoised by what it depends on, so a new datetime costs a few dict lookups
    (a day's name is looked up in CLDR's data once per locale, not once per message)."""

    __slots__ = ("value", "locale")

    def __init__(self, value: dt.datetime, locale: str):
        self.value = value
        self.locale = locale

    def __getitem__(self, name: str) -> str:
        depends = _DEPENDS_ON.get(name[0])
        if depends is None:
            return self.babel(name)
        key = (self.locale, name, depends(self.value))
        text = _FIELD_TEXTS.get(key)
        if text is None:
            text = self.babel(name)
            if len(_FIELD_TEXTS) < _MAX_FIELD_TEXTS:
                _FIELD_TEXTS[key] = text
        return text

    def babel(self, name: str) -> str:
        from babel import dates

        return dates.DateTimeFormat(self.value, locale_named(self.locale))[name]


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"needs a number, got {type(value).__name__}")
    return value


@lru_cache(maxsize=_RESULTS, typed=True)
def format_number(value: int | float, locale: str) -> str:
    """A number with the locale's digit grouping and decimal sign."""
    from babel import numbers

    return numbers.format_decimal(_number(value), locale=locale_named(locale))


@lru_cache(maxsize=_RESULTS, typed=True)
def format_currency(value: int | float, currency: str, locale: str) -> str:
    """An amount of money in the locale's way of writing that currency."""
    from babel import numbers

    problem = currency_problem(currency)
    if problem is not None:
        raise ValueError(problem)
    return numbers.format_currency(_number(value), currency, locale=locale_named(locale))
