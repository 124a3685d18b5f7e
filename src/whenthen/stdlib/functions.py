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
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from whenthen.compiler import messages
from whenthen.compiler.decls import FunctionSig, ParamSig
from whenthen.compiler.types import ANY, DATE, DATETIME, INT, STR, Type, unify


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
                    doc="the length of a string or a list; len(null) is 0"),
        FunctionSig("coalesce", (), _coalesce_type, _coalesce, variadic=True, null_in_null_out=False,
                    doc="the first argument that is not null"),
    ]
}
