"""The pure stdlib functions (SPEC 2.4): one `FunctionSig` each, with its types and Python implementation.

Calling convention: `sig.impl(ctx, *args)`, where `ctx` is a `FunctionContext` (or any object
with `.now`, an aware datetime, and `.timezone`, a zoneinfo name: the rule's file time zone).
Positional args come in declared order (named ones already mapped by the checker's ResolvedCall).
When `sig.null_in_null_out` is true and an argument is None, the caller returns None without
calling `impl`; the impls are nonetheless safe on None.

The checker types a call with `sig.result(arg_types)`; that callable raises `ArgumentTypeError`
with a readable reason when the arguments do not fit (for functions whose parameter types
cannot say it, like `len` and `coalesce`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from whenthen.compiler import messages
from whenthen.compiler.decls import FILE_LOCALE, FunctionSig, ParamSig
from whenthen.compiler.types import (
    ANY,
    DATE,
    DATETIME,
    DURATION,
    FLOAT,
    INT,
    STR,
    Type,
    enum_of,
    list_of,
    orderable,
    unify,
)
from whenthen.stdlib import formatting


class ArgumentTypeError(Exception):
    """Raised by a `FunctionSig.result` callable: the argument types do not fit (becomes E103)."""


@dataclass(frozen=True)
class FunctionContext:
    """What pure functions may know about the world: the current time and the file's time zone."""

    now: dt.datetime
    timezone: str = "UTC"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _optional_if_any_optional(result: Type):
    """Result type for null-in-null-out functions: optional when an argument may be null."""

    def typed(args: list[Type]) -> Type:
        return result.as_optional(any(a.optional for a in args))

    return typed


def _now(ctx: Any) -> dt.datetime:
    return ctx.now.astimezone(ZoneInfo(ctx.timezone))


def _today(ctx: Any) -> dt.date:
    return _now(ctx).date()


def _date(ctx: Any, value: dt.datetime | None) -> dt.date | None:
    if value is None:
        return None
    if value.tzinfo is None:  # naive datetimes are already in the file's zone
        return value.date()
    return value.astimezone(ZoneInfo(ctx.timezone)).date()


def _lower(ctx: Any, s: str | None) -> str | None:
    return None if s is None else s.lower()


def _upper(ctx: Any, s: str | None) -> str | None:
    return None if s is None else s.upper()


def _trim(ctx: Any, s: str | None) -> str | None:
    return None if s is None else s.strip()


def _len(ctx: Any, x: Any) -> int:
    return 0 if x is None else len(x)


def _coalesce(ctx: Any, *values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _len_type(args: list[Type]) -> Type:
    kind = args[0].kind if args else "any"
    if kind not in ("str", "enum", "list", "json", "any", "null"):
        raise ArgumentTypeError(messages.len_argument(args[0]))
    return INT


def _coalesce_type(args: list[Type]) -> Type:
    if not args:
        return ANY
    result = args[0]
    for other in args[1:]:
        joined = unify(result, other)
        if joined is None:
            raise ArgumentTypeError(messages.coalesce_mixed(result, other))
        result = joined
    # coalesce(a, b) is null only when every argument may be null
    return result.as_optional(all(a.optional for a in args))


FUNCTIONS: dict[str, FunctionSig] = {
    sig.name: sig
    for sig in [
        FunctionSig("now", (), lambda args: DATETIME, _now, doc="the current time, in the file's time zone"),
        FunctionSig("today", (), lambda args: DATE, _today, doc="today's date in the file's time zone"),
        FunctionSig("date", (ParamSig("dt", DATETIME),), _optional_if_any_optional(DATE), _date,
                    doc="the date of a datetime, in the file's time zone"),
        FunctionSig("lower", (ParamSig("s", STR),), _optional_if_any_optional(STR), _lower,
                    doc="the string in lower case"),
        FunctionSig("upper", (ParamSig("s", STR),), _optional_if_any_optional(STR), _upper,
                    doc="the string in upper case"),
        FunctionSig("trim", (ParamSig("s", STR),), _optional_if_any_optional(STR), _trim,
                    doc="the string without leading and trailing whitespace"),
        FunctionSig("len", (ParamSig("x", ANY),), _len_type, _len, null_in_null_out=False,
                    doc="the length of a string or a list; len(null) is 0", shown={"x": "str | list"}),
        FunctionSig("coalesce", (), _coalesce_type, _coalesce, variadic=True, null_in_null_out=False,
                    doc="the first argument that is not null", shown={"return": "the arguments' type"}),
    ]
}


# ----------------------------------------------------------------------------- text and numbers


def _replace(ctx: Any, s: str, old: str, new: str) -> str:
    return s.replace(old, new)


def _split(ctx: Any, s: str, sep: str) -> list[str]:
    if sep == "":
        raise ValueError("split(): the separator is empty")
    return s.split(sep)


def _join(ctx: Any, items: list[Any], sep: str) -> str:
    from whenthen import values  # lazily: values loads msgpack, which `check` never needs

    if not isinstance(items, list):
        raise ValueError(f"join(): needs a list, got {values.type_name(items)}")
    # items read as in a template (SPEC 2.6): null is '', numbers as in JSON
    return sep.join(values.render(item, ctx.timezone) for item in items)


def _slice(ctx: Any, s: str | None, start: int | None, end: int | None = None) -> str | None:
    # `end` may be null (to the end of the text); a null text or start gives null
    if s is None or start is None:
        return None
    return s[start:end]


_INT64 = 2**63


def _int64(value: int | float, what: str) -> int | float:
    # SPEC 2.7: an int past 64 bits is a run-time error, as for arithmetic
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        raise ValueError(f"{what} is outside the 64-bit integer range")
    return value


def _round(ctx: Any, x: int | float, digits: int = 0) -> int | float:
    if digits == 0:
        return _int64(int(round(x)), "the result")  # Python's round: half to even
    result = round(x, digits)
    return float(result) if isinstance(x, float) else _int64(result, "the result")


def _abs(ctx: Any, x: int | float) -> int | float:
    return _int64(abs(x), "the result")


def _min(ctx: Any, *items: Any) -> Any:
    return min(items)


def _max(ctx: Any, *items: Any) -> Any:
    return max(items)


# ----------------------------------------------------------------------------- time


def _local(ctx: Any, value: dt.datetime) -> dt.datetime:
    # a naive datetime is already wall-clock time in the file's zone
    return value if value.tzinfo is None else value.astimezone(ZoneInfo(ctx.timezone))


def _hour(ctx: Any, value: dt.datetime) -> int:
    return _local(ctx, value).hour


def _minute(ctx: Any, value: dt.datetime) -> int:
    return _local(ctx, value).minute


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(ctx: Any, value: dt.date) -> str:
    day = _local(ctx, value) if isinstance(value, dt.datetime) else value
    return WEEKDAYS[day.weekday()]


def _seconds(value: Any) -> float:
    if not isinstance(value, dt.timedelta):
        raise ValueError(f"needs a duration, got {type(value).__name__}")
    return value.total_seconds()


def _days(ctx: Any, d: dt.timedelta) -> float:
    return _seconds(d) / 86400


def _hours(ctx: Any, d: dt.timedelta) -> float:
    return _seconds(d) / 3600


def _minutes(ctx: Any, d: dt.timedelta) -> float:
    return _seconds(d) / 60


# ----------------------------------------------------------------------------- formatting for people


def _format_date(ctx: Any, d: dt.date, pattern: str, locale: str) -> str:
    return formatting.format_date(d, pattern, locale, ctx.timezone)


def _format_datetime(ctx: Any, value: dt.datetime, pattern: str, locale: str) -> str:
    return formatting.format_datetime(value, pattern, locale, ctx.timezone)


def _format_number(ctx: Any, x: int | float, locale: str) -> str:
    return formatting.format_number(x, locale)


def _format_currency(ctx: Any, x: int | float, currency: str, locale: str) -> str:
    return formatting.format_currency(x, currency, locale)


# ----------------------------------------------------------------------------- result types


def _join_type(args: list[Type]) -> Type:
    items = args[0] if args else ANY
    if items.kind not in ("list", "json", "any", "null"):
        raise ArgumentTypeError(messages.function_argument("join", "items", "a list", items))
    return STR.as_optional(any(a.optional for a in args))


def _round_type(args: list[Type]) -> Type:
    number = args[0] if args else ANY
    # round(x) is an int; round(x, digits) keeps the type of x (an int stays an int)
    result = INT if len(args) < 2 or number.kind == "int" else FLOAT
    return result.as_optional(any(a.optional for a in args))


def _abs_type(args: list[Type]) -> Type:
    number = args[0] if args else ANY
    result = number.base if number.is_numeric else FLOAT
    return result.as_optional(number.optional)


def _extremum_type(name: str):
    def typed(args: list[Type]) -> Type:
        result = args[0] if args else ANY
        for other in args[1:]:
            joined = unify(result, other)
            if joined is None or not orderable(result, other):
                raise ArgumentTypeError(messages.extremum_mixed(name, result, other))
            result = joined
        if result.base.kind not in ("int", "float", "str", "enum", "datetime", "date", "duration", "json", "any", "null"):
            raise ArgumentTypeError(messages.extremum_mixed(name, result, result))
        return result.as_optional(any(a.optional for a in args))

    return typed


def _weekday_type(args: list[Type]) -> Type:
    value = args[0] if args else ANY
    if value.kind not in ("datetime", "date", "json", "any", "null"):
        raise ArgumentTypeError(messages.function_argument("weekday", "dt", "a datetime or a date", value))
    return WEEKDAY.as_optional(value.optional)


def _format_date_type(args: list[Type]) -> Type:
    value = args[0] if args else ANY
    if value.kind not in ("datetime", "date", "json", "any", "null"):
        raise ArgumentTypeError(messages.function_argument("format_date", "d", "a date or a datetime", value))
    return STR.as_optional(any(a.optional for a in args))


def _date_pattern_problem(kind: str) -> Callable[[str, Any], str | None]:
    def problem(param: str, value: Any) -> str | None:
        if param == "locale":
            return formatting.locale_problem(value)
        if param == "pattern" and value not in formatting.STYLES:
            return formatting.pattern_problem(value, kind)
        return None

    return problem


def _number_literal_problem(param: str, value: Any) -> str | None:
    if param == "locale":
        return formatting.locale_problem(value)
    if param == "currency":
        return formatting.currency_problem(value)
    return None


WEEKDAY = enum_of(WEEKDAYS)
_LOCALE = ParamSig("locale", STR, has_default=True, default=FILE_LOCALE)
_PATTERN = ParamSig("pattern", STR, has_default=True, default="medium")


def _sig(name: str, params: tuple[ParamSig, ...], result: Type | Callable[[list[Type]], Type], impl: Callable[..., Any],
         doc: str, **extra: Any) -> FunctionSig:
    typed = _optional_if_any_optional(result) if isinstance(result, Type) else result
    return FunctionSig(name, params, typed, impl, doc=doc, **extra)


FUNCTIONS.update({
    sig.name: sig
    for sig in [
        _sig("replace", (ParamSig("s", STR), ParamSig("old", STR), ParamSig("new", STR)), STR, _replace,
             "the text with every `old` replaced by `new`: replace('a-b-c', '-', ' ') is 'a b c'"),
        _sig("split", (ParamSig("s", STR), ParamSig("sep", STR)), list_of(STR), _split,
             "the parts of the text between the separators: split('a,b', ',') is ['a', 'b'] "
             "(an empty separator fails the run)"),
        _sig("join", (ParamSig("items", ANY), ParamSig("sep", STR)), _join_type, _join,
             "the items of a list as one text, `sep` between them; items read as in a template "
             "(numbers as in JSON, null as '')", shown={"items": "list", "return": "str"}),
        _sig("slice", (ParamSig("s", STR), ParamSig("start", INT), ParamSig("end", INT.as_optional(), True, None)),
             STR, _slice,
             "part of a text, as Python's s[start:end]: negative positions count from the end, "
             "end = null is the end; slice('Amsterdam', 0, 3) is 'Ams'", null_in_null_out=False,
             shown={"return": "str"}),
        _sig("round", (ParamSig("x", FLOAT), ParamSig("digits", INT, True, 0)), _round_type, _round,
             "the number rounded half to even to `digits` decimals, as Python's round; "
             "round(x) is an int, round(2.5) is 2", shown={"return": "int | float"}),
        _sig("abs", (ParamSig("x", FLOAT),), _abs_type, _abs, "the absolute value; an int stays an int",
             shown={"return": "the type of x"}),
        _sig("min", (), _extremum_type("min"), _min,
             "the smallest argument: numbers, texts, dates, datetimes or durations", variadic=True,
             shown={"return": "the arguments' type"}),
        _sig("max", (), _extremum_type("max"), _max,
             "the largest argument: numbers, texts, dates, datetimes or durations", variadic=True,
             shown={"return": "the arguments' type"}),
        _sig("hour", (ParamSig("dt", DATETIME),), INT, _hour, "the hour (0 to 23), in the file's time zone"),
        _sig("minute", (ParamSig("dt", DATETIME),), INT, _minute, "the minute (0 to 59), in the file's time zone"),
        _sig("weekday", (ParamSig("dt", ANY),), _weekday_type, _weekday,
             "the day of the week, 'monday' to 'sunday' (a datetime's in the file's time zone)",
             shown={"dt": "datetime | date", "return": "'monday' | … | 'sunday'"}),
        _sig("days", (ParamSig("d", DURATION),), FLOAT, _days, "a duration as a number of days: days(36h) is 1.5"),
        _sig("hours", (ParamSig("d", DURATION),), FLOAT, _hours, "a duration as a number of hours: hours(90m) is 1.5"),
        _sig("minutes", (ParamSig("d", DURATION),), FLOAT, _minutes,
             "a duration as a number of minutes: minutes(90s) is 1.5"),
        _sig("format_date", (ParamSig("d", ANY), _PATTERN, _LOCALE), _format_date_type, _format_date,
             "a date (or a datetime's date in the file's time zone) for people: pattern 'short', "
             "'medium', 'long', 'full' or CLDR ('d MMMM y'); the locale defaults to the file's `locale`",
             literal_problem=_date_pattern_problem("date"), shown={"d": "date | datetime", "return": "str"}),
        _sig("format_datetime", (ParamSig("dt", DATETIME), _PATTERN, _LOCALE), STR, _format_datetime,
             "a datetime in the file's time zone for people: pattern 'short', 'medium', 'long', 'full' "
             "or CLDR ('EEEE d MMMM, HH:mm'); the locale defaults to the file's `locale`",
             literal_problem=_date_pattern_problem("datetime")),
        _sig("format_number", (ParamSig("x", FLOAT), _LOCALE), STR, _format_number,
             "a number with the locale's grouping and decimal sign (at most 3 decimals): "
             "1234.56 is '1 234,56' in fr_FR", literal_problem=_number_literal_problem),
        _sig("format_currency", (ParamSig("x", FLOAT), ParamSig("currency", STR), _LOCALE), STR, _format_currency,
             "an amount in an ISO 4217 currency, as the locale writes money: "
             "format_currency(1234.56, 'EUR') is '1 234,56 €' in fr_FR", literal_problem=_number_literal_problem),
    ]
})
